"""Vision encoders (VISION_ENCODERS registry)."""
from .base import BaseVisionEncoder

__all__ = ['BaseVisionEncoder']
