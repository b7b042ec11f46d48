"""Train a tokenizer for the tiny configs over your own sentences.

    python tools/misc/train_tokenizer.py --data DATA [DATA ...] --out DIR
        [--vocab-size 1000] [--splits train val test] [--compare DIR]
        [--config CONFIG]

Each DATA is an RRSIS-D-layout root (``rrsisd/refs(unc).p``,
``rrsisd/instances.json``, images), a GeoPixelD JSON (or folder of
per-image JSONs), or a text file with one sentence per line (blank lines
are not sentences). Datasets are read by the project's readers, so the text
is exactly what training reads. The chat template with the task questions
and answers is always added, with InternLM2's chat pieces and
``[SEG]``/``<p>``/``</p>`` as in the synthetic tokenizer. Prints a JSON
summary: sentences per source, the vocabulary, and the coverage of the
data's words (one token or pieces, characters that fall back to bytes),
also for the ``--compare`` tokenizer; with ``--config``, the
``--cfg-options`` that point every tokenizer of that config at DIR.
The same input gives the same files.
"""
import argparse
import glob
import json
import os.path as osp
import shlex
import sys
from typing import Dict, List

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

SPLITS = ('train', 'val', 'test')


def read_source(path: str, splits) -> Dict:
    """``kind``, the ``texts`` training reads (every chat turn) and the
    data's own ``sentences`` (expressions, turns, lines) of one source."""
    from geopixel.utils import BadRecordError
    if osp.isdir(path):
        if osp.isfile(osp.join(path, 'rrsisd', 'refs(unc).p')):
            source = _read_rrsisd(path, splits)
        elif glob.glob(osp.join(path, '*.json')):
            source = _read_geopixeld(path)
        else:
            raise BadRecordError(
                'folder is neither an RRSIS-D root (rrsisd/refs(unc).p) nor '
                'a folder of GeoPixelD per-image JSONs', path)
    elif not osp.exists(path):
        raise BadRecordError('no such file or folder', path)
    elif path.endswith('.json'):
        source = _read_geopixeld(path)
    else:
        source = _read_lines(path)
    if not source['sentences']:
        raise BadRecordError(f'no sentences found ({source["kind"]})', path)
    return dict(path=path, **source)


def _turn_texts(samples) -> List[str]:
    from geopixel.utils import BadRecordError
    texts = []
    for sample in samples:
        if isinstance(sample, BadRecordError):
            raise sample
        texts.extend(text for _, text in sample['conversations'])
    return texts


def _read_rrsisd(root: str, splits) -> Dict:
    from geopixel.datasets import RRSISDDataset
    texts, sentences = [], []
    for split in splits:
        samples = list(
            RRSISDDataset(data_root=root, split=split, pipeline=[],
                          lazy_init=True).iter_data_infos())
        texts += _turn_texts(samples)
        sentences += [s['ref_exp'] for s in samples]
    return dict(kind=f'RRSIS-D ({", ".join(splits)})', texts=texts,
                sentences=sentences)


def _read_geopixeld(ann_file: str) -> Dict:
    from geopixel.datasets import GeoPixelDDataset
    texts = _turn_texts(
        GeoPixelDDataset(ann_file=ann_file, pipeline=[],
                         lazy_init=True).iter_data_infos())
    return dict(kind='GeoPixelD', texts=texts, sentences=texts)


def _read_lines(path: str) -> Dict:
    from geopixel.utils import BadRecordError
    try:
        with open(path, 'rb') as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise BadRecordError(f'cannot read it ({exc.strerror})',
                             path) from None
    sentences = []
    for number, line in enumerate(lines, 1):
        try:
            text = line.decode('utf-8').strip()
        except UnicodeDecodeError as exc:
            raise BadRecordError(f'not UTF-8 text ({exc.reason} at byte '
                                 f'{exc.start} of the line)', path,
                                 f'line {number}') from None
        if text:
            sentences.append(text)
    return dict(kind='text lines', texts=sentences, sentences=sentences)


def tokenizer_cfg_options(config: str, tokenizer_dir: str) -> str:
    """``--cfg-options`` setting the path of every tokenizer in
    ``config`` (the model's and each pipeline's) to ``tokenizer_dir``."""
    from geopixel.engine.runner_setup import load_config
    from geopixel.utils import BadRecordError
    cfg = load_config(config)

    def keys(node, prefix):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            name = f'{prefix}{key}'
            if (key == 'tokenizer' and isinstance(value, dict)
                    and 'path' in value):
                yield f'{name}.path'
            elif isinstance(value, (dict, list, tuple)):
                yield from keys(value, f'{name}.')

    found = list(keys(cfg._cfg_dict, ''))
    if not found:
        raise BadRecordError('config has no tokenizer with a path', config)
    return shlex.join(['--cfg-options'] +
                      [f'{key}={tokenizer_dir}' for key in found])


def main(argv=None):
    from geopixel.tokenizers.training import DEFAULT_VOCAB_SIZE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', nargs='+', required=True,
                        help='RRSIS-D roots, GeoPixelD JSONs, text files')
    parser.add_argument('--out', required=True, help='tokenizer folder')
    parser.add_argument('--vocab-size', type=int, default=DEFAULT_VOCAB_SIZE,
                        help='sentencepiece pieces at most (a small corpus '
                        'gives fewer); [SEG], <p>, </p> come on top')
    parser.add_argument('--splits', nargs='+', choices=SPLITS,
                        default=list(SPLITS),
                        help='RRSIS-D splits to read (default: all)')
    parser.add_argument('--compare', help='a tokenizer folder to report the '
                        'same coverage for, e.g. data/synthetic/tokenizer')
    parser.add_argument('--config', help='print the --cfg-options that '
                        'point this config at the new tokenizer')
    args = parser.parse_args(argv)

    from geopixel.tokenizers import InternLM2Tokenizer
    from geopixel.tokenizers.training import (template_texts,
                                              train_tokenizer, word_coverage)
    sources = [read_source(path, args.splits) for path in args.data]
    texts = template_texts() + [t for s in sources for t in s['texts']]
    sentences = [t for s in sources for t in s['sentences']]
    train_tokenizer(texts, args.out, args.vocab_size)
    tokenizer = InternLM2Tokenizer.from_pretrained(args.out)
    summary = dict(
        out=args.out,
        sources=[
            dict(path=s['path'], kind=s['kind'],
                 sentences=len(s['sentences']), texts=len(s['texts']))
            for s in sources
        ],
        vocab_size=args.vocab_size,
        pieces=tokenizer.vocab_size,
        tokens=len(tokenizer),
        coverage=word_coverage(tokenizer, sentences))
    if args.compare:
        summary['compare'] = dict(
            tokenizer=args.compare,
            coverage=word_coverage(
                InternLM2Tokenizer.from_pretrained(args.compare),
                sentences))
    if args.config:
        summary['cfg_options'] = tokenizer_cfg_options(args.config, args.out)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


if __name__ == '__main__':
    from geopixel.tokenizers.training import VocabSizeError
    from geopixel.utils import BadRecordError, run_tool
    run_tool(main, (BadRecordError, VocabSizeError, FileNotFoundError))
