"""Run a config's data pipeline end to end: check every sample, draw some.

    python tools/misc/browse_dataset.py CONFIG [--split train|val|test]
        [--output-dir DIR] [--max-draw 8] [--limit N] [--cfg-options ...]

Every sample goes through the full pipeline (image decode, mask
rasterisation, tiling, tokenization, label masking, packing), so a run over
a whole split is also a dataset check: bad records are reported with their
file, record and problem (with ``on_bad_record='skip'`` they are counted and
the run goes on). Writes mask overlays with a phrase legend and a
``summary.json`` with token counts, grids and mask statistics.
"""
import argparse
import collections
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument(
        '--split', default='train', choices=['train', 'val', 'test'])
    parser.add_argument('--output-dir', default='work_dirs/browse_dataset')
    parser.add_argument(
        '--max-draw', type=int, default=8, help='overlays to write')
    parser.add_argument(
        '--limit', type=int, default=None, help='check only N samples')
    parser.add_argument(
        '--on-bad-record',
        choices=['raise', 'skip'],
        help='override the dataset policy')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def browse(args) -> dict:
    import numpy as np
    from mmengine.registry import init_default_scope
    from PIL import Image
    from tqdm import tqdm

    from geopixel.engine.runner_setup import load_config
    from geopixel.registry import DATASETS
    from geopixel.visualization import draw_grounded_masks

    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'geopixel') or 'geopixel')
    loader_cfg = cfg.get(f'{args.split}_dataloader')
    if loader_cfg is None:
        raise SystemExit(f'{args.config} has no {args.split}_dataloader')
    dataset_cfg = loader_cfg.dataset
    if args.on_bad_record:
        dataset_cfg.on_bad_record = args.on_bad_record
    # Visit every record once: evaluation datasets refuse to skip, so browse
    # them in train mode (the pipeline is the same).
    dataset_cfg.test_mode = False
    dataset = DATASETS.build(dataset_cfg)
    os.makedirs(args.output_dir, exist_ok=True)
    total = len(dataset) if args.limit is None else min(
        args.limit, len(dataset))
    stats = collections.defaultdict(list)
    grids = collections.Counter()
    drawn = 0
    start = time.time()
    for idx in tqdm(range(total), desc=f'{args.split} samples', unit='img'):
        # raises BadRecordError (policy 'raise') or returns None after
        # logging and counting the record (policy 'skip')
        sample = dataset.prepare_data(idx)
        if sample is None:
            continue
        data = sample['data_samples']
        meta = data.metainfo
        if 'num_image_tokens' in meta:
            stats['image_tokens'].append(meta['num_image_tokens'])
            grids[str(tuple(meta['hd_grid']))] += 1
        if 'input_ids' in data:
            stats['text_tokens'].append(int(data.input_ids.numel()))
        if 'labels' in data:
            stats['supervised_tokens'].append(
                int((data.labels != -100).sum()))
        masks = data.gt_masks.numpy() if 'gt_masks' in data else np.zeros(
            (0, 1, 1), np.uint8)
        stats['masks'].append(len(masks))
        stats['mask_area_fraction'] += [float(m.mean()) for m in masks]
        if drawn < args.max_draw:
            image = sample['inputs']['image'].permute(1, 2, 0).numpy()
            labels = meta.get('phrases') or []
            if meta.get('task') == 'rrsis':
                labels = [dataset.get_data_info(idx).get('ref_exp', '')]
            elif meta.get('category_names'):
                labels = meta['category_names']
            picture = draw_grounded_masks(
                image, masks, labels, title=osp.basename(meta['img_path']))
            stem = osp.splitext(osp.basename(meta['img_path']))[0]
            name = f'{idx:05d}_{stem}.png'
            Image.fromarray(picture).save(osp.join(args.output_dir, name))
            drawn += 1

    def describe(values):
        if not values:
            return None
        arr = np.asarray(values, dtype=np.float64)
        return dict(
            mean=round(float(arr.mean()), 4),
            min=round(float(arr.min()), 4),
            max=round(float(arr.max()), 4))

    summary = dict(
        config=args.config,
        split=args.split,
        dataset=type(dataset).__name__,
        records=len(dataset),
        checked=total,
        seconds=round(time.time() - start, 2),
        overlays_written=drawn,
        grids=dict(grids),
        bad_records=dataset.bad_record_summary(reset=True),
        **{k: describe(v)
           for k, v in stats.items()})
    with open(osp.join(args.output_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv=None):
    args = parse_args(argv)
    summary = browse(args)
    print(json.dumps(summary, indent=2))
    print(f'overlays and summary.json in {args.output_dir}')


if __name__ == '__main__':
    main()
