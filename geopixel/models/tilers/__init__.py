"""Tilers: image -> padded high-resolution canvas of fixed-size tiles."""
from .adaptive_hd import AdaptiveHDTiler
from .base import (
                   CLIP_MEAN,
                   CLIP_STD,
                   BaseTiler,
                   TiledImage,
                   global_view,
                   split_tiles,
)

__all__ = [
    'AdaptiveHDTiler', 'BaseTiler', 'TiledImage', 'CLIP_MEAN', 'CLIP_STD',
    'global_view', 'split_tiles'
]
