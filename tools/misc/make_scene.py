"""Write one synthetic scene to try a model on (not part of any dataset).

    python tools/misc/make_scene.py --out DIR [--seed 1234] [--size 256]
    python tools/misc/make_scene.py --out DIR --geotiff --size 8192

PNG mode writes ``scene.png``, ``scene.json`` (objects: category, box,
referring expressions) and ``expressions.txt`` (one expression per line,
for ``tools/infer.py --task refer --prompt``). GeoTIFF mode (needs the
``gis`` extra) writes ``scene.tif``: a georeferenced RGB scene of any size
(UTM 33N, 0.5 m pixels) built block by block from synthetic scenes, for
``tools/infer.py --window`` and ``--geojson``. Pick a seed that your
training data did not use and the scene is held out.
"""
import argparse
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--seed', type=int, default=1234)
    parser.add_argument('--size', type=int, default=256, help='image side')
    parser.add_argument('--geotiff', action='store_true',
                        help='write a georeferenced scene.tif instead')
    args = parser.parse_args(argv)
    if args.size < 128:
        raise SystemExit('need --size >= 128')
    from geopixel.datasets.synthetic import write_scene, write_scene_geotiff
    if args.geotiff:
        os.makedirs(args.out, exist_ok=True)
        path = osp.join(args.out, 'scene.tif')
        write_scene_geotiff(path, args.size, seed=args.seed)
        print(f'wrote {path}')
        return
    summary = write_scene(args.out, args.seed, args.size)
    print(f'wrote {osp.join(args.out, "scene.png")} with '
          f'{len(summary["objects"])} objects; expressions in '
          f'{osp.join(args.out, "expressions.txt")}')


if __name__ == '__main__':
    from geopixel.gis import GISDependencyError
    from geopixel.utils import run_tool
    run_tool(main, (GISDependencyError, ))
