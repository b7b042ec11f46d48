"""Images and GeoTIFFs as sources of RGB windows, read lazily.

The rules (also in ``docs/en/user_guides/gis.md``):

* **What is read.** A TIFF or GeoTIFF path is opened with rasterio and
  read window by window, never whole; its CRS and geotransform are kept
  (a file without a geotransform has ``transform`` and ``crs`` None).
  Another image file (PNG, JPEG...) is decoded once by
  :func:`~geopixel.datasets.transforms.image_io.read_image_rgb`, by
  ``LoadImageRGB``'s rules; an H x W or H x W x C array and a PIL image are
  read from memory. These have no georeferencing.
* **Bands.** Without ``bands``, an image of three bands, or four of which
  one is alpha by its colour interpretation, is read as RGB in band order;
  any other count (1, 2, 12...) is refused. ``bands=(r, g, b)`` picks three
  bands, numbered from 1 as GDAL numbers them (``(1, 1, 1)`` shows one band
  in grey).
* **Nodata.** A sample is nodata when it equals the band's nodata value
  (the file's, or ``nodata=`` for every band instead), or is NaN or
  infinite. A pixel is invalid (``valid`` False, 0 in ``rgb``) when its
  three samples are nodata (as GDAL's dataset mask), or the file's mask
  band or alpha band (0) says so. A nodata sample of a valid pixel is 0 in
  ``rgb``. An image without one valid pixel is refused.
* **Stretch.** Samples of more than 8 bits are stretched to 0-255 per band
  by bounds computed once per source, from at most :data:`STATS_PIXELS`
  pixels read decimated (nearest neighbour, or the file's overviews), over
  valid samples only: ``'percentile'`` maps the 2nd-98th percentiles,
  ``'range'`` the type's range (0-1 for floats). Every window uses the
  same bounds. 8-bit samples are used as they are.
"""
import math
import os
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np

from geopixel.datasets.transforms.image_io import (
    _TIFF_MAGIC,
    STRETCHES,
    apply_stretch,
    read_image_rgb,
    stretch_bounds,
)
from geopixel.utils import BadRecordError

from .dependencies import require_raster

# Pixels read (decimated) to compute the stretch of a large image.
STATS_PIXELS = 2**21
# PIL modes of 8-bit samples, converted to RGB as read_image_rgb does.
_PIL_8BIT_MODES = ('1', 'L', 'LA', 'P', 'PA', 'RGB', 'RGBA', 'RGBX',
                   'CMYK', 'YCbCr', 'LAB', 'HSV')

Window = Tuple[int, int, int, int]  # x0, y0, width, height


class ImageSource:
    """An image read as RGB windows with the mask of its valid pixels.

    Made by :func:`open_image_source`. Attributes: ``width``, ``height``
    (pixels), ``crs`` (rasterio CRS or None), ``transform``
    (``affine.Affine`` from pixel to map coordinates, or None), ``path``
    (None for arrays and PIL images), ``band_count`` (bands in the file),
    ``bands`` (the three read as R, G, B, from 1), ``dtype`` (of the
    samples), ``nodata`` (the nodata value of each of the three, or None)
    and ``stretch_bounds`` (3 x 2 low/high per band, None for 8-bit data).
    """

    def __init__(self, reader, path: Optional[str],
                 bands: Optional[Sequence[int]], stretch: str,
                 nodata: Optional[float]):
        self._reader = reader
        self.path = path
        self.width, self.height = reader.width, reader.height
        self.crs, self.transform = reader.crs, reader.transform
        self.band_count = reader.count
        self.dtype = reader.dtype
        self.bands = _choose_bands(bands, reader, path)
        values = ((nodata, ) * 3 if nodata is not None else
                  [reader.nodata[b - 1] for b in self.bands])
        self.nodata = tuple(None if v is None else float(v) for v in values)
        self._alpha = (reader.alpha_band
                       if reader.alpha_band not in self.bands else None)
        self.stretch_bounds = None
        may_have_nodata = (any(v is not None for v in self.nodata)
                           or self.dtype.kind == 'f'
                           or self._alpha is not None or reader.has_mask)
        if self.dtype != np.uint8 or may_have_nodata:
            samples, usable = self._valid_sample()
            if self.dtype != np.uint8:
                self.stretch_bounds = stretch_bounds(samples, stretch,
                                                     usable)

    def read(self,
             x0: int = 0,
             y0: int = 0,
             w: Optional[int] = None,
             h: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The window of ``w`` x ``h`` pixels at column ``x0``, row ``y0``
        (to the right and bottom edges by default): RGB uint8 [h, w, 3]
        and valid bool [h, w] (False on nodata, whose RGB is 0)."""
        w = self.width - x0 if w is None else w
        h = self.height - y0 if h is None else h
        if not (0 <= x0 and 0 <= y0 and w > 0 and h > 0
                and x0 + w <= self.width and y0 + h <= self.height):
            raise ValueError(
                f'window x0={x0}, y0={y0}, w={w}, h={h} is not inside the '
                f'{self.width}x{self.height} image')
        samples, excluded, valid = self._read((x0, y0, w, h), (h, w))
        if self.stretch_bounds is None:
            rgb = samples.astype(np.uint8, copy=True)
            rgb[excluded] = 0
        else:
            samples = samples.astype(np.float64)
            samples[excluded] = np.nan
            rgb = apply_stretch(samples, self.stretch_bounds)
        return np.ascontiguousarray(rgb), valid

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> 'ImageSource':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _read(self, window: Window, out_shape: Tuple[int, int]):
        """Samples [h, w, 3] of the chosen bands, which of them are nodata
        or in an invalid pixel ([h, w, 3] bool), and the valid pixels."""
        indexes = list(self.bands)
        if self._alpha is not None:
            indexes.append(self._alpha)
        data = self._reader.samples(indexes, window, out_shape)
        samples = data[..., :3]
        excluded = np.zeros(samples.shape, dtype=bool)
        for c, value in enumerate(self.nodata):
            if value is not None:
                excluded[..., c] = samples[..., c] == value
        if self.dtype.kind == 'f':
            excluded |= ~np.isfinite(samples)
        valid = ~excluded.all(axis=-1)
        if self._alpha is not None:
            valid &= data[..., 3] > 0
        mask = self._reader.mask(window, out_shape)
        if mask is not None:
            valid &= mask
        excluded |= ~valid[..., None]
        return samples, excluded, valid

    def _valid_sample(self):
        """At most about :data:`STATS_PIXELS` pixels of the whole image,
        [n, m, 3], and which of their samples are usable; refuses an image
        without a valid pixel."""
        step = max(1, math.ceil(
            math.sqrt(self.width * self.height / STATS_PIXELS)))
        out_shape = (math.ceil(self.height / step),
                     math.ceil(self.width / step))
        samples, excluded, valid = self._read(
            (0, 0, self.width, self.height), out_shape)
        if not valid.any() and step > 1:
            # the decimation can miss small or thin valid areas
            samples, excluded, valid = self._scan_valid_pixels()
        if not valid.any():
            raise BadRecordError(
                'every pixel is nodata (nodata value(s) '
                f'{self.nodata}, NaN, or the mask or alpha band) in bands '
                f'{self.bands}: nothing to read', self.path)
        return samples, ~excluded

    def _scan_valid_pixels(self):
        """The valid pixels of the whole image, read by strips of rows and
        halved whenever they pass :data:`STATS_PIXELS`, as [n, 1, 3]."""
        rows = max(1, STATS_PIXELS // self.width)
        kept = np.empty((0, 3), self.dtype)
        kept_excluded = np.empty((0, 3), bool)
        for y0 in range(0, self.height, rows):
            h = min(rows, self.height - y0)
            samples, excluded, valid = self._read((0, y0, self.width, h),
                                                  (h, self.width))
            kept = np.concatenate([kept, samples[valid]])
            kept_excluded = np.concatenate([kept_excluded, excluded[valid]])
            while len(kept) > STATS_PIXELS:
                kept, kept_excluded = kept[::2], kept_excluded[::2]
        valid = np.ones((len(kept), 1), dtype=bool)
        return kept[:, None], kept_excluded[:, None], valid


def open_image_source(source,
                      bands: Optional[Sequence[int]] = None,
                      stretch: str = 'percentile',
                      nodata: Optional[float] = None,
                      max_pixels: Optional[int] = None) -> ImageSource:
    """An :class:`ImageSource` on ``source``: a path (GeoTIFF/TIFF, read
    lazily by rasterio; other image files decoded once), an H x W (x C)
    array, or a PIL image. The rules are in this module's docstring.

    Args:
        bands: three band numbers, from 1, read as R, G, B.
        stretch: ``'percentile'`` or ``'range'`` for samples of more than
            8 bits.
        nodata: the nodata value of every band, instead of the file's.
        max_pixels: refuse images of more pixels (width x height), checked
            from the header; None (the default) accepts any size, since
            large scenes are read by windows.

    Bad files raise :class:`~geopixel.utils.BadRecordError` naming the file
    and the problem; a TIFF without rasterio installed raises
    :class:`~geopixel.gis.GISDependencyError`.
    """
    _check_arguments(bands, stretch, max_pixels)
    path = None
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        reader, bands = _file_reader(path, bands, stretch, max_pixels)
    else:
        reader = _ArrayReader(_as_array(source))
    if max_pixels is not None and reader.width * reader.height > max_pixels:
        reader.close()
        raise BadRecordError(
            f'the image is {reader.width}x{reader.height} = '
            f'{reader.width * reader.height:,} pixels, over the limit of '
            f'max_pixels={max_pixels:,}; raise it, or pass None to read '
            'any size', path)
    try:
        return ImageSource(reader, path, bands, stretch, nodata)
    except BaseException:
        reader.close()
        raise


def _check_arguments(bands, stretch, max_pixels) -> None:
    if bands is not None and not (
            len(bands) == 3 and all(
                isinstance(b, (int, np.integer)) and b >= 1 for b in bands)):
        raise ValueError('bands must be three band numbers counted from 1, '
                         f'e.g. (4, 3, 2); got {bands!r}')
    if stretch not in STRETCHES:
        raise ValueError(f'stretch must be one of {STRETCHES}, got '
                         f'{stretch!r}')
    if max_pixels is not None and not (isinstance(max_pixels, int)
                                       and max_pixels > 0):
        raise ValueError('max_pixels must be a positive int or None, got '
                         f'{max_pixels!r}')


def _file_reader(path, bands, stretch, max_pixels):
    """The reader of an image file and the bands still to choose (an image
    decoded by read_image_rgb has had its bands chosen)."""
    try:
        with open(path, 'rb') as f:
            head = f.read(4)
    except FileNotFoundError:
        raise BadRecordError('image file is missing', path) from None
    except OSError as exc:
        raise BadRecordError(f'cannot open the image ({exc.strerror})',
                             path) from None
    if not head:
        raise BadRecordError('image file is empty (0 bytes)', path)
    if head in _TIFF_MAGIC:
        return _RasterioReader(path), bands
    rgb = read_image_rgb(path, None, max_pixels, bands, stretch)
    return _ArrayReader(rgb), None


def _as_array(image) -> np.ndarray:
    """An H x W x C array of a PIL image or array-like."""
    if hasattr(image, 'mode') and hasattr(image, 'convert'):  # PIL image
        image = image.convert('RGB') if image.mode in _PIL_8BIT_MODES \
            else image
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.dtype.kind not in 'uif' or not all(
            array.shape):
        raise ValueError('an image array must be H x W or H x W x C of '
                         f'numbers; got shape {array.shape} of '
                         f'{array.dtype}')
    return array


def _choose_bands(bands, reader, path) -> Tuple[int, int, int]:
    count = reader.count
    if bands is not None:
        for band in bands:
            if not 1 <= band <= count:
                raise BadRecordError(
                    f'bands={tuple(bands)} asks for band {band}, but the '
                    f'image has {count} band(s), numbered from 1', path)
        return tuple(int(b) for b in bands)
    colour = [b for b in range(1, count + 1) if b != reader.alpha_band]
    if len(colour) == 3:
        return tuple(colour)
    alpha = ' (and an alpha band)' if reader.alpha_band else ''
    raise BadRecordError(
        f'the image has {len(colour)} band(s){alpha} of {reader.dtype}; '
        'only 3 (RGB) are read without a choice. Choose three bands as R, '
        'G, B, numbered from 1, with bands=(r, g, b), e.g. bands=(4, 3, 2) '
        'for true colour from a Sentinel-2 stack, or bands=(1, 1, 1) to '
        'show one band in grey', path)


def _nearest(n_out: int, start: int, n_in: int) -> np.ndarray:
    """Indices of ``n_out`` samples of ``n_in`` from ``start``, nearest
    neighbour at pixel centres (as GDAL decimates)."""
    return start + ((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(int)


class _ArrayReader:
    """Samples of an H x W x C array in memory; no georeferencing."""

    crs = transform = None
    alpha_band = None
    has_mask = False

    def __init__(self, array: np.ndarray):
        self.array = array
        self.height, self.width, self.count = array.shape
        self.dtype = array.dtype
        self.nodata = (None, ) * self.count

    def samples(self, indexes, window: Window, out_shape) -> np.ndarray:
        x0, y0, w, h = window
        bands = [i - 1 for i in indexes]
        if out_shape == (h, w):
            return self.array[y0:y0 + h, x0:x0 + w][..., bands]
        rows = _nearest(out_shape[0], y0, h)
        cols = _nearest(out_shape[1], x0, w)
        return self.array[np.ix_(rows, cols, bands)]

    def mask(self, window: Window, out_shape) -> None:
        return None

    def close(self) -> None:
        pass


class _RasterioReader:
    """Samples of a (Geo)TIFF read window by window through rasterio."""

    def __init__(self, path: str):
        rasterio = require_raster('reading GeoTIFF files')
        from rasterio.enums import ColorInterp, MaskFlags
        from rasterio.errors import NotGeoreferencedWarning, RasterioError
        self.path = path
        self._errors = RasterioError
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', NotGeoreferencedWarning)
                self.ds = rasterio.open(path)
        except RasterioError as exc:
            raise BadRecordError(f'not a readable TIFF ({exc})',
                                 path) from None
        ds = self.ds
        self.width, self.height, self.count = ds.width, ds.height, ds.count
        self.dtype = np.dtype(ds.dtypes[0])
        self.nodata = tuple(ds.nodatavals)
        if ds.transform.is_identity:  # GDAL's default: no geotransform
            self.crs = self.transform = None
        else:
            self.crs, self.transform = ds.crs, ds.transform
        alphas = [
            b for b, ci in enumerate(ds.colorinterp, 1)
            if ci == ColorInterp.alpha
        ]
        self.alpha_band = alphas[0] if alphas else None
        flags = ds.mask_flag_enums[0]
        # an explicit mask band (internal or .msk), not one made from the
        # alpha band or the nodata value, which are handled here
        self.has_mask = (MaskFlags.per_dataset in flags
                         and MaskFlags.alpha not in flags)

    def samples(self, indexes, window: Window, out_shape) -> np.ndarray:
        data = self._call(self.ds.read, window, out_shape, indexes=indexes)
        return np.moveaxis(data, 0, -1)

    def mask(self, window: Window, out_shape) -> Optional[np.ndarray]:
        if not self.has_mask:
            return None
        return self._call(self.ds.read_masks, window, out_shape,
                          indexes=1) > 0

    def _call(self, read, window: Window, out_shape, indexes):
        from rasterio.windows import Window as RasterioWindow
        x0, y0, w, h = window
        shape = ((len(indexes), ) if isinstance(indexes, list) else
                 ()) + tuple(out_shape)
        try:
            return read(indexes, window=RasterioWindow(x0, y0, w, h),
                        out_shape=shape)
        except self._errors as exc:
            # GDAL's own message is the cause ('Read failed. See previous
            # exception' otherwise)
            raise BadRecordError(
                f'cannot read the pixels of window x0={x0}, y0={y0}, '
                f'{w}x{h} (corrupt or truncated file?): '
                f'{exc.__cause__ or exc}', self.path) from None

    def close(self) -> None:
        self.ds.close()

