"""Visualisation: mask overlays with per-phrase colour legends."""
from .overlay import draw_grounded_masks, palette
from .visualizer import GeoPixelVisualizer

__all__ = ['draw_grounded_masks', 'palette', 'GeoPixelVisualizer']
