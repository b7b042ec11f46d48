"""Small MLPs between components (MODELS registry)."""
from .seg_projector import SegProjector

__all__ = ['SegProjector']
