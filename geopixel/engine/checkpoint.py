"""Checkpoint I/O for MMEngine runs: atomic writes and torch>=2.6 loading.

* ``AtomicLocalBackend`` (backend name ``geopixel_atomic_local``) writes to a
  temporary file in the target folder, fsyncs it and renames it over the
  target, so a crash mid-save never leaves a truncated checkpoint or a
  ``last_checkpoint`` pointer to one; ``--resume`` then always finds the
  last complete checkpoint.
* ``load_from_local_safe`` replaces MMEngine 0.10.7's local loader, which
  calls ``torch.load`` without ``weights_only`` and so fails on torch>=2.6
  for every training checkpoint (mmengine#1655). It loads with
  ``weights_only=True`` (numpy arrays allowed), which is enough for weight
  files; a training checkpoint also pickles the message hub's objects, so
  it loads fully only from a trusted folder: the run's own ``work_dir`` or
  a checkpoint the user names on the command line (see
  :func:`trust_checkpoint_dir`).
"""
import os
import os.path as osp
import pickle
import tempfile
from typing import List, Union

import torch
from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.runner.checkpoint import CheckpointLoader

ATOMIC_BACKEND = 'geopixel_atomic_local'
_TRUSTED_DIRS: List[str] = []


def atomic_write(data: Union[bytes, str], path: str,
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + osp.basename(path) + '.', suffix='.tmp', dir=folder)
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


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """LocalBackend whose writes are atomic (temp file + fsync + rename)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj, str(filepath), encoding)


def trust_checkpoint_dir(path: str) -> None:
    """Allow full unpickling of checkpoints under ``path`` (a run's own
    work_dir): they may hold objects ``weights_only`` loading refuses."""
    path = osp.abspath(path)
    if path not in _TRUSTED_DIRS:
        _TRUSTED_DIRS.append(path)


def _is_trusted(filename: str) -> bool:
    filename = osp.abspath(filename)
    return any(
        osp.commonpath([filename, d]) == d for d in _TRUSTED_DIRS)


def _safe_globals() -> list:
    import numpy as np
    allowed = [np.ndarray, np.dtype]
    try:
        allowed.append(np._core.multiarray._reconstruct)
    except AttributeError:  # numpy < 2
        allowed.append(np.core.multiarray._reconstruct)
    allowed += [type(np.dtype(t)) for t in ('f8', 'f4', 'i8', 'i4', 'u1', 'b1')]
    allowed += [np.float64, np.float32, np.int64, np.int32]
    return allowed


def load_from_local_safe(filename: str, map_location=None):
    """MMEngine's local checkpoint loader, fixed for torch>=2.6."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _is_trusted(filename):
            raise pickle.UnpicklingError(
                f'{filename} holds objects that weights_only loading '
                'refuses. If you wrote this file yourself, pass its folder '
                'to geopixel.engine.trust_checkpoint_dir() (tools/train.py '
                'and tools/test.py trust the run\'s work_dir). '
                f'Original error: {exc}') from None
        return torch.load(
            filename, map_location=map_location, weights_only=False)


CheckpointLoader.register_scheme(
    prefixes='', loader=load_from_local_safe, force=True)
