"""Mask losses: the official loss values and mmdet's argument semantics."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from geopixel.models.losses import CrossEntropyLoss, DiceLoss, dice_loss
from geopixel.registry import MODELS
from geopixel.utils import polygons_to_mask


def test_official_training_mask_losses_reproduced(parity_dir,
                                                  geopixeld_sample_dir):
    """BCE x2.0 and Dice x0.5 from the official decoder output and GT."""
    with open(osp.join(parity_dir, 'train.json')) as f:
        meta = json.load(f)
    low_res = load_file(osp.join(parity_dir,
                                 'train_outputs.safetensors'))['low_res_masks']
    with open(osp.join(geopixeld_sample_dir, 'GeoPixelD', 'train',
                       'P0224_0_800_0_800.json')) as f:
        polygons = json.load(f)['polygons']
    gt = torch.from_numpy(
        np.stack([polygons_to_mask(p, 800, 800) for p in polygons]))
    pred = F.interpolate(
        low_res, (800, 800), mode='bilinear', align_corners=False)[:, 0]
    bce = MODELS.build(
        dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='none',
             loss_weight=2.0))
    dice = MODELS.build(
        dict(type='DiceLoss', naive_dice=True, eps=1e-3, loss_weight=0.5))
    # per-mask mean over pixels, then mean over masks
    bce_value = bce(pred, gt).flatten(1).mean(1).mean()
    assert bce_value.item() == pytest.approx(
        meta['losses']['mask_bce_loss'], rel=1e-4)
    assert dice(pred, gt).item() == pytest.approx(
        meta['losses']['mask_dice_loss'], rel=1e-4)


def test_dice_forms_by_hand():
    p = torch.tensor([[0.5, 1.0, 0.0, 0.25]])
    t = torch.tensor([[1, 1, 0, 0]])
    inter, sp, st, sp2 = 1.5, 1.75, 2.0, 0.25 + 1 + 0.0625
    assert dice_loss(p, t, eps=0.0, naive_dice=True).item() == pytest.approx(
        1 - 2 * inter / (sp + st))
    assert dice_loss(p, t, eps=0.0).item() == pytest.approx(
        1 - 2 * inter / (sp2 + st))
    # LISA/GeoPixel's scaled form equals naive Dice with eps = 1e-3
    scaled = 1 - (2 * (p * t / 1000).sum() + 1e-6) / (
        (p / 1000).sum() + (t / 1000).sum() + 1e-6)
    assert dice_loss(p, t, eps=1e-3, naive_dice=True).item() == \
        pytest.approx(scaled.item(), rel=1e-6)


def test_reductions_weights_and_avg_factor():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    target = torch.tensor([[0, 1], [1, 1]])
    elementwise = F.binary_cross_entropy_with_logits(
        logits, target.float(), reduction='none')
    loss = CrossEntropyLoss(use_sigmoid=True)
    assert loss(logits, target).item() == pytest.approx(
        elementwise.mean().item())
    assert loss(logits, target, reduction_override='sum').item() == \
        pytest.approx(elementwise.sum().item())
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert loss(logits, target, weight=weight, avg_factor=2).item() == \
        pytest.approx((elementwise * weight).sum().item() / 2, rel=1e-5)
    with pytest.raises(ValueError):
        loss(logits, target, avg_factor=2, reduction_override='sum')
    with pytest.raises(ValueError):
        loss(logits, target[:1])
    dice = DiceLoss(reduction='none')
    assert dice(logits, target).shape == (2, )
    with pytest.raises(NotImplementedError):
        DiceLoss(use_sigmoid=False)


def test_softmax_cross_entropy_ignores_index():
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 2, -100, 1, -100])
    loss = CrossEntropyLoss(avg_non_ignore=True)
    expected = F.cross_entropy(logits, labels, ignore_index=-100)
    assert loss(logits, labels).item() == pytest.approx(expected.item(),
                                                        rel=1e-6)
