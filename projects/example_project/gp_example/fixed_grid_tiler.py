"""A tiler that always uses the same grid."""
import numpy as np
from PIL import Image

from geopixel.models.tilers import BaseTiler, TiledImage
from geopixel.models.tilers.base import to_pil_rgb
from geopixel.registry import TILERS


@TILERS.register_module()
class FixedGridTiler(BaseTiler):
    """Resize every image to ``rows x cols`` tiles (aspect not kept).

    Only the grid and the canvas are its own; the visual token count comes
    from :class:`BaseTiler` (it follows the tile geometry), so the vision
    encoder needs no change.
    """

    def __init__(self, rows: int = 1, cols: int = 1, tile_size: int = 560):
        super().__init__(tile_size)
        if int(rows) < 1 or int(cols) < 1:
            raise ValueError(f'rows and cols must be >= 1, got {rows} x '
                             f'{cols}')
        self.rows, self.cols = int(rows), int(cols)

    def plan(self, width: int, height: int) -> dict:
        size = (self.cols * self.tile_size, self.rows * self.tile_size)
        return dict(grid=(self.rows, self.cols), transposed=False,
                    resized_size=size, padding=(0, 0, 0, 0))

    def __call__(self, image) -> TiledImage:
        pil = to_pil_rgb(image)
        plan = self.plan(*pil.size)
        canvas = np.array(pil.resize(plan['resized_size'], Image.BILINEAR))
        return self.tiled_image(canvas, plan, pil.size, mode='fixed')

    def __repr__(self) -> str:
        return f'{type(self).__name__}(rows={self.rows}, cols={self.cols})'
