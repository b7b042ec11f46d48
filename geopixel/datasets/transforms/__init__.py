"""Data pipeline steps (TRANSFORMS registry)."""
from .formatting import FormatChat, PackGeoPixelInputs
from .loading import LoadGroundingMasks, LoadImageRGB, LoadInstanceAnnotations
from .tiling import TileImage

__all__ = [
    'LoadImageRGB', 'LoadGroundingMasks', 'LoadInstanceAnnotations',
    'TileImage', 'FormatChat', 'PackGeoPixelInputs'
]
