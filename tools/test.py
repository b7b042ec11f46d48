"""Evaluate a trained geopixel model with the metrics in its config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--show-dir DIR] [--non-strict] [--trust-checkpoint]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Runs MMEngine's plain Runner test loop (also for a DeepSpeed ZeRO folder,
once tools/model_converters/zero_to_checkpoint.py has made it one file)
and writes the metrics as JSON in the work dir. The checkpoint must fit
the model: a missing, unexpected or mis-shaped key stops the run
(``--non-strict`` loads what fits and prints the report). It is read
without unpickling code unless it sits in the run's work dir or
``--trust-checkpoint`` is given.
"""
import argparse
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
        help='a folder: write prediction files (RS-GCG: one GLaMM-format '
        'JSON per image; RRSIS-D: one {sent_id}.png mask per sentence); a '
        '.pkl file: dump the raw predictions')
    parser.add_argument(
        '--show-dir',
        help='write ground-truth / prediction overlays to this folder')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='evaluate even if checkpoint keys are missing, unexpected or '
        'mis-shaped (the report is printed); the default is an error')
    add_runner_arguments(parser)
    args = parser.parse_args(argv)
    export_local_rank(args)
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmengine.evaluator import DumpResults
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner

    from geopixel.checkpoint import describe_fit, load_model_weights
    from geopixel.engine.preflight import check_run_prerequisites
    from geopixel.engine.runner_setup import (load_config,
                                              setup_cpu_distributed,
                                              trusts_checkpoint)
    from geopixel.evaluation.functional.files import (format_number,
                                                      write_scores)

    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    # loaded below, strictly; MMEngine's own load only logs missing keys
    cfg.load_from = None
    cfg.resume = False
    # A DeepSpeed config evaluates on the plain Runner (mmengine#1408).
    cfg.pop('runner_type', None)
    cfg.pop('strategy', None)
    check_run_prerequisites(cfg, ('test_dataloader', ), args.checkpoint)
    setup_cpu_distributed(cfg)
    if args.show_dir:
        cfg.default_hooks.setdefault('visualization', dict(
            type='geopixel.GeoPixelVisualizationHook'))
        cfg.default_hooks.visualization.update(
            draw=True, interval=1, test_out_dir=args.show_dir)
    pickle_out = args.out and args.out.endswith(('.pkl', '.pickle'))
    if args.out and not pickle_out:
        evaluators = cfg.test_evaluator if isinstance(
            cfg.test_evaluator, list) else [cfg.test_evaluator]
        writers = [e for e in evaluators
                   if getattr(e['type'], '__name__', e['type']).endswith(
                       ('GCGMetric', 'RRSISMetric'))]
        if not writers:
            raise SystemExit('--out DIR writes prediction files and needs a '
                             'GCGMetric or an RRSISMetric; use --out '
                             'file.pkl for raw predictions')
        for metric in writers:
            metric['prediction_dir'] = args.out
    runner = Runner.from_cfg(cfg)
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    report = load_model_weights(
        model, args.checkpoint, strict=not args.non_strict,
        trusted=trusts_checkpoint(args, cfg, args.checkpoint))
    runner.logger.info(f'loaded {args.checkpoint}: {describe_fit(report)}')
    if pickle_out:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = runner.test()
    if runner.rank == 0:
        path = osp.join(runner.log_dir, 'metrics.json')
        write_scores(path, metrics)
        table = '\n'.join(f'  {k:<32} {format_number(v):>10}'
                          for k, v in metrics.items())
        runner.logger.info(f'results:\n{table}\nwritten to {path}')


if __name__ == '__main__':
    from geopixel.checkpoint import CheckpointError
    from geopixel.utils import BadRecordError, run_tool
    run_tool(main, (CheckpointError, BadRecordError))
