"""Cross-entropy loss with mmdet's arguments (sigmoid BCE for masks)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from geopixel.registry import MODELS

from .utils import weight_reduce_loss


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Softmax or sigmoid cross entropy.

    Written for geopixel with the argument names of mmdet's loss of the same
    name (mmdet cannot be imported without compiled mmcv ops), so configs
    written for mmdet keep working.

    Args:
        use_sigmoid: binary cross entropy with logits (the GeoPixel mask
            loss) instead of softmax cross entropy over classes.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        class_weight: per-class weights (softmax only).
        ignore_index: label ignored by the softmax loss.
        loss_weight: multiplier of the result (2.0 for GeoPixel's BCE).
        avg_non_ignore: average over non-ignored labels only (softmax).
    """

    def __init__(self,
                 use_sigmoid: bool = False,
                 reduction: str = 'mean',
                 class_weight: Optional[list] = None,
                 ignore_index: int = -100,
                 loss_weight: float = 1.0,
                 avg_non_ignore: bool = False):
        super().__init__()
        self.use_sigmoid = use_sigmoid
        self.reduction = reduction
        self.class_weight = class_weight
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.avg_non_ignore = avg_non_ignore

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> torch.Tensor:
        reduction = reduction_override or self.reduction
        if self.use_sigmoid:
            if cls_score.shape != label.shape:
                raise ValueError(
                    'sigmoid cross entropy needs logits and targets of the '
                    f'same shape, got {tuple(cls_score.shape)} and '
                    f'{tuple(label.shape)}')
            loss = F.binary_cross_entropy_with_logits(
                cls_score, label.to(cls_score.dtype), reduction='none')
        else:
            class_weight = None
            if self.class_weight is not None:
                class_weight = cls_score.new_tensor(self.class_weight)
            loss = F.cross_entropy(
                cls_score,
                label,
                weight=class_weight,
                reduction='none',
                ignore_index=self.ignore_index)
            if (avg_factor is None and self.avg_non_ignore
                    and reduction == 'mean'):
                avg_factor = (label != self.ignore_index).sum().item()
        if weight is not None:
            weight = weight.to(loss.dtype)
        loss = weight_reduce_loss(loss, weight, reduction, avg_factor)
        return self.loss_weight * loss
