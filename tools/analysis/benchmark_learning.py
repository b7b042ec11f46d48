"""Does the tiny GeoPixel learn? Train it on CPU for a time budget on
synthetic RRSIS-D data and score a held-out split against trivial baselines.

    python tools/analysis/benchmark_learning.py [--minutes 15] [--images 3000]
        [--size 256] [--config configs/geopixel/rrsis_tiny.py]
        [--work-dir work_dirs/benchmark_learning]

The schedule is planned for ``--max-iters`` (2,600: what 15 minutes gave
at 0.33 s per step) and the budget may end it early; ``--fit-schedule``
fits it to the budget instead (``TimeBudgetHook(fit_schedule=True)``:
the cosine reaches its minimum as the budget runs out). One run each on a
machine that managed about 1,800 iterations: 51.07 / 48.23 planned, 48.58 /
45.54 fitted; the model was still learning fast at the higher rate
(docs/en/notes/refer_study.md, section 7).

Writes ``summary.json`` (final P@X/oIoU/mIoU on the test split, the
all-zero, whole-image and all-objects baselines, iterations, seconds, and
``refer_probe``: tools/analysis/refer_probe.py's JSON, i.e. scores and
baselines per expression type, the sentence-swap and [SEG] probes) and
``curve.png`` (training loss and validation mIoU over iterations) to the
work dir.
Set MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ (see docs) on CPU.
"""
import argparse
import json
import os
import os.path as osp
import resource
import sys
import time
from typing import Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def refer_probe(model, cfg, dataset) -> dict:
    """tools/analysis/refer_probe.py's JSON for the trained model: scores
    and baselines per expression type, the swap and [SEG] probes."""
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from refer_probe import probe_model

    from geopixel.apis import GeoPixelInferencer
    return probe_model(
        GeoPixelInferencer(model, cfg=cfg, show_progress=False), dataset)


def plot_curve(scalars_file: str, out_png: str,
               baselines: Optional[dict] = None) -> dict:
    """Training losses and validation mIoU/oIoU against iterations."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    # every loss term the model logs (loss_mask_aux, loss_seg_words: parts
    # that have one), in order of first appearance
    losses = {}
    val = {k: [] for k in ('iter', 'rrsis/mIoU', 'rrsis/oIoU')}
    last_iter = 0
    with open(scalars_file) as f:
        for line in f:
            row = json.loads(line)
            if 'loss' in row:
                last_iter = row['iter']
                for key in row:
                    if key.startswith('loss_'):
                        xs, ys = losses.setdefault(key, ([], []))
                        xs.append(row['iter'])
                        ys.append(row[key])
            if 'rrsis/mIoU' in row:  # val rows carry no iteration
                val['iter'].append(last_iter)
                val['rrsis/mIoU'].append(row['rrsis/mIoU'])
                val['rrsis/oIoU'].append(row['rrsis/oIoU'])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, (xs, ys) in losses.items():
        if xs:
            ax1.plot(xs, ys, label=key)
    ax1.set_yscale('log')
    ax1.set_xlabel('iteration')
    ax1.set_title('training losses (weighted)')
    ax1.legend()
    ax2.plot(val['iter'], val['rrsis/mIoU'], 'o-', label='val mIoU')
    ax2.plot(val['iter'], val['rrsis/oIoU'], 's-', label='val oIoU')
    if baselines:
        ax2.axhline(baselines['whole_image']['mIoU'], color='grey',
                    linestyle='--', label='whole-image mask')
        ax2.axhline(baselines['all_objects']['mIoU'], color='grey',
                    linestyle=':', label='all objects of the scene')
        ax2.axhline(0, color='black', linewidth=0.8)
    ax2.set_ylim(bottom=-0.5)
    ax2.set_xlabel('iteration')
    ax2.set_ylabel('%')
    ax2.set_title('held-out validation (synthetic RRSIS-D)')
    ax2.legend()
    fig.suptitle('tiny GeoPixel, random init, CPU (2 cores)')
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    return dict(val_iters=val['iter'], val_miou=val['rrsis/mIoU'],
                val_oiou=val['rrsis/oIoU'])


def main(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='configs/geopixel/rrsis_tiny.py')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_learning')
    parser.add_argument('--minutes', type=float, default=15.0)
    parser.add_argument('--max-iters', type=int, default=2600)
    parser.add_argument('--fit-schedule', action='store_true',
                        help='fit the schedule to the budget')
    parser.add_argument('--val-interval', type=int, default=650)
    parser.add_argument('--images', type=int, default=3000)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    args = parser.parse_args(argv)

    from geopixel.datasets.synthetic import generate_synthetic_dataset
    from geopixel.engine.runner_setup import load_config, relocate_paths
    from geopixel.evaluation.functional.refer_probes import BASELINES
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner

    data = osp.join(args.work_dir, 'data')
    if not osp.isfile(osp.join(data, 'meta.json')):
        generate_synthetic_dataset(data, num_images=args.images,
                                   size=args.size, seed=args.seed)
    cfg = load_config(args.config, args.cfg_options, work_dir=args.work_dir)
    relocate_paths(cfg, 'data/synthetic', data)  # data roots and tokenizer
    cfg.train_cfg.max_iters = args.max_iters
    cfg.train_cfg.val_interval = args.val_interval
    warmup = min(cfg.param_scheduler[0].end, args.max_iters // 5)
    cfg.param_scheduler[0].end = warmup
    cfg.param_scheduler[1].begin = warmup
    cfg.param_scheduler[1].end = args.max_iters
    cfg.default_hooks.checkpoint.interval = args.max_iters
    cfg.default_hooks.logger.interval = 10
    cfg.custom_hooks.append(
        dict(type='geopixel.TimeBudgetHook', minutes=args.minutes,
             fit_schedule=args.fit_schedule))

    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    train_seconds = time.time() - start
    # the budget may stop training between checkpoints: keep the final model
    runner.save_checkpoint(args.work_dir, 'final.pth')
    final = runner.test()
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    probe = refer_probe(model, cfg, runner.test_dataloader.dataset)
    summary = dict(
        config=args.config,
        cfg_options=args.cfg_options,
        budget_minutes=args.minutes,
        iterations=runner.iter,
        wall_seconds_train_and_val=round(train_seconds, 1),
        batch_size=cfg.train_dataloader.batch_size,
        data=dict(images=args.images, size=args.size, seed=args.seed),
        test=final,
        peak_rss_mb=round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        baselines={
            name: probe['scores'][name]['overall']
            for name in BASELINES
        },
        refer_probe=probe,
        malloc_tuned='MALLOC_MMAP_THRESHOLD_' in os.environ)
    summary.update(
        plot_curve(
            osp.join(runner.log_dir, 'vis_data', 'scalars.json'),
            osp.join(args.work_dir, 'curve.png'), summary['baselines']))
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
