"""Referring segmentation metrics as RRSIS-D papers report them.

Per sample (every sentence of every ref): ``I = |pred & gt|``, ``U = |pred |
gt|`` as integer pixel counts, ``IoU = I / U`` in float64 (0 when U = 0,
as in RMSIN). Over the split: P@X = fraction of samples with
``IoU >= X`` for X in 0.5..0.9, ``oIoU = sum I / sum U`` and ``mIoU`` = mean
per-sample IoU, all x100. Masks are compared at the original resolution, or
at 480 x 480 nearest (RMSIN's protocol) with ``resolution=480``.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from geopixel.registry import METRICS

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _resize_nearest(mask: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image
    img = Image.fromarray(mask.astype(np.uint8))
    return np.asarray(img.resize((size, size), Image.NEAREST))


def intersection_union(pred: np.ndarray, gt: np.ndarray):
    pred = pred.astype(bool)
    gt = gt.astype(bool)
    return int(np.logical_and(pred, gt).sum()), int(
        np.logical_or(pred, gt).sum())


@METRICS.register_module()
class RRSISMetric(BaseMetric):
    """P@0.5-0.9, oIoU and mIoU for one mask per sample.

    The prediction is the first of ``pred_masks`` (logits, ``> 0``); a
    sample with no predicted mask (no ``[SEG]`` generated) counts as an
    empty prediction, never as a skipped sample.

    Args:
        resolution: None (original size) or a side such as 480.
        thresholds: P@X thresholds.
    """

    default_prefix = 'rrsis'

    def __init__(self,
                 resolution: Optional[int] = None,
                 thresholds: Sequence[float] = THRESHOLDS,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.resolution = resolution
        self.thresholds = tuple(thresholds)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            gt = sample['gt_masks']
            gt = gt.cpu().numpy() if isinstance(gt, torch.Tensor) else gt
            gt = gt[0] if gt.ndim == 3 else gt
            pred = sample.get('pred_masks')
            if pred is None or len(pred) == 0:
                pred = np.zeros_like(gt, dtype=bool)
            else:
                pred = pred[0]
                pred = (pred.float().cpu().numpy() if isinstance(
                    pred, torch.Tensor) else np.asarray(pred)) > 0
            if self.resolution is not None:
                pred = _resize_nearest(pred, self.resolution)
                gt = _resize_nearest(gt, self.resolution)
            inter, union = intersection_union(pred, gt)
            self.results.append((inter, union))

    def compute_metrics(self, results: list) -> dict:
        inter = np.array([r[0] for r in results], dtype=np.int64)
        union = np.array([r[1] for r in results], dtype=np.int64)
        iou = np.zeros(len(results), dtype=np.float64)
        nonzero = union > 0
        iou[nonzero] = inter[nonzero] / union[nonzero]
        metrics = {
            f'P@{t}': float((iou >= t).mean() * 100)
            for t in self.thresholds
        }
        metrics['oIoU'] = float(inter.sum() / max(union.sum(), 1) * 100)
        metrics['mIoU'] = float(iou.mean() * 100)
        metrics['samples'] = len(results)
        return metrics
