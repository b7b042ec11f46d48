"""Batch preparation on the device (MODELS registry)."""
from .geopixel_preprocessor import (CLIP_MEAN, CLIP_STD,
                                    GeoPixelDataPreprocessor, normalize_canvas)

__all__ = [
    'GeoPixelDataPreprocessor', 'normalize_canvas', 'CLIP_MEAN', 'CLIP_STD'
]
