"""RLE masks from prediction and ground-truth files, checked before use.

pycocotools decodes some malformed RLEs without an error: counts that
cover fewer pixels than ``height x width`` (an empty string, a truncated
one) leave the rest of the mask as uninitialised memory. So the run
lengths are read and summed here first (COCO's compressed format: 5 bits
a character from ``'0'``, bit 0x20 continues a number, bit 0x10 of the last
character is the sign, and every run after the second is stored as the
difference to the run two before it).
"""
from typing import List, Optional

import numpy as np

from geopixel.utils import BadRecordError, decode_rle


def rle_runs(counts) -> List[int]:
    """Run lengths of RLE ``counts`` (compressed str/bytes or a list of
    ints); ValueError when they cannot be read or one is negative."""
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool)
                   for c in counts):
            raise ValueError('counts list holds a non-integer')
        runs = counts
    elif isinstance(counts, (str, bytes)):
        if isinstance(counts, str):
            if not counts.isascii():
                raise ValueError('counts hold a non-ASCII character')
            counts = counts.encode('ascii')
        runs = _compressed_runs(counts)
    else:
        raise ValueError('counts must be a string or a list of integers, '
                         f'got {type(counts).__name__}')
    if any(r < 0 for r in runs):
        raise ValueError('a run length is negative')
    return runs


def _compressed_runs(data: bytes) -> List[int]:
    runs, pos = [], 0
    while pos < len(data):
        value, shift, more = 0, 0, True
        while more:
            if pos == len(data):
                raise ValueError('counts end in the middle of a number')
            char = data[pos] - 48
            if not 0 <= char < 64:
                raise ValueError(f'character {chr(data[pos])!r} is not '
                                 'part of the COCO RLE alphabet')
            value |= (char & 0x1f) << shift
            more = bool(char & 0x20)
            pos += 1
            shift += 5
            if not more and char & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def check_rle(rle,
              height: int,
              width: int,
              file: Optional[str] = None,
              record: Optional[object] = None,
              mask_index: Optional[int] = None) -> int:
    """Check that ``rle`` is a well-formed ``height x width`` mask without
    decoding it; returns its foreground pixel count. Anything else is a
    :class:`BadRecordError` naming file, record and mask."""
    where = f'mask {mask_index}: ' if mask_index is not None else ''
    if not isinstance(rle, dict) or not {'size', 'counts'} <= set(rle):
        raise BadRecordError(
            f'{where}RLE must be a dict with "size" and "counts", got '
            f'{_describe(rle)}', file, record)
    size = rle['size']
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0
            for s in size)):
        raise BadRecordError(
            f'{where}RLE "size" must be [height, width], got {size!r}',
            file, record)
    if list(size) != [height, width]:
        raise BadRecordError(
            f'{where}RLE size {list(size)} does not match the image size '
            f'[{height}, {width}] (both as [height, width])', file, record)
    try:
        runs = rle_runs(rle['counts'])
    except ValueError as exc:
        raise BadRecordError(f'{where}malformed RLE counts ({exc})', file,
                             record) from None
    if sum(runs) != height * width:
        raise BadRecordError(
            f'{where}malformed RLE counts: they cover {sum(runs)} pixels, '
            f'not {height} x {width} = {height * width}', file, record)
    return sum(runs[1::2])  # runs alternate 0s and 1s, starting with 0s


def decode_checked_rle(rle,
                       height: int,
                       width: int,
                       file: Optional[str] = None,
                       record: Optional[object] = None,
                       mask_index: Optional[int] = None) -> np.ndarray:
    """:func:`check_rle`, then decode it (uint8 {0, 1})."""
    check_rle(rle, height, width, file, record, mask_index)
    return decode_rle(rle, height, width, file, record, mask_index)


def _describe(value) -> str:
    if isinstance(value, dict):
        return f'a dict with keys {sorted(map(str, value))}'
    return f'a {type(value).__name__}'
