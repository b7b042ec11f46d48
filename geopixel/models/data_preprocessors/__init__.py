"""Batch preparation on the device (MODELS registry)."""
from .geopixel_preprocessor import GeoPixelDataPreprocessor

__all__ = ['GeoPixelDataPreprocessor']
