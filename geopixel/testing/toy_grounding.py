"""Toy scaffolding for testing tools and engine code.

A deliberately small grounding model (one conv on a 64 px thumbnail that
predicts the union of a sample's masks), a metric and a crash hook, so the
tools' flow (config, overrides, checkpoints, resume, evaluation, DDP) is
tested on the real data pipeline without the GeoPixel model. The config
``geopixel/testing/configs/toy_rrsis.py`` (:data:`TOY_RRSIS_CONFIG`) wires
them to the synthetic RRSIS-D data.
"""
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from torch import nn

TOY_RRSIS_CONFIG = osp.join(osp.dirname(osp.abspath(__file__)), 'configs',
                            'toy_rrsis.py')


class ToyGroundingModel(BaseModel):
    """One conv on a thumbnail: a grounding model that trains in seconds."""

    def __init__(self, size: int = 64):
        super().__init__()
        self.size = size
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def _logits(self, images):
        x = torch.stack([
            F.interpolate(img[None].float() / 255, size=(self.size, ) * 2,
                          mode='bilinear', align_corners=False)[0]
            for img in images
        ])
        return self.conv(x)[:, 0]

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self._logits(inputs['image'])
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            gt = torch.stack([
                F.interpolate(
                    ds.gt_masks.amax(0)[None, None].float(),
                    size=(self.size, ) * 2,
                    mode='nearest')[0, 0] for ds in data_samples
            ])
            return dict(loss_mask=F.binary_cross_entropy_with_logits(
                logits, gt))
        for lg, ds in zip(logits, data_samples):
            h, w = ds.ori_shape
            ds.pred_masks = F.interpolate(
                lg[None, None], size=(h, w), mode='bilinear',
                align_corners=False)[0]
        return data_samples


class ToyIoUMetric(BaseMetric):
    """Mean IoU of the first predicted mask with the union of GT masks."""
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        for ds in data_samples:  # the Evaluator passes dicts
            pred = ds['pred_masks'][0].cpu().numpy() > 0
            gt = ds['gt_masks'].amax(0).cpu().numpy() > 0
            union = np.logical_or(pred, gt).sum()
            iou = np.logical_and(pred, gt).sum() / union if union else 0.0
            self.results.append(float(iou))

    def compute_metrics(self, results):
        return dict(mIoU=100 * float(np.mean(results)), samples=len(results))


class CrashAtIterHook(Hook):
    """Kills the run at ``at_iter`` (simulates a crash between saves)."""

    def __init__(self, at_iter=None):
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self.at_iter is not None and runner.iter + 1 == self.at_iter:
            raise SystemExit(f'simulated crash at iteration {self.at_iter}')
