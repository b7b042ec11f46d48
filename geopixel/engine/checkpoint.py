"""Checkpoint I/O for MMEngine runs: atomic writes, safe loading, resuming.

* ``AtomicLocalBackend`` (backend name ``geopixel_atomic_local``) writes to a
  temporary file in the target folder, fsyncs it and renames it over the
  target, so a crash mid-save never leaves a truncated checkpoint or a
  ``last_checkpoint`` pointer to one.
* ``load_from_local_safe`` replaces MMEngine 0.10.7's local loader (which
  calls ``torch.load`` without ``weights_only`` and fails on torch>=2.6,
  mmengine#1655) with :func:`geopixel.checkpoint.read_checkpoint`: our own
  training checkpoints load without unpickling code; anything else that
  needs a full unpickle loads only from a trusted path (the run's own
  ``work_dir``, or a checkpoint the user passes ``--trust-checkpoint`` for,
  see :func:`trust_checkpoint_dir`). Non-finite weights are refused.
* :func:`resume_candidates` / :func:`pick_resume_checkpoint` find the newest
  checkpoint of a work dir that reads back, skipping damaged ones.
"""
import logging
import os
import os.path as osp
import re
import tempfile
from typing import List, Optional, Union

from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import print_log
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
    """Allow full unpickling of checkpoints at ``path`` (a file) or under
    it (a folder: a run's own work_dir). Only for files the user vouches
    for: unpickling runs whatever code the file carries."""
    path = osp.abspath(path)
    if path not in _TRUSTED_DIRS:
        _TRUSTED_DIRS.append(path)


def _is_trusted(filename: str) -> bool:
    filename = osp.abspath(filename)
    return any(
        osp.commonpath([filename, d]) == d for d in _TRUSTED_DIRS)


def load_from_local_safe(filename: str, map_location=None):
    """MMEngine's local checkpoint loader, safe on torch>=2.6."""
    from geopixel.checkpoint import check_finite, read_checkpoint
    filename = osp.expanduser(filename)
    checkpoint = read_checkpoint(
        filename, map_location=map_location, trusted=_is_trusted(filename))
    state = (checkpoint.get('state_dict', checkpoint)
             if isinstance(checkpoint, dict) else None)
    if isinstance(state, dict):
        check_finite(state, filename)
    return checkpoint


CheckpointLoader.register_scheme(
    prefixes='', loader=load_from_local_safe, force=True)


_CHECKPOINT_NAME = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def resume_candidates(work_dir: str) -> List[str]:
    """Checkpoints of ``work_dir`` newest first: the ``last_checkpoint``
    pointer's target, then ``iter_N.pth`` / ``epoch_N.pth`` by N."""
    found = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            last = f.read().strip()
        if last:
            found.append(last if osp.isabs(last) else osp.join(work_dir, last))
    numbered = []
    for name in os.listdir(work_dir) if osp.isdir(work_dir) else []:
        match = _CHECKPOINT_NAME.match(name)
        if match:
            numbered.append((int(match.group(2)), osp.join(work_dir, name)))
    for _, path in sorted(numbered, reverse=True):
        if all(osp.abspath(path) != osp.abspath(p) for p in found):
            found.append(path)
    return found


def pick_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest checkpoint of ``work_dir`` that reads back (None: none).

    A damaged newest checkpoint (a bad copy, a full disk) is skipped with a
    warning naming it and the problem, instead of stopping the resume.
    """
    from geopixel.checkpoint import checkpoint_problem
    for path in resume_candidates(work_dir):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        print_log(f'cannot resume from {path}: {problem}; trying the next '
                  'newest checkpoint', 'current', logging.WARNING)
    return None
