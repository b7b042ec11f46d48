"""Referring segmentation scores as RRSIS-D papers report them.

Per sample (every sentence of every ref): ``I = |pred & gt|``, ``U = |pred |
gt|`` as integer pixel counts, ``IoU = I / U`` in float64 (0 when U = 0,
as in RMSIN). Over the split: P@X = fraction of samples with
``IoU >= X`` for X in 0.5..0.9, ``oIoU = sum I / sum U`` and ``mIoU`` = mean
per-sample IoU, all x100. Masks are compared at the original resolution, or
at 480 x 480 nearest (RMSIN's protocol) with ``resolution=480``.

Plain-numpy functions, so ``RRSISMetric`` (inside ``tools/test.py``) and the
prediction-file scorer (``tools/analysis/eval_rrsis_predictions.py``) score
the same way.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .iou import intersection_union

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def resize_nearest(mask: np.ndarray, size: int) -> np.ndarray:
    """PIL ``NEAREST`` to ``size x size`` on a uint8 mask (RMSIN's
    transform)."""
    from PIL import Image
    img = Image.fromarray(mask.astype(np.uint8))
    return np.asarray(img.resize((size, size), Image.NEAREST))


def sample_intersection_union(pred: np.ndarray, gt: np.ndarray,
                              resolution: Optional[int] = None
                              ) -> Tuple[int, int]:
    """(I, U) of one sample, after the optional 480-style resize."""
    if resolution is not None:
        pred = resize_nearest(pred, resolution)
        gt = resize_nearest(gt, resolution)
    return intersection_union(pred, gt)


def rrsis_scores(pairs: Sequence[Tuple[int, int]],
                 thresholds: Sequence[float] = THRESHOLDS) -> Dict[str,
                                                                   float]:
    """P@X, oIoU and mIoU (x100) and ``samples`` from per-sample (I, U)."""
    inter = np.array([p[0] for p in pairs], dtype=np.int64)
    union = np.array([p[1] for p in pairs], dtype=np.int64)
    iou = np.zeros(len(pairs), dtype=np.float64)
    nonzero = union > 0
    iou[nonzero] = inter[nonzero] / union[nonzero]
    scores = {f'P@{t}': float((iou >= t).mean() * 100) for t in thresholds}
    scores['oIoU'] = float(inter.sum() / max(union.sum(), 1) * 100)
    scores['mIoU'] = float(iou.mean() * 100)
    scores['samples'] = len(pairs)
    return scores


def describe_sample(sample: dict) -> str:
    """``img_path ..., ref_id ..., sent_id ...`` (what the sample has)."""
    parts = [f'{k} {sample[k]}' for k in ('img_path', 'ref_id', 'sent_id')
             if sample.get(k) is not None]
    return ', '.join(parts) or 'a sample without img_path or ids'


def _numpy(array) -> np.ndarray:
    if hasattr(array, 'detach'):  # torch.Tensor
        return array.detach().float().cpu().numpy()
    return np.asarray(array)


def gt_mask(gt, where: str) -> np.ndarray:
    """The one GT mask of an RRSIS sample: [1, H, W] or [H, W]."""
    shape = tuple(gt.shape)
    if len(shape) == 3 and shape[0] == 1:
        gt = gt[0]
    elif len(shape) != 2:
        raise ValueError(
            f'{where}: gt_masks must be one mask, [1, H, W] or [H, W]; got '
            f'shape {shape}')
    return _numpy(gt) > 0


def prediction_mask(pred, gt_shape: Tuple[int, int],
                    where: str) -> np.ndarray:
    """The predicted mask of an RRSIS sample, binarised at ``> 0``.

    ``pred`` is [N, H, W] or a list of N [H, W] masks (the first is the
    answer's ``[SEG]``; N = 0 or None is an empty prediction) or exactly one
    [H, W] mask, with
    H, W those of the GT. Any other shape is an error: reading the first row
    of a 2-D array as the mask would broadcast it into a number.
    """
    gt_shape = tuple(gt_shape)
    if isinstance(pred, (list, tuple)):  # a list of [H, W] masks
        pred = np.stack([_numpy(p) for p in pred]) if len(pred) else None
    if pred is None:
        return np.zeros(gt_shape, bool)
    shape = tuple(pred.shape)
    if shape == gt_shape:
        return _numpy(pred) > 0
    if len(shape) != 3 or shape[1:] != gt_shape:
        raise ValueError(
            f'{where}: pred_masks must be [N, H, W] (or one [H, W] mask) '
            f'with H, W = the ground truth\'s {list(gt_shape)}; got shape '
            f'{list(shape)}')
    if shape[0] == 0:
        return np.zeros(gt_shape, bool)
    return _numpy(pred[0]) > 0
