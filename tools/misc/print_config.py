"""Print a config with its bases and command-line overrides applied,
loaded exactly as tools/train.py loads it (work_dir included).

    python tools/misc/print_config.py CONFIG [--cfg-options k=v ...]
        [--save-path FILE]
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def main(argv=None):
    from mmengine.config import DictAction

    from geopixel.engine.runner_setup import load_config
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--save-path', help='also write the resolved config')
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    print(cfg.pretty_text)
    if args.save_path:
        cfg.dump(args.save_path)
        print(f'written to {args.save_path}')


if __name__ == '__main__':
    main()
