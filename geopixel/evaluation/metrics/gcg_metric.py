"""RS-GCG metric (GLaMM-exact) for tools/test.py."""
import json
import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from geopixel.registry import METRICS
from geopixel.utils import encode_rle
from ..gcg import (BertMeanPoolScorer, clean_caption, parse_phrases,
                   score_gcg)


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
    scoring.

    Args:
        bert_path: local ``bert-base-uncased`` folder for the recall text
            similarity; without it recall is IoU-only (labelled so).
        with_captions: compute CIDEr / METEOR (needs Java and the eval
            extra).
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
        self.bert_path = bert_path
        self.with_captions = with_captions
        self.prediction_dir = prediction_dir

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            image_id = osp.splitext(osp.basename(sample['img_path']))[0]
            gt_masks = _binary(sample['gt_masks'])
            counts = sample.get('mask_instance_counts') or [1] * len(gt_masks)
            pred_text = sample.get('pred_text', '')
            pred_masks = sample.get('pred_masks')
            pred_masks = (_binary(pred_masks)
                          if pred_masks is not None else [])
            record = dict(
                image_id=image_id,
                gt_caption=clean_caption(sample.get('gt_answer', '')),
                gt_labels=list(sample.get('phrases') or []),
                gt_masks=[encode_rle(m) for m in gt_masks],
                gt_kinds=['uni' if c <= 1 else 'multi' for c in counts],
                pred_caption=clean_caption(pred_text),
                pred_phrases=parse_phrases(pred_text),
                pred_masks=[encode_rle(m) for m in pred_masks])
            self.results.append(record)
            if self.prediction_dir:
                write_prediction(self.prediction_dir, record)

    def compute_metrics(self, results: list) -> dict:
        scorer = (BertMeanPoolScorer(self.bert_path)
                  if self.bert_path else None)
        scores = score_gcg(results, scorer, self.with_captions)
        scores.pop('recall_text_similarity')
        if scorer is None:  # say what the recall is
            scores = {(f'{k} (IoU-only)' if k.endswith('Recall') else k): v
                      for k, v in scores.items()}
        return scores


def write_prediction(folder: str, record: dict) -> str:
    """One GLaMM-format prediction file: ``{image_id}.json`` with
    ``image_id``, ``caption``, ``phrases`` and ``pred_masks`` (RLE)."""
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, f'{record["image_id"]}.json')
    with open(path, 'w') as f:
        json.dump(
            dict(
                image_id=record['image_id'],
                caption=record['pred_caption'],
                phrases=record['pred_phrases'],
                pred_masks=record['pred_masks']), f)
    return path
