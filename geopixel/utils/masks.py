"""Polygon and RLE masks, as the official GeoPixel data pipeline reads them.

Rasterisation follows the official loader: each polygon of a mask is filled
with ``cv2.fillPoly`` into one ``uint8`` canvas of the original size, so a
mask is the union of its polygons (holes are not representable).
"""
import numbers
from typing import List, Optional, Sequence, Union

import numpy as np

from .errors import BadRecordError

Polygon = Sequence[Sequence[float]]  # [[x, y], ...]


def _where(mask_index: Optional[int]) -> str:
    return f'mask {mask_index}: ' if mask_index is not None else ''


def _non_numbers(values):
    """The leaves of nested lists that are not real numbers, in order."""
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, (list, tuple)):
            stack.extend(reversed(value))
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            yield value


def _as_points(polygon, file=None, record=None, mask_index=None) -> np.ndarray:
    """Polygon as a float [N, 2] array; accepts [[x, y], ...] or flat lists.

    Coordinates must be JSON numbers: numpy would quietly parse ``"12"``.
    """
    where = _where(mask_index)
    if not isinstance(polygon, (list, tuple, np.ndarray)):
        raise BadRecordError(
            f'{where}polygon must be a list of [x, y] points, got '
            f'{type(polygon).__name__}', file, record)
    if not isinstance(polygon, np.ndarray):
        for bad in _non_numbers(polygon):
            raise BadRecordError(
                f'{where}polygon coordinates must be numbers, got '
                f'{type(bad).__name__} {bad!r}', file, record)
    try:
        pts = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadRecordError(f'{where}polygon is not numeric ({exc})', file,
                             record) from None
    if pts.ndim == 1:
        if pts.size == 2:
            raise BadRecordError(
                f'{where}polygon is a single point {polygon!r}; a polygon '
                'is a list of [x, y] points (one nesting level missing?)',
                file, record)
        if pts.size % 2:
            raise BadRecordError(
                f'{where}flat polygon has an odd number of coordinates '
                f'({pts.size})', file, record)
        pts = pts.reshape(-1, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise BadRecordError(
            f'{where}polygon must be a list of [x, y] points, got shape '
            f'{tuple(pts.shape)}', file, record)
    finite = np.isfinite(pts)
    if not finite.all():
        point, axis = np.argwhere(~finite)[0]
        raise BadRecordError(
            f'{where}polygon point {point} has {"xy"[axis]} = '
            f'{pts[point, axis]}; coordinates must be finite', file, record)
    return pts


def _check_range(pts: np.ndarray, height: Optional[int],
                 width: Optional[int], file, record, mask_index) -> None:
    """Refuse coordinates far outside the image, before any integer cast.

    A point may lie up to one image side outside the image (x in [-W, 2W],
    y in [-H, 2H]); anything further is a broken annotation, and a value
    such as 1e30 would overflow the int32 cast and fill the wrong pixels.
    Without an image size, values must at least fit in int32.
    """
    limit = float(np.iinfo(np.int32).max)
    for axis, name, side in ((0, 'x', width), (1, 'y', height)):
        lo, hi = (-side, 2 * side) if side else (-limit, limit)
        values = pts[:, axis]
        outside = np.flatnonzero((values < lo) | (values > hi))
        if outside.size:
            point = int(outside[0])
            where = f' for a {width}x{height} image' if side else ''
            raise BadRecordError(
                f'{_where(mask_index)}polygon point {point} has {name} = '
                f'{values[point]:g}, outside the allowed range '
                f'[{lo:.0f}, {hi:.0f}]{where}', file, record)


def validate_polygon(polygon,
                     file: Optional[str] = None,
                     record: Optional[object] = None,
                     mask_index: Optional[int] = None,
                     height: Optional[int] = None,
                     width: Optional[int] = None) -> np.ndarray:
    """Check a polygon is usable and return it as an int32 [N, 2] array.

    A polygon is degenerate when it has fewer than 3 distinct points or zero
    area: filling it would give an empty or one-pixel-wide mask, which is
    almost always an annotation error. With ``height``/``width``, points
    must lie within one image side of the image (see :func:`_check_range`).
    """
    pts = _as_points(polygon, file, record, mask_index)
    _check_range(pts, height, width, file, record, mask_index)
    where = _where(mask_index)
    distinct = np.unique(np.round(pts, 6), axis=0)
    if len(distinct) < 3:
        raise BadRecordError(
            f'{where}degenerate polygon with {len(distinct)} distinct '
            'point(s); at least 3 are needed', file, record)
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if area == 0:
        raise BadRecordError(f'{where}degenerate polygon with zero area',
                             file, record)
    return np.round(pts).astype(np.int32)


def polygons_to_mask(polygons: Sequence[Polygon],
                     height: int,
                     width: int,
                     file: Optional[str] = None,
                     record: Optional[object] = None,
                     mask_index: Optional[int] = None) -> np.ndarray:
    """Union of ``polygons`` as a uint8 {0, 1} mask of ``height x width``."""
    import cv2
    if len(polygons) == 0:
        where = _where(mask_index)
        raise BadRecordError(f'{where}empty polygon list', file, record)
    mask = np.zeros((height, width), dtype=np.uint8)
    for polygon in polygons:
        pts = validate_polygon(polygon, file, record, mask_index, height,
                               width)
        cv2.fillPoly(mask, [pts], 1)
    if not mask.any():
        where = _where(mask_index)
        raise BadRecordError(
            f'{where}polygons lie entirely outside the {width}x{height} '
            'image', file, record)
    return mask


def decode_rle(rle: dict,
               height: Optional[int] = None,
               width: Optional[int] = None,
               file: Optional[str] = None,
               record: Optional[object] = None,
               mask_index: Optional[int] = None) -> np.ndarray:
    """Decode one COCO RLE (compressed str/bytes or uncompressed list counts).

    When ``height``/``width`` are given, an RLE of another size is an error:
    the official loader would silently pair it with the wrong image.
    """
    from pycocotools import mask as mask_utils
    where = _where(mask_index)
    if not isinstance(rle, dict) or 'size' not in rle or 'counts' not in rle:
        raise BadRecordError(
            f'{where}RLE must be a dict with "size" and "counts"', file,
            record)
    size = rle['size']
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(_is_count(s) and s > 0 for s in size)):
        raise BadRecordError(
            f'{where}RLE "size" must be [height, width], got {size!r}', file,
            record)
    size = [int(s) for s in size]
    if height is not None and width is not None and size != [height, width]:
        raise BadRecordError(
            f'{where}RLE size {size} does not match the image size '
            f'[{height}, {width}] (as [h, w])', file, record)
    counts = rle['counts']
    if isinstance(counts, list):
        if not all(_is_count(c) and c >= 0 for c in counts):
            raise BadRecordError(
                f'{where}uncompressed RLE counts must be non-negative '
                'integers', file, record)
        if sum(counts) != size[0] * size[1]:
            raise BadRecordError(
                f'{where}uncompressed RLE counts sum to {sum(counts)}, not '
                f'{size[0]} x {size[1]} = {size[0] * size[1]} pixels', file,
                record)
    elif not isinstance(counts, (str, bytes)):
        raise BadRecordError(
            f'{where}RLE "counts" must be a string or a list of integers, '
            f'got {type(counts).__name__}', file, record)
    try:
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(dict(size=size, counts=counts),
                                         size[0], size[1])
        else:
            if isinstance(counts, str):
                counts = counts.encode('ascii')
            rle = {'size': size, 'counts': counts}
        decoded = mask_utils.decode(rle)
    except Exception as exc:  # pycocotools raises bare Exceptions
        raise BadRecordError(f'{where}cannot decode RLE ({exc})', file,
                             record) from None
    return np.ascontiguousarray(decoded.astype(np.uint8))


def _is_count(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def encode_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE with ``counts`` as str (JSON-serialisable)."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    rle['size'] = [int(s) for s in rle['size']]
    return rle


def coco_segmentation_to_mask(segmentation: Union[list, dict],
                              height: int,
                              width: int,
                              file: Optional[str] = None,
                              record: Optional[object] = None) -> np.ndarray:
    """A COCO ``segmentation`` field (flat polygons or RLE) as a uint8 mask.

    Polygons are rasterised with pycocotools, exactly as the REFER API's
    ``getMask`` does for RRSIS-D, and the parts are OR-ed together.
    """
    from pycocotools import mask as mask_utils
    if isinstance(segmentation, dict):
        return decode_rle(segmentation, height, width, file, record)
    if not isinstance(segmentation, list) or len(segmentation) == 0:
        raise BadRecordError('empty or malformed segmentation', file, record)
    for part in segmentation:
        validate_polygon(part, file, record, height=height, width=width)
    rles = mask_utils.frPyObjects(segmentation, height, width)
    mask = mask_utils.decode(rles)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if not mask.any():
        raise BadRecordError(
            f'segmentation lies entirely outside the {width}x{height} image',
            file, record)
    return np.ascontiguousarray(mask.astype(np.uint8))


def stack_masks(masks: List[np.ndarray], height: int,
                width: int) -> np.ndarray:
    """[N, H, W] uint8 stack (an empty list gives shape [0, H, W])."""
    if not masks:
        return np.zeros((0, height, width), dtype=np.uint8)
    return np.stack(masks).astype(np.uint8)
