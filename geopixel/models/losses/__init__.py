"""Losses (MODELS registry), with mmdet-compatible arguments."""
from .cross_entropy_loss import CrossEntropyLoss
from .dice_loss import DiceLoss, dice_loss
from .utils import (global_mean_divisor, global_mean_divisors,
                    loss_world_size, mean_over_ranks, weight_reduce_loss)

__all__ = [
    'CrossEntropyLoss', 'DiceLoss', 'dice_loss', 'global_mean_divisor',
    'global_mean_divisors', 'loss_world_size', 'mean_over_ranks',
    'weight_reduce_loss'
]
