"""Resolve the relative paths stored inside annotation files."""
import os.path as osp
from typing import Optional, Sequence

from .errors import BadRecordError


def resolve_data_path(path: str,
                      roots: Sequence[str],
                      file: Optional[str] = None,
                      record: Optional[object] = None,
                      strip_prefixes: Sequence[str] = ('data/', ),
                      must_exist: bool = True) -> str:
    """Find ``path`` under one of ``roots``.

    The official GeoPixelD JSON stores paths such as
    ``data/GeoPixelD/train/x.png`` relative to the repository that holds a
    ``data/`` folder. Users usually point us at that ``data/`` folder itself,
    so each root is tried with the path as stored and with a leading
    ``data/`` removed. Absolute paths are used as they are.

    Raises:
        BadRecordError: nothing exists at any candidate; the message lists
            every candidate tried.
    """
    if osp.isabs(path):
        candidates = [path]
    else:
        candidates = []
        norm = path.replace('\\', '/')
        variants = [norm] + [
            norm[len(p):] for p in strip_prefixes if norm.startswith(p)
        ]
        for root in roots:
            for variant in variants:
                candidates.append(osp.normpath(osp.join(root, variant)))
    for candidate in candidates:
        if osp.exists(candidate):
            return candidate
    if not must_exist:
        return candidates[0]
    tried = ', '.join(candidates)
    raise BadRecordError(f'missing file {path!r} (tried: {tried})', file,
                         record)

