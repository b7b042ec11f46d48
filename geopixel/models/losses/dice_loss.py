"""Dice loss with mmdet's arguments."""
from typing import Optional

import torch
from torch import nn

from geopixel.registry import MODELS

from .utils import weight_reduce_loss


def dice_loss(pred: torch.Tensor,
              target: torch.Tensor,
              eps: float = 1e-3,
              naive_dice: bool = False) -> torch.Tensor:
    """Per-sample Dice loss of probabilities ``pred`` [N, ...] vs ``target``.

    ``naive_dice``: ``1 - (2 sum(p t) + eps) / (sum p + sum t + eps)``.
    Otherwise the V-Net form: ``1 - 2 sum(p t) / (sum p^2 + eps + sum t^2 +
    eps)``.

    GeoPixel's (and LISA's) Dice divides every sum by 1000 and adds 1e-6;
    that is algebraically ``naive_dice`` with ``eps=1e-3``.
    """
    p = pred.flatten(1)
    t = target.flatten(1).to(p.dtype)
    inter = (p * t).sum(1)
    if naive_dice:
        return 1 - (2 * inter + eps) / (p.sum(1) + t.sum(1) + eps)
    denom = (p * p).sum(1) + eps + (t * t).sum(1) + eps
    return 1 - 2 * inter / denom


@MODELS.register_module()
class DiceLoss(nn.Module):
    """Dice loss over masks (one value per mask before reduction).

    Args:
        use_sigmoid: predictions are logits to pass through a sigmoid
            (softmax is not supported, as in mmdet).
        activate: apply the sigmoid; False when ``pred`` holds
            probabilities already.
        reduction: ``'none'``, ``'mean'`` or ``'sum'`` over masks.
        naive_dice: see :func:`dice_loss`.
        loss_weight: multiplier of the result (0.5 for GeoPixel).
        eps: smoothing term (1e-3 reproduces GeoPixel's Dice).
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 activate: bool = True,
                 reduction: str = 'mean',
                 naive_dice: bool = False,
                 loss_weight: float = 1.0,
                 eps: float = 1e-3):
        super().__init__()
        if not use_sigmoid:
            raise NotImplementedError('only sigmoid Dice is supported')
        self.use_sigmoid = use_sigmoid
        self.activate = activate
        self.reduction = reduction
        self.naive_dice = naive_dice
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(self,
                pred: torch.Tensor,
                target: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                reduction_override: Optional[str] = None,
                avg_factor: Optional[float] = None) -> torch.Tensor:
        reduction = reduction_override or self.reduction
        if self.activate:
            pred = pred.sigmoid()
        loss = dice_loss(pred, target, self.eps, self.naive_dice)
        if weight is not None:
            if weight.shape != loss.shape:
                raise ValueError('weight must have one value per mask')
            weight = weight.to(loss.dtype)
        loss = weight_reduce_loss(loss, weight, reduction, avg_factor)
        return self.loss_weight * loss
