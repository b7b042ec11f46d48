"""Georeferenced single-band mask GeoTIFFs, written whole or by windows.

A binary mask is written as 0 (outside) and 1 (inside), uint8, without a
nodata value; a label raster (e.g. object numbers) is written as given.
Files are tiled (256 x 256) and deflate-compressed (BigTIFF when needed),
built under a temporary name in the target folder and renamed on success,
so a reader never sees a half-written file and a failed run leaves none.
"""
import os
import os.path as osp
import warnings

import numpy as np

from geopixel.utils.files import temporary_sibling

from .dependencies import require_raster
from .vector import as_binary_mask

TILE = 256


class MaskRasterWriter:
    """A ``width`` x ``height`` single-band GeoTIFF at ``path``, written
    block by block with :meth:`write`, so that no array of the scene's
    size is ever built. Pixels never written are 0.

    ``transform`` (``affine.Affine``) and ``crs`` georeference it (None:
    a plain TIFF). Use it as a context manager: the file appears at
    ``path`` when the block ends without an error, and nothing does
    otherwise (:meth:`close` and :meth:`discard` do the same by hand).
    """

    def __init__(self,
                 path: str,
                 width: int,
                 height: int,
                 transform=None,
                 crs=None,
                 dtype: str = 'uint8'):
        rasterio = require_raster('writing mask GeoTIFFs')
        from rasterio.errors import NotGeoreferencedWarning
        self.path = path
        self.width, self.height = width, height
        self.dtype = np.dtype(dtype)
        fd, self._tmp = temporary_sibling(path, suffix='.tif')
        os.close(fd)
        profile = dict(
            driver='GTiff', width=width, height=height, count=1,
            dtype=self.dtype.name, crs=crs, tiled=True, blockxsize=TILE,
            blockysize=TILE, compress='deflate', BIGTIFF='IF_SAFER')
        if transform is not None:
            profile['transform'] = transform
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', NotGeoreferencedWarning)
                self._ds = rasterio.open(self._tmp, 'w', **profile)
        except BaseException:
            os.remove(self._tmp)
            raise

    def write(self, x0: int, y0: int, block: np.ndarray) -> None:
        """Write the 2-D ``block`` with its top-left pixel at column ``x0``,
        row ``y0``. Bool blocks become 0/1; integers must fit the dtype."""
        from rasterio.windows import Window
        block = np.asarray(block)
        if block.ndim != 2:
            raise ValueError(
                f'a block must be 2-D (h, w); got shape {block.shape}')
        h, w = block.shape
        if not (0 <= x0 and 0 <= y0 and x0 + w <= self.width
                and y0 + h <= self.height):
            raise ValueError(
                f'block of {w}x{h} at x0={x0}, y0={y0} is not inside the '
                f'{self.width}x{self.height} raster')
        self._ds.write(self._cast(block), 1, window=Window(x0, y0, w, h))

    def close(self) -> None:
        """Finish the file and move it to ``path``."""
        try:
            self._ds.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and remove the unfinished file; ``path`` is untouched."""
        try:
            self._ds.close()
        finally:
            if osp.exists(self._tmp):
                os.remove(self._tmp)

    def __enter__(self) -> 'MaskRasterWriter':
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def _cast(self, block: np.ndarray) -> np.ndarray:
        kind = block.dtype.kind
        if kind == 'b' or (self.dtype.kind == 'f' and kind in 'iuf'):
            return block.astype(self.dtype)
        if kind in 'iu' and self.dtype.kind in 'iu':
            info = np.iinfo(self.dtype)
            if block.size and (block.min() < info.min
                               or block.max() > info.max):
                raise ValueError(
                    f'block values {block.min()}..{block.max()} do not fit '
                    f'the raster type {self.dtype}')
            return block.astype(self.dtype)
        raise ValueError(f'cannot write a {block.dtype} block into a '
                         f'{self.dtype} raster')

def write_mask_geotiff(path: str, mask: np.ndarray, transform=None,
                       crs=None) -> None:
    """Write a binary ``mask`` (h, w) as a 0/1 uint8 GeoTIFF, atomically,
    georeferenced by ``transform`` and ``crs``."""
    mask = as_binary_mask(mask)
    with MaskRasterWriter(path, mask.shape[1], mask.shape[0], transform,
                          crs) as writer:
        writer.write(0, 0, mask)
