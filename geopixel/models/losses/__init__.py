"""Losses (MODELS registry), with mmdet-compatible arguments."""
from .cross_entropy_loss import CrossEntropyLoss
from .dice_loss import DiceLoss, dice_loss
from .utils import weight_reduce_loss

__all__ = ['CrossEntropyLoss', 'DiceLoss', 'dice_loss', 'weight_reduce_loss']
