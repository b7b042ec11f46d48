"""Decoding images into RGB, with the pixel cap, bit-depth and band rules.

The rules (also in ``docs/en/user_guides/datasets.md``):

* **Pixel cap.** The size is read from the header and an image of more
  than ``max_pixels`` pixels (width x height; default ``2**28``, i.e.
  16384 x 16384) is refused before it is decoded. ``None`` lifts the cap.
  PIL's own decompression-bomb limit is lifted while we decode, so our cap
  is the one that governs. Truncated files are errors even where
  ``ImageFile.LOAD_TRUNCATED_IMAGES`` was set.
* **8-bit images** (grey, palette, RGB, RGBA, CMYK, bilevel) become RGB as
  PIL converts them; alpha is dropped.
* **More than 8 bits per sample** (16/32-bit integers, floats) are decoded
  exactly (single-band rasters by PIL, 16-bit colour PNGs by OpenCV,
  multi-band TIFFs by tifffile) and stretched to 0-255 per band:
  ``stretch='percentile'`` maps each band's 2nd-98th percentile of its
  finite values linearly to 0-255 (clipped); ``stretch='range'`` maps the
  type's full range (floats: 0-1). Non-finite values (NaN nodata) become 0,
  and a constant band becomes 0. One band is repeated on three channels.
* **Bands.** One band is grey, three are RGB, and an alpha band (as the
  file declares it) is dropped. Any other count (2, 4 without alpha, 8...)
  is refused unless ``bands=(r, g, b)`` picks three bands, numbered from 1
  as GDAL numbers them; ``bands`` works for any image, 8-bit ones too
  (their samples are then used as they are, without a stretch).
"""
import contextlib
import struct
import threading
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from geopixel.utils import BadRecordError

DEFAULT_MAX_PIXELS = 2**28
STRETCHES = ('percentile', 'range')

# PIL modes that hold one band of more than 8 bits, decoded exactly.
_HIGH_DEPTH_MODES = ('I;16', 'I;16B', 'I;16L', 'I', 'F')
_TIFF_MAGIC = (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+')
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# PNG colour types that PIL reduces to 8 bits at bit depth 16: RGB,
# grey + alpha, RGBA.
_PNG_COLOUR_TYPES_16 = (2, 4, 6)
_PIL_LIMIT_LOCK = threading.Lock()


def read_image_rgb(path: str,
                   record: Optional[object] = None,
                   max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                   bands: Optional[Sequence[int]] = None,
                   stretch: str = 'percentile') -> np.ndarray:
    """An H x W x 3 uint8 RGB array by the rules of this module.

    Every failure is a :class:`BadRecordError` naming ``path``, ``record``
    and the problem; no decoder exception escapes.
    """
    try:
        samples, alpha = _decode(path, record, max_pixels,
                                 keep_bands=bands is not None)
    except BadRecordError:
        raise
    except FileNotFoundError:
        raise BadRecordError('image file is missing', path, record) from None
    except UnidentifiedImageError:
        raise BadRecordError('not a readable image (corrupt or unsupported '
                             'format)', path, record) from None
    except Exception as exc:  # decoders raise many types on bad files
        raise BadRecordError(
            f'corrupt image ({type(exc).__name__}: {exc})', path,
            record) from None
    return _to_rgb(samples, alpha, bands, stretch, path, record)


def _decode(path, record, max_pixels,
            keep_bands) -> Tuple[np.ndarray, bool]:
    """Samples as H x W x C and whether the last band is alpha."""
    with open(path, 'rb') as f:
        head = f.read(32)
    if not head:
        raise BadRecordError('image file is empty (0 bytes)', path, record)
    if head[:4] in _TIFF_MAGIC:
        return _decode_tiff(path, record, max_pixels, keep_bands)
    if (head[:8] == _PNG_MAGIC and head[12:16] == b'IHDR'
            and len(head) >= 26 and head[24] == 16
            and head[25] in _PNG_COLOUR_TYPES_16):
        width, height = struct.unpack('>II', head[16:24])
        _check_pixels(width, height, max_pixels, path, record)
        return _decode_png16(path, record, height, width)
    return _decode_pil(path, record, max_pixels, keep_bands)


def _check_pixels(width, height, max_pixels, path, record) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise BadRecordError(
            f'the header declares {width}x{height} = {width * height:,} '
            f'pixels, over the limit of max_pixels={max_pixels:,}; if the '
            'image is genuine, raise the limit with '
            'LoadImageRGB(max_pixels=...) (None removes it)', path, record)


@contextlib.contextmanager
def _pil_settings_for_one_decode():
    """PIL's global limits, set for one decode and then restored.

    The decompression-bomb limit (about 179 megapixels) is lifted: by then
    ``max_pixels`` has been checked from the header, and PIL's limit would
    otherwise override a user's higher cap. Truncated files are always
    errors, even where other code set ``LOAD_TRUNCATED_IMAGES`` (PIL would
    fill the missing part silently). The lock keeps concurrent decodes from
    restoring the wrong values.
    """
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS = None
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _decode_pil(path, record, max_pixels, keep_bands):
    with _pil_settings_for_one_decode():
        with Image.open(path) as img:
            _check_pixels(img.width, img.height, max_pixels, path, record)
            img.load()
            if img.mode in _HIGH_DEPTH_MODES:
                return np.asarray(img)[..., None], False
            if not keep_bands:
                return np.array(img.convert('RGB'), dtype=np.uint8), False
            # the stored bands, palettes expanded
            mode = {
                'P': 'RGBA' if 'transparency' in img.info else 'RGB',
                'PA': 'RGBA',
                '1': 'L'
            }.get(img.mode, img.mode)
            samples = np.array(img.convert(mode))
    if samples.ndim == 2:
        samples = samples[..., None]
    return samples, mode in ('LA', 'RGBA')


def _decode_png16(path, record, height, width):
    """A 16-bit colour PNG, exactly (PIL keeps only the high bytes)."""
    import cv2
    samples = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if samples is None or samples.shape[:2] != (height, width):
        raise BadRecordError(
            'OpenCV cannot decode this 16-bit PNG (corrupt, or over its '
            'CV_IO_MAX_IMAGE_PIXELS limit)', path, record)
    if samples.ndim == 2:
        return samples[..., None], False
    channels = samples.shape[2]
    order = {2: [0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[channels]
    return samples[..., order], channels in (2, 4)


def tiff_band_count(path: str) -> Optional[int]:
    """Samples per pixel of a TIFF's first image (alpha included), from
    its header; None if ``path`` is not a readable TIFF (its decoder then
    names the problem)."""
    try:
        with open(path, 'rb') as f:
            if f.read(4) not in _TIFF_MAGIC:
                return None
        import tifffile
        with tifffile.TiffFile(path) as tif:
            return int(tif.pages.first.samplesperpixel)
    except Exception:  # a broken file: reading it reports the problem
        return None


def _decode_tiff(path, record, max_pixels, keep_bands):
    """TIFFs that PIL decodes exactly go to PIL; the rest to tifffile."""
    try:
        import tifffile
    except ImportError:
        raise BadRecordError(
            'reading TIFF files needs the tifffile package: pip install '
            'tifffile', path, record) from None
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        _check_pixels(page.imagewidth, page.imagelength, max_pixels, path,
                      record)
        if _pil_reads_exactly(page, tifffile):
            return _decode_pil(path, record, max_pixels, keep_bands)
        try:
            samples = page.asarray()
        except (ValueError, KeyError) as exc:
            if 'imagecodecs' in str(exc):
                raise BadRecordError(
                    f'TIFF compression {page.compression.name} needs the '
                    'imagecodecs package: pip install imagecodecs', path,
                    record) from None
            raise
        axes = page.axes
        extra = tuple(page.extrasamples)
    if 'S' in axes:
        samples = np.moveaxis(samples, axes.index('S'), -1)
        axes = axes.replace('S', '') + 'S'
    else:
        samples = samples[..., None]
        axes += 'S'
    # drop length-1 axes other than Y, X, S (e.g. a depth of 1)
    keep = [i for i, a in enumerate(axes) if a in 'YXS' or
            samples.shape[i] != 1]
    samples = samples.reshape([samples.shape[i] for i in keep])
    if samples.ndim != 3:
        raise BadRecordError(
            f'unsupported TIFF layout: axes {page.axes} of shape '
            f'{tuple(page.shape)}', path, record)
    alphas = (tifffile.EXTRASAMPLE.ASSOCALPHA, tifffile.EXTRASAMPLE.UNASSALPHA)
    alpha = (len(extra) == 1 and extra[0] in alphas
             and samples.shape[-1] in (2, 4))
    return samples, alpha


def _pil_reads_exactly(page, tifffile) -> bool:
    """Whether PIL decodes this TIFF page without losing bits or bands."""
    photometric = tifffile.PHOTOMETRIC
    alphas = (tifffile.EXTRASAMPLE.ASSOCALPHA, tifffile.EXTRASAMPLE.UNASSALPHA)
    spp = page.samplesperpixel
    extra = tuple(page.extrasamples)
    if page.bitspersample == 1 and spp == 1:
        return True
    if page.dtype == np.uint8 and page.bitspersample == 8:
        if spp == 1:
            return True
        if spp == 3 and page.photometric in (photometric.RGB,
                                             photometric.YCBCR):
            return True
        if (spp == 4 and page.photometric == photometric.RGB
                and len(extra) == 1 and extra[0] in alphas):
            return True
        return (spp == 4 and page.photometric == photometric.SEPARATED
                and not extra)
    return (spp == 1 and page.dtype in (np.uint16, np.int32, np.float32)
            and page.bitspersample == page.dtype.itemsize * 8)


def _to_rgb(samples, alpha, bands, stretch, path, record) -> np.ndarray:
    count = samples.shape[-1]
    if bands is not None:
        for band in bands:
            if not 1 <= band <= count:
                raise BadRecordError(
                    f'bands={tuple(bands)} asks for band {band}, but the '
                    f'image has {count} band(s), numbered from 1', path,
                    record)
        samples = samples[..., [band - 1 for band in bands]]
    else:
        if alpha:
            samples = samples[..., :-1]
            count -= 1
        if count not in (1, 3):
            raise BadRecordError(
                f'the image has {count} bands ({samples.dtype}); only 1 '
                '(grey) or 3 (RGB) are shown without a choice. Pick three '
                'with LoadImageRGB(bands=(r, g, b)), numbered from 1 as '
                'GDAL numbers them, e.g. bands=(3, 2, 1)', path, record)
    if samples.dtype != np.uint8:
        samples = stretch_to_uint8(samples, stretch)
    if samples.shape[-1] == 1:
        samples = np.repeat(samples, 3, axis=-1)
    return np.ascontiguousarray(samples)


def stretch_to_uint8(samples: np.ndarray, stretch: str) -> np.ndarray:
    """Each band of H x W x C ``samples`` mapped linearly to 0-255, by the
    bounds :func:`stretch_bounds` gives on ``samples`` themselves."""
    return apply_stretch(samples, stretch_bounds(samples, stretch))


def stretch_bounds(samples: np.ndarray,
                   stretch: str,
                   valid: Optional[np.ndarray] = None) -> np.ndarray:
    """The (low, high) of each band of H x W x C ``samples``, a C x 2 array.

    ``'percentile'``: the band's 2nd-98th percentiles of its finite values
    (only those where ``valid``, H x W x C bool, is True; NaN where there
    are none); ``'range'``: the type's range (0-1 for floats). Computed
    apart from :func:`apply_stretch` so that one set of bounds, taken from
    a sample of a large image, serves every window of it.
    """
    if stretch not in STRETCHES:
        raise ValueError(f'stretch must be one of {STRETCHES}, got '
                         f'{stretch!r}')
    bounds = np.full((samples.shape[-1], 2), np.nan)
    for c in range(samples.shape[-1]):
        if stretch == 'percentile':
            band = samples[..., c].astype(np.float64)
            keep = np.isfinite(band)
            if valid is not None:
                keep &= valid[..., c]
            if keep.any():
                bounds[c] = np.percentile(band[keep], (2, 98))
        elif samples.dtype.kind in 'iu':
            info = np.iinfo(samples.dtype)
            bounds[c] = float(info.min), float(info.max)
        else:
            bounds[c] = 0.0, 1.0
    return bounds


def apply_stretch(samples: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Each band of H x W x C ``samples`` mapped linearly from its
    ``bounds[c]`` (low, high) to 0-255 as uint8.

    Values outside are clipped; non-finite values, and bands whose bounds
    are NaN or not increasing (constant bands), give 0.
    """
    out = np.zeros(samples.shape, dtype=np.uint8)
    for c, (lo, hi) in enumerate(bounds):
        if not hi > lo:
            continue
        band = samples[..., c].astype(np.float64)
        scaled = np.clip((band - lo) * (255.0 / (hi - lo)), 0, 255)
        scaled[~np.isfinite(band)] = 0
        out[..., c] = scaled.astype(np.uint8)
    return out
