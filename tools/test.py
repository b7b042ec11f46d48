"""Evaluate a trained geopixel model with the metrics in its config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--show-dir DIR] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

Runs MMEngine's plain Runner test loop (also for checkpoints trained with
DeepSpeed, after tools/model_converters) and writes the metrics as JSON in
the work dir.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from geopixel.engine.runner_setup import (add_runner_arguments,
                                              export_local_rank)
    parser = argparse.ArgumentParser(description='Test a geopixel model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='a folder: write one GLaMM-format prediction file per image '
        '(RS-GCG); a .pkl file: dump the raw predictions')
    parser.add_argument(
        '--show-dir',
        help='write ground-truth / prediction overlays to this folder')
    add_runner_arguments(parser)
    args = parser.parse_args(argv)
    export_local_rank(args)
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmengine.evaluator import DumpResults
    from mmengine.runner import Runner

    import geopixel.engine  # noqa: F401  (checkpoint I/O, hooks)
    from geopixel.engine import trust_checkpoint_dir
    from geopixel.engine.runner_setup import load_config, setup_cpu_distributed

    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    # A DeepSpeed config evaluates on the plain Runner (mmengine#1408).
    cfg.pop('runner_type', None)
    cfg.pop('strategy', None)
    # the user names this checkpoint: it may hold a full training state
    trust_checkpoint_dir(osp.dirname(osp.abspath(args.checkpoint)))
    setup_cpu_distributed(cfg)
    if args.show_dir:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='geopixel.GeoPixelVisualizationHook',
                 out_dir=args.show_dir)
        ]
    pickle_out = args.out and args.out.endswith(('.pkl', '.pickle'))
    if args.out and not pickle_out:
        evaluators = cfg.test_evaluator if isinstance(
            cfg.test_evaluator, list) else [cfg.test_evaluator]
        gcg = [e for e in evaluators
               if getattr(e['type'], '__name__', e['type']).endswith(
                   'GCGMetric')]
        if not gcg:
            raise SystemExit('--out DIR writes GLaMM prediction files and '
                             'needs a GCGMetric; use --out file.pkl for '
                             'raw predictions')
        for metric in gcg:
            metric['prediction_dir'] = args.out
    runner = Runner.from_cfg(cfg)
    if pickle_out:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = runner.test()
    if runner.rank == 0:
        path = osp.join(runner.log_dir, 'metrics.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)
        table = '\n'.join(f'  {k:<32} {float(v):10.2f}'
                          for k, v in metrics.items())
        runner.logger.info(f'results:\n{table}\nwritten to {path}')


if __name__ == '__main__':
    main()
