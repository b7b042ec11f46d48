"""Vision encoders (VISION_ENCODERS registry)."""
from .base import BaseVisionEncoder
from .clip import CLIPVisionEncoder

__all__ = ['BaseVisionEncoder', 'CLIPVisionEncoder']
