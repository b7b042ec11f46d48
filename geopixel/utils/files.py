"""Reading annotation and prediction files with errors that name them,
and writing files atomically (readers see the old file or the new one)."""
import json
import os
import os.path as osp
import tempfile
from typing import Optional, Tuple, Union

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


def atomic_write(data: Union[bytes, str], path: str,
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file."""
    fd, tmp = temporary_sibling(path)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode(encoding) if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
