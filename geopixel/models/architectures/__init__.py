"""Composite models (MODELS registry)."""
from .geopixel import GeoPixel
from .image_context import ImageContext, Response

__all__ = ['GeoPixel', 'ImageContext', 'Response']
