"""Composite models (MODELS registry)."""
from .geopixel import GeoPixel

__all__ = ['GeoPixel']
