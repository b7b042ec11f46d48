"""Reading annotation and prediction files with errors that name them,
and writing files atomically (readers see the old file or the new one)."""
import json
import numbers
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple, Union

from .errors import BadRecordError


def read_json(path: str, what: str = 'file',
              record: Optional[object] = None):
    """The content of a JSON file.

    A missing or unreadable file is a :class:`BadRecordError` naming the
    file (``what`` says which kind, e.g. ``'polygon file'``) and the record
    that points at it, if any.
    """
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadRecordError(f'{what} is missing', path, record) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRecordError(f'{what} is not valid JSON ({exc})', path,
                             record) from None


def is_int(value) -> bool:
    """A JSON integer (``bool`` excluded; numpy integers included)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def temporary_sibling(path: str, suffix: str = '.tmp') -> Tuple[int, str]:
    """An open descriptor and the name of a new hidden file beside
    ``path``, to be renamed onto it. Its mode follows the umask as a plain
    ``open`` would (``mkstemp`` alone gives 0600, and a renamed checkpoint
    or GeoJSON would stay private to its writer)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + osp.basename(path) + '.', suffix=suffix, dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


@contextmanager
def replacing(path: str, suffix: str = '.tmp') -> Iterator[str]:
    """The name of a hidden sibling to write ``path`` through: when the
    block ends it is flushed to disk and renamed onto ``path``; when the
    block raises it is removed. Readers see the old file or the new one.
    A writer that makes the file anew (safetensors) gets the umask mode
    back."""
    fd, tmp = temporary_sibling(path, suffix)
    mode = os.fstat(fd).st_mode
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write(data: Union[bytes, str], path: str,
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file."""
    with replacing(path) as tmp, open(tmp, 'wb') as f:
        f.write(data.encode(encoding) if isinstance(data, str) else data)


def encode_png(image, compress_level: int = 1) -> bytes:
    """An RGB or grey uint8 array as PNG bytes. zlib level 1: lossless like
    any level, about 5x faster than PIL's default 6 on an 800 px aerial
    patch, and no larger on aerial texture."""
    import io

    import numpy as np
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(
        buffer, format='PNG', compress_level=compress_level)
    return buffer.getvalue()


def write_png(image, path: str) -> None:
    """:func:`encode_png` written atomically."""
    atomic_write(encode_png(image), path)
