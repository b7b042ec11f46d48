"""Example geopixel project: registers FixedGridTiler in TILERS."""
from .fixed_grid_tiler import FixedGridTiler

__all__ = ['FixedGridTiler']
