"""Does a trained GeoPixel follow the referring expression? Scores, trivial
baselines, the sentence-swap probe and the [SEG] probes on an RRSIS split.

    python tools/analysis/refer_probe.py CONFIG CHECKPOINT
        [--data-root DIR] [--synthetic-root DIR] [--split test]
        [--max-samples N] [--out JSON] [--device cpu] [--trust-checkpoint]
        [--cfg-options k=v ...]

The model is built from CONFIG and CHECKPOINT as tools/test.py loads them
and answers every sentence of an image from one encoding, teacher-forced
(GeoPixelInferencer). ``--synthetic-root`` points every ``data/synthetic``
path of the config (data roots and the tokenizer the model was trained
with) at another folder, as benchmark_learning.py does; ``--data-root``
then replaces the test dataset's ``data_root`` (the folder holding
``rrsisd/`` and ``images/``). Prints one
JSON (also written to ``--out``); docs/en/notes/benchmarks.md describes
its fields. The rules live in
geopixel/evaluation/functional/refer_probes.py.
"""
import argparse
import json
import os.path as osp
import sys
import time
from typing import Dict, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def predict_sentences(inferencer, split) -> Tuple[Dict, Dict, Dict]:
    """Masks, ``[SEG]`` states (the ``seg_projector``'s input) and prompts
    (its output) of every sentence of ``split.pool``, keyed by
    ``(image_id, text)``; each image is encoded once.

    The states come from a forward hook on ``model.seg_projector``: the
    inferencer answers one sentence per call of the model, so the k-th
    call belongs to the k-th sentence (checked: one row each).
    """
    from geopixel.evaluation.functional.rrsis import prediction_mask
    texts: Dict[int, list] = {}
    for s in split.pool:
        if s.text not in texts.setdefault(s.image_id, []):
            texts[s.image_id].append(s.text)
    captured = []

    def capture(module, args, output):
        captured.append((args[0].detach().float().cpu().numpy(),
                         output.detach().float().cpu().numpy()))

    masks, states, prompts = {}, {}, {}
    hook = inferencer.model.seg_projector.register_forward_hook(capture)
    try:
        for image_id, image_texts in texts.items():
            image = split.images[image_id]
            captured.clear()
            results = inferencer(image.img_path, task='refer',
                                 prompt=image_texts,
                                 answer_mode='teacher_forced')
            if [c[0].shape[0] for c in captured] != [1] * len(image_texts):
                raise RuntimeError(
                    f'{image.img_path}: expected one [SEG] state per '
                    f'sentence ({len(image_texts)}), the [SEG] projector '
                    f'saw {[c[0].shape[0] for c in captured]}')
            for text, result, (state, prompt) in zip(image_texts, results,
                                                     captured):
                key = (image_id, text)
                masks[key] = prediction_mask(
                    result.masks, image.size, f'{image.img_path} {text!r}')
                states[key], prompts[key] = state[0], prompt[0]
    finally:
        hook.remove()
    return masks, states, prompts


def probe_model(inferencer, dataset,
                max_samples: Optional[int] = None) -> dict:
    """Everything the tool reports, for a built inferencer and an
    ``RRSISDDataset`` (also what benchmark_learning.py adds)."""
    from geopixel.evaluation.functional.refer_probes import (probe_report,
                                                             read_refer_split)
    start = time.perf_counter()
    split = read_refer_split(dataset, max_samples)
    masks, states, prompts = predict_sentences(inferencer, split)
    predicted = time.perf_counter()
    result = dict(split=dataset.split, data_root=dataset.data_root,
                  answer_mode='teacher_forced',
                  **probe_report(split, masks, states, prompts))
    result['seconds'] = dict(predict=round(predicted - start, 2),
                             total=round(time.perf_counter() - start, 2))
    return result


def load_inferencer(config: str, checkpoint: str,
                    data_root: Optional[str] = None, split: str = 'test',
                    cfg_options: Optional[dict] = None,
                    trust_checkpoint: bool = False,
                    device: Optional[str] = None,
                    synthetic_root: Optional[str] = None):
    """The inferencer (model loaded as tools/test.py loads it) and the
    config's test dataset at ``data_root`` / ``split``."""
    from geopixel.apis import GeoPixelInferencer
    from geopixel.engine.runner_setup import load_config, trusts_checkpoint
    from geopixel.registry import DATASETS
    from geopixel.testing import relocate
    cfg = load_config(config, cfg_options)
    if synthetic_root is not None:
        relocate(cfg, synthetic_root)
    if data_root is not None:
        cfg.test_dataloader.dataset.data_root = data_root
    cfg.test_dataloader.dataset.split = split
    trusted = trusts_checkpoint(
        argparse.Namespace(trust_checkpoint=trust_checkpoint), cfg,
        checkpoint)
    inferencer = GeoPixelInferencer(cfg, weights=checkpoint, device=device,
                                    trust_checkpoint=trusted,
                                    show_progress=False)
    return inferencer, DATASETS.build(cfg.test_dataloader.dataset)


def parse_args(argv: Optional[Sequence[str]] = None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--data-root', help='RRSIS-layout folder holding '
                        'rrsisd/ and images/ (default: the config\'s)')
    parser.add_argument('--synthetic-root', help='point every data/'
                        'synthetic path of the config (data roots, '
                        'tokenizer) at this folder')
    parser.add_argument('--split', default='test',
                        choices=('train', 'val', 'test'))
    parser.add_argument('--max-samples', type=int,
                        help='probe the first N sentences of the split')
    parser.add_argument('--out', help='write the JSON here too')
    parser.add_argument('--device', help='cuda, cpu... (default: cuda if '
                        'available)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow fully unpickling a checkpoint that a '
                        'weights-only read refuses (only files you trust)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    args = parser.parse_args(argv)
    if args.max_samples is not None and args.max_samples < 1:
        parser.error('--max-samples must be at least 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    from geopixel.evaluation.functional.files import json_safe, write_scores
    inferencer, dataset = load_inferencer(
        args.config, args.checkpoint, args.data_root, args.split,
        args.cfg_options, args.trust_checkpoint, args.device,
        args.synthetic_root)
    result = dict(config=args.config, checkpoint=args.checkpoint,
                  **probe_model(inferencer, dataset, args.max_samples))
    write_scores(args.out, result)
    print(json.dumps(json_safe(result), indent=2))


if __name__ == '__main__':
    from geopixel.checkpoint import CheckpointError
    from geopixel.utils import BadRecordError, run_tool
    run_tool(main, (CheckpointError, BadRecordError))
