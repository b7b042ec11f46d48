"""Train a geopixel model from a config (MMEngine Runner or FlexibleRunner).

    python tools/train.py configs/geopixel/gcg_9p.py [--work-dir DIR]
        [--resume [CHECKPOINT]] [--amp] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

Multi-GPU / multi-process: tools/dist_train.sh CONFIG NUM_PROCS [args].
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from geopixel.engine.runner_setup import (add_runner_arguments,
                                              export_local_rank)
    parser = argparse.ArgumentParser(description='Train a geopixel model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision (bf16 where supported; needs an accelerator)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CHECKPOINT, or from the latest checkpoint in the '
        'work dir when no path is given')
    add_runner_arguments(parser)
    args = parser.parse_args(argv)
    export_local_rank(args)
    return args


def build_train_config(args):
    """The config with the command line applied (mmdet's order)."""
    import torch

    from geopixel.engine.runner_setup import load_config, setup_cpu_distributed
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    if args.amp:
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a CUDA device; on CPU geopixel '
                             'trains in fp32')
        wrapper = cfg.optim_wrapper.get('type')
        name = getattr(wrapper, '__name__', wrapper)
        if name in ('OptimWrapper', None):
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('dtype', 'bfloat16')
        elif name != 'AmpOptimWrapper':
            raise SystemExit(f'--amp does not apply to {name}; set the '
                             'precision in the strategy instead')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    # a FlexibleRunner's strategy wraps the model itself
    setup_cpu_distributed(cfg, wrap_model=cfg.get('runner_type') is None)
    return cfg


def build_runner(cfg):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if cfg.get('runner_type') is None:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def main(argv=None):
    args = parse_args(argv)
    import geopixel.engine  # noqa: F401  (checkpoint I/O, hooks)
    from geopixel.engine import trust_checkpoint_dir

    cfg = build_train_config(args)
    trust_checkpoint_dir(cfg.work_dir)
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
