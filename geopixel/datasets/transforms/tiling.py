"""Run a tiler inside the data pipeline."""
from mmcv.transforms import BaseTransform

from geopixel.registry import TILERS, TRANSFORMS


@TRANSFORMS.register_module()
class TileImage(BaseTransform):
    """Tile ``img`` with a registered tiler.

    Adds ``hd_image`` (padded uint8 RGB canvas), ``hd_grid`` (rows, cols),
    ``num_image_tokens`` and ``tile_meta`` (resize and padding geometry).

    Args:
        tiler: a tiler config (``dict(type=AdaptiveHDTiler, hd_num=9,
            mode='train')``) or a tiler object.
    """

    def __init__(self, tiler):
        self.tiler = TILERS.build(tiler) if isinstance(tiler, dict) else tiler

    def transform(self, results: dict) -> dict:
        tiled = self.tiler(results['img'])
        results['hd_image'] = tiled.image
        results['hd_grid'] = tiled.grid
        results['num_image_tokens'] = tiled.num_tokens
        results['tile_meta'] = dict(
            resized_size=tiled.resized_size,
            padding=tiled.padding,
            **tiled.meta)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(tiler={self.tiler!r})'
