"""Tilers: image -> padded high-resolution canvas of fixed-size tiles."""
from .adaptive_hd import AdaptiveHDTiler
from .base import (
                   BaseTiler,
                   TiledImage,
                   global_view,
                   split_tiles,
)

__all__ = [
    'AdaptiveHDTiler', 'BaseTiler', 'TiledImage', 'global_view', 'split_tiles'
]
