"""Metric computations on plain arrays, strings and files (no MMEngine):
the same functions serve the metrics in ``tools/test.py`` and the scorers of
prediction folders written by any model (``tools/analysis/eval_*.py``).

* ``iou``: the one IoU definition;
* ``gcg``: RS-GCG, GLaMM-exact mIoU, recall, AP50, CIDEr/METEOR;
* ``gcg_files``: GLaMM-format ground truth and prediction files (writer
  and reader);
* ``rrsis``: RRSIS-D, P@X, oIoU, mIoU from per-sample (I, U);
* ``rrsis_files``: per-sentence prediction files (writer and reader), GT
  samples;
* ``refer_probes``: does a referring model follow the expression
  (baselines and scores per expression type, sentence-swap and ``[SEG]``
  probes);
* ``rle``: COCO RLE checked without trusting pycocotools on bad input;
* ``files``: prediction-folder rules (duplicates, missing files, strict
  JSON).
"""
from .iou import intersection_union, iou_matrix

__all__ = ['intersection_union', 'iou_matrix']
