"""Data structures passed between the data pipeline, model and metrics."""
from .data_sample import GeoPixelDataSample

__all__ = ['GeoPixelDataSample']
