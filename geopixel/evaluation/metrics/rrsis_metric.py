"""RRSIS-D metric for tools/test.py (rules: geopixel/evaluation/rrsis.py)."""
from typing import Optional, Sequence

from mmengine.evaluator import BaseMetric

from geopixel.registry import METRICS
from ..functional.rrsis import (THRESHOLDS, describe_sample, gt_mask,
                                prediction_mask, rrsis_scores,
                                sample_intersection_union)
from ..functional.rrsis_files import write_prediction_png


@METRICS.register_module()
class RRSISMetric(BaseMetric):
    """P@0.5-0.9, oIoU and mIoU for one mask per sample.

    ``pred_masks`` are logits (``> 0``) shaped [N, H, W] (the first is the
    prediction) or one [H, W] mask, at the GT's H, W; any other shape is an
    error naming the sample. A sample with no predicted mask (no ``[SEG]``
    generated) counts as an empty prediction, never as a skipped sample.

    Args:
        resolution: None (original size) or a side such as 480.
        thresholds: P@X thresholds.
        prediction_dir: also write each sample's predicted mask as
            ``{sent_id}.png`` (original size, 0/255) here, the format
            ``tools/analysis/eval_rrsis_predictions.py`` scores.
    """

    default_prefix = 'rrsis'

    def __init__(self,
                 resolution: Optional[int] = None,
                 thresholds: Sequence[float] = THRESHOLDS,
                 prediction_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.resolution = resolution
        self.thresholds = tuple(thresholds)
        self.prediction_dir = prediction_dir

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            where = describe_sample(sample)
            gt = gt_mask(sample['gt_masks'], where)
            pred = prediction_mask(sample.get('pred_masks'), gt.shape, where)
            if self.prediction_dir:
                if sample.get('sent_id') is None:
                    raise ValueError(f'{where}: no sent_id to name its '
                                     'prediction file')
                write_prediction_png(self.prediction_dir, sample['sent_id'],
                                     pred)
            self.results.append(
                sample_intersection_union(pred, gt, self.resolution))

    def compute_metrics(self, results: list) -> dict:
        return rrsis_scores(results, self.thresholds)
