"""Generate the synthetic remote-sensing dataset (GeoPixelD, RRSIS-D and
iSAID layouts plus a tokenizer), deterministic from a seed.

    python tools/dataset_converters/make_synthetic.py [--out data/synthetic]
        [--num-images 40] [--size 512] [--seed 0] [--refs-per-image 2]
"""
import argparse
import json
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/synthetic')
    parser.add_argument('--num-images', type=int, default=40)
    parser.add_argument('--size', type=int, default=512, help='image side')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--refs-per-image', type=int, default=2)
    parser.add_argument('--vocab-size', type=int, default=1000)
    args = parser.parse_args(argv)
    if args.num_images < 1 or args.size < 128:
        raise SystemExit('need --num-images >= 1 and --size >= 128')
    from tqdm import tqdm

    from geopixel.datasets.synthetic import generate_synthetic_dataset
    summary = generate_synthetic_dataset(
        args.out,
        num_images=args.num_images,
        size=args.size,
        seed=args.seed,
        refs_per_image=args.refs_per_image,
        vocab_size=args.vocab_size,
        progress=lambda it: tqdm(it, desc='scenes', unit='img'))
    print(json.dumps(summary, indent=2))
    print(f'written to {args.out}')


if __name__ == '__main__':
    main()
