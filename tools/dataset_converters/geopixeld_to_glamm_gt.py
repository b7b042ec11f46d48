"""GeoPixelD (test folder or conversation list) -> GLaMM-style COCO ground
truth for the RS-GCG evaluator.

    python tools/dataset_converters/geopixeld_to_glamm_gt.py \\
        --ann data/GeoPixelD/test --data-root data/ --split test \\
        --out-dir data/annotations
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ann', required=True,
                        help='folder of per-image JSONs or a JSON list')
    parser.add_argument('--data-root', default='')
    parser.add_argument('--split', default='test')
    parser.add_argument('--out-dir', required=True)
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from geopixel.datasets import (GeoPixelDDataset, LoadGroundingMasks,
                                   LoadImageRGB)
    from geopixel.evaluation.functional.gcg_files import (
        glamm_gt_from_dataset, write_glamm_gt)
    dataset = GeoPixelDDataset(
        ann_file=osp.abspath(args.ann),  # as given, not under --data-root
        data_root=args.data_root,
        pipeline=[dict(type=LoadImageRGB),
                  dict(type=LoadGroundingMasks)])
    captions, masks = glamm_gt_from_dataset(
        dataset, progress=lambda it: tqdm(it, desc='images'))
    paths = write_glamm_gt(args.out_dir, args.split, captions, masks)
    print(f'{len(captions["images"])} images, {len(masks["annotations"])} '
          f'masks -> {paths[0]}, {paths[1]}')
    unknown = sum('num_instances' not in a for a in masks['annotations'])
    if unknown:
        print(f'{unknown} mask(s) have no "num_instances": their source '
              '(RLE) does not say how many instances a mask joins, so '
              'eval_predictions.py reports no uni/multi-target split unless '
              'given --kinds connected-components (an approximation)')


if __name__ == '__main__':
    main()
