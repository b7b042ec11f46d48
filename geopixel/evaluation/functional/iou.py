"""Intersection over union: the one definition every metric uses.

Counts are integer pixels of the binary masks (``> 0``); IoU = I / U in
float64 and 0 when the union is empty (RMSIN's and GLaMM's convention for
an empty prediction of an empty target).
"""
from typing import Sequence, Tuple

import numpy as np


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> Tuple[int, int]:
    """Integer (I, U) pixel counts of two binary masks."""
    pred = np.asarray(pred).astype(bool)
    gt = np.asarray(gt).astype(bool)
    return (int(np.logical_and(pred, gt).sum()),
            int(np.logical_or(pred, gt).sum()))


def iou_matrix(rows: Sequence[np.ndarray],
               cols: Sequence[np.ndarray]) -> np.ndarray:
    """IoU of every (row, col) pair of masks, float64."""
    out = np.zeros((len(rows), len(cols)), dtype=np.float64)
    if not len(rows) or not len(cols):
        return out
    a = np.stack([np.asarray(m, bool).reshape(-1) for m in rows])
    b = np.stack([np.asarray(m, bool).reshape(-1) for m in cols])
    inter = a.astype(np.float64) @ b.T.astype(np.float64)
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    np.divide(inter, union, out=out, where=union > 0)
    return out
