"""RS-GCG metric (GLaMM-exact) for tools/test.py."""
import logging
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from geopixel.registry import METRICS
from geopixel.utils import encode_rle
from ..functional.files import format_number
from geopixel.structures import glamm_caption, glamm_phrases

from ..functional.gcg_files import write_prediction
from ..functional.gcg import (KINDS, BertMeanPoolScorer,
                   require_caption_tools, score_gcg_captions,
                   score_gcg_masks)


def _binary(masks) -> np.ndarray:
    if isinstance(masks, torch.Tensor):
        masks = masks.float().cpu().numpy()
    return np.asarray(masks) > 0


@METRICS.register_module()
class GCGMetric(BaseMetric):
    """CIDEr, METEOR, AP50, mIoU and Recall (overall, uni- and
    multi-target), as GLaMM's evaluator computes them.

    Masks are kept as compressed RLE between ``process`` and
    ``compute_metrics`` (a split of 800 x 800 masks would not fit in memory
    otherwise). Captions are cleaned as GLaMM's inference script does before
    scoring. The uni/multi split needs each sample's
    ``mask_instance_counts``; where a sample has none (RLE sources do not
    say), the split is left out and the log says why. Metrics that are
    undefined (no GT of a kind) are left out and logged. The mask metrics
    are logged before caption scoring starts.

    Args:
        bert_path: local ``bert-base-uncased`` folder for the recall text
            similarity; without it recall is IoU-only (labelled so).
        with_captions: compute CIDEr / METEOR (needs Java and the eval
            extra; checked when the metric is built, before inference).
        prediction_dir: also write one GLaMM-format JSON per image here.
    """

    default_prefix = 'gcg'

    def __init__(self,
                 bert_path: Optional[str] = None,
                 with_captions: bool = True,
                 prediction_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if with_captions:
            require_caption_tools(
                'Or score without them: --cfg-options '
                'test_evaluator.with_captions=False')
        self.bert_path = bert_path
        self.with_captions = with_captions
        self.prediction_dir = prediction_dir

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            image_id = osp.splitext(osp.basename(sample['img_path']))[0]
            gt_masks = _binary(sample['gt_masks'])
            counts = sample.get('mask_instance_counts')
            if counts is not None and len(counts) != len(gt_masks):
                raise ValueError(
                    f'{sample["img_path"]}: {len(counts)} '
                    f'mask_instance_counts for {len(gt_masks)} GT masks')
            pred_text = sample.get('pred_text', '')
            pred_masks = sample.get('pred_masks')
            pred_masks = (_binary(pred_masks)
                          if pred_masks is not None else [])
            record = dict(
                image_id=image_id,
                size=tuple(int(s) for s in gt_masks.shape[-2:]),
                gt_caption=glamm_caption(sample.get('gt_answer', '')),
                gt_labels=list(sample.get('phrases') or []),
                gt_masks=[encode_rle(m) for m in gt_masks],
                gt_kinds=None if counts is None else
                ['uni' if c <= 1 else 'multi' for c in counts],
                pred_caption=glamm_caption(pred_text),
                # the model's pred_phrases follow GLaMM's rule, so the
                # visualizer draws what is scored
                pred_phrases=list(sample['pred_phrases']
                                  if 'pred_phrases' in sample else
                                  glamm_phrases(pred_text)),
                pred_masks=[encode_rle(m) for m in pred_masks])
            self.results.append(record)
            if self.prediction_dir:
                write_prediction(self.prediction_dir, record)

    def compute_metrics(self, results: list) -> dict:
        scorer = (BertMeanPoolScorer(self.bert_path)
                  if self.bert_path else None)
        scores = score_gcg_masks(results, scorer)
        scores.pop('recall_text_similarity')
        unknown = sum(r['gt_kinds'] is None for r in results)
        if unknown:
            print_log(
                f'GCGMetric: no uni/multi-target split: {unknown} of '
                f'{len(results)} samples have no mask_instance_counts (their '
                'masks come from a source, such as RLE, that does not say '
                'how many instances a mask joins)', logger='current',
                level=logging.WARNING)
        undefined = sorted(k for k, v in scores.items() if v is None
                           and not (unknown and k.startswith(KINDS)))
        if undefined:
            print_log(f'GCGMetric: undefined on this split (no ground truth '
                      f'of the kind), left out: {", ".join(undefined)}',
                      logger='current', level=logging.WARNING)
        scores = {k: v for k, v in scores.items() if v is not None}
        print_log('GCGMetric mask metrics: ' + ', '.join(
            f'{k}: {format_number(v)}' for k, v in scores.items()),
                  logger='current')
        if self.with_captions:
            scores.update(score_gcg_captions(results))
        return scores
