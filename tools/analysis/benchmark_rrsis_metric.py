"""Time the RRSIS metric on an RRSIS-D-sized test split.

    python tools/analysis/benchmark_rrsis_metric.py [--samples 3481]
        [--size 800] [--resolution 480]

Feeds the metric fp32 mask logits and uint8 ground truth of ``size x size``
(random boxes), as tools/test.py does, and reports the seconds spent in
``process`` and ``compute_metrics``.
"""
import argparse
import json
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=3481)
    parser.add_argument('--size', type=int, default=800)
    parser.add_argument('--resolution', type=int, default=None)
    parser.add_argument('--batch', type=int, default=8)
    args = parser.parse_args(argv)
    import numpy as np
    import torch

    from geopixel.evaluation.metrics import RRSISMetric
    rng = np.random.default_rng(0)
    metric = RRSISMetric(resolution=args.resolution)
    process = 0.0
    for start in range(0, args.samples, args.batch):
        batch = []
        for _ in range(min(args.batch, args.samples - start)):
            y, x = rng.integers(0, args.size - 200, 2)
            gt = torch.zeros(1, args.size, args.size, dtype=torch.uint8)
            gt[0, y:y + 150, x:x + 120] = 1
            pred = torch.full((1, args.size, args.size), -1.0)
            pred[0, y + 10:y + 170, x:x + 120] = 2.0
            batch.append(dict(gt_masks=gt, pred_masks=pred))
        t = time.perf_counter()
        metric.process(None, batch)
        process += time.perf_counter() - t
    t = time.perf_counter()
    scores = metric.compute_metrics(metric.results)
    compute = time.perf_counter() - t
    print(json.dumps(dict(samples=args.samples, size=args.size,
                          resolution=args.resolution,
                          process_seconds=round(process, 2),
                          compute_seconds=round(compute, 4),
                          mIoU=round(scores['mIoU'], 3)), indent=2))


if __name__ == '__main__':
    main()
