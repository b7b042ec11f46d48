"""Train a geopixel model from a config (MMEngine Runner or FlexibleRunner).

    python tools/train.py configs/geopixel/gcg_9p.py [--work-dir DIR]
        [--resume [CHECKPOINT]] [--amp] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

Multi-GPU / multi-process: tools/dist_train.sh CONFIG NUM_PROCS [args].

``--resume`` without a path continues from the newest checkpoint of the
work dir that reads back (a damaged one is skipped with a warning). Only
checkpoints in the work dir, or named with ``--trust-checkpoint``, may be
fully unpickled.
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
        cfg.load_from = newest_readable_checkpoint(cfg.work_dir)
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    # a FlexibleRunner's strategy wraps the model itself
    setup_cpu_distributed(cfg, wrap_model=cfg.get('runner_type') is None)
    return cfg


def newest_readable_checkpoint(work_dir: str):
    """What ``--resume`` continues from: None when the work dir holds no
    checkpoint (training starts), an error when none of them reads."""
    from geopixel.engine.checkpoint import (pick_resume_checkpoint,
                                            resume_candidates)
    path = pick_resume_checkpoint(work_dir)
    candidates = resume_candidates(work_dir)
    if path is None and candidates:
        raise SystemExit(
            f'--resume: none of the {len(candidates)} checkpoint(s) in '
            f'{work_dir} reads back ({", ".join(candidates)}); see the '
            'warnings above')
    return path


def build_runner(cfg):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if cfg.get('runner_type') is None:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def main(argv=None):
    args = parse_args(argv)
    from geopixel.engine import setup_mmengine

    cfg = build_train_config(args)
    # a missing DeepSpeed, tokenizer, checkpoint or data root, all at once
    from geopixel.engine.preflight import check_run_prerequisites
    check_run_prerequisites(cfg)
    # full unpickling only for the run's own checkpoints, or the named one
    # with --trust-checkpoint
    trusted = [cfg.work_dir]
    if args.trust_checkpoint and cfg.get('load_from'):
        trusted.append(cfg.load_from)
    setup_mmengine(trusted_checkpoints=trusted)
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    from geopixel.checkpoint import CheckpointError
    from geopixel.utils import BadRecordError, run_tool
    run_tool(main, (CheckpointError, BadRecordError))
