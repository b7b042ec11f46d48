r"""Build GeoPixelD-style grounded descriptions from instance annotations.

    # your iSAID-style data: COCO polygons + large images, cut into 800 px
    python tools/annotate/annotate.py configs/annotation/template.py \
        --ann-file iSAID/train/instances.json --image-dir iSAID/train/images \
        --out data/annotated [--split train] [--already-patched]

    # the whole pipeline on synthetic scenes, one command (train and test
    # splits, a tokenizer for the tiny model, the report)
    python tools/annotate/annotate.py \
        configs/annotation/template_synthetic.py \
        --synthetic 40 --out data/annotated

The config names the annotator and paraphraser backends, the pipeline's
settings and the patching rules (docs/en/user_guides/annotation.md).
A run that stops resumes where it stopped when started again with the
same arguments. Output is read back with the GeoPixelD reader before the
tool ends; the summary is printed as JSON.
"""
import argparse
import json
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('config', help='annotation config')
    parser.add_argument('--out', required=True, help='output folder')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--ann-file', help='COCO instance JSON (polygons)')
    source.add_argument(
        '--synthetic', type=int, metavar='N',
        help='generate N synthetic source scenes into OUT/source and '
        'annotate them (4 of 5 to train, the rest to test)')
    parser.add_argument('--image-dir', help='folder of the COCO images')
    parser.add_argument('--split', default='train',
                        help='output split name (default train)')
    parser.add_argument('--already-patched', action='store_true',
                        help='the images are patches already: do not cut')
    parser.add_argument('--synthetic-size', type=int, default=1000,
                        help='side of the synthetic scenes (default 1000, '
                        'cut into four 800 px patches)')
    parser.add_argument('--seed', type=int, default=0,
                        help='synthetic scenes seed')
    parser.add_argument('--path-prefix', default='',
                        help="before the paths in the JSONs: 'data/' gives "
                        "the release's data/GeoPixelD/... paths")
    parser.add_argument('--workers', type=int, default=1,
                        help='patches annotated at once (threads; for '
                        'served models, e.g. 8 for a vLLM server)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not read the output back with the '
                        'GeoPixelD reader (it loads every image and mask)')
    parser.add_argument('--no-resume', action='store_true',
                        help='refuse to continue an existing split')
    parser.add_argument('--report', type=int, default=12, metavar='N',
                        help='patches in the HTML report (0: none)')
    parser.add_argument('--tokenizer', action='store_true',
                        help='also train a tokenizer on the texts into '
                        'OUT/tokenizer (for the tiny configs; on with '
                        '--synthetic)')
    parser.add_argument('--vocab-size', type=int, default=1000)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. '
                        'pipeline.min_area=900')
    args = parser.parse_args(argv)
    if args.ann_file and not args.image_dir:
        parser.error('--ann-file needs --image-dir')
    return args


def build_pipeline(cfg):
    from geopixel.annotation import AnnotationPipeline
    return AnnotationPipeline(cfg.annotator, cfg.get('paraphraser'),
                              **cfg.get('pipeline', {}))


def annotate_split(cfg, pipeline, ann_file, image_dir, out, split,
                   already_patched, args):
    from tqdm import tqdm

    from geopixel.annotation import (CocoPatchSource, annotate_coco,
                                     validate_output)
    source = CocoPatchSource(ann_file, image_dir,
                             split=not already_patched,
                             **dict(cfg.get('patching', {})))
    summary = annotate_coco(
        pipeline, source, out, split=split,
        skip_empty=cfg.get('skip_empty', True), resume=not args.no_resume,
        num_workers=args.workers, path_prefix=args.path_prefix,
        progress=lambda it: tqdm(it, total=len(source), unit='image',
                                 desc=f'annotating {split}'))
    if not args.no_validate:
        summary['validated_records'] = validate_output(out, split)
    return summary


def train_output_tokenizer(out, splits, vocab_size):
    from geopixel.datasets import GeoPixelDDataset
    from geopixel.tokenizers.training import (template_texts,
                                              train_tokenizer)
    from geopixel.annotation import records_name
    texts = template_texts()
    for split in splits:
        dataset = GeoPixelDDataset(
            ann_file=osp.join(out, records_name(split)), data_root=out,
            pipeline=[], on_bad_record='raise')
        for index in range(len(dataset)):
            texts.extend(t for _, t in
                         dataset.get_data_info(index)['conversations'])
    return train_tokenizer(texts, osp.join(out, 'tokenizer'), vocab_size)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from geopixel.annotation import write_synthetic_source
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    pipeline = build_pipeline(cfg)
    summaries = {}
    if args.synthetic:
        sources = write_synthetic_source(
            osp.join(args.out, 'source'), args.synthetic,
            args.synthetic_size, args.seed)
        for source_split, split in (('train', 'train'), ('val', 'test')):
            if source_split in sources:
                src = sources[source_split]
                summaries[split] = annotate_split(
                    cfg, pipeline, src['ann_file'], src['image_dir'],
                    args.out, split, False, args)
    else:
        summaries[args.split] = annotate_split(
            cfg, pipeline, args.ann_file, args.image_dir, args.out,
            args.split, args.already_patched, args)
    if args.tokenizer or args.synthetic:
        summaries['tokenizer'] = train_output_tokenizer(
            args.out, [s for s in summaries], args.vocab_size)
    if args.report:
        from geopixel.annotation import write_report
        summaries['report'] = {
            split: write_report(args.out, split=split,
                                num_samples=args.report)
            for split in summaries if split not in ('tokenizer', )
        }
    print(json.dumps(summaries, indent=1))
    return summaries


if __name__ == '__main__':
    from geopixel.utils import BadRecordError, run_tool
    from geopixel.annotation.backends import AnnotatorError
    run_tool(main, (BadRecordError, AnnotatorError))
