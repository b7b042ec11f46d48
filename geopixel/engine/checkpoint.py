"""Checkpoint I/O for MMEngine runs: atomic writes, safe loading, resuming.

* ``AtomicLocalBackend`` (backend name ``geopixel_atomic_local``) writes to a
  temporary file in the target folder, fsyncs it and renames it over the
  target, so a crash mid-save never leaves a truncated checkpoint or a
  ``last_checkpoint`` pointer to one.
* :class:`SafeLocalCheckpointLoader` replaces MMEngine 0.10.7's local loader
  (which calls ``torch.load`` without ``weights_only`` and fails on
  torch>=2.6, mmengine#1655) with :func:`geopixel.checkpoint.read_checkpoint`:
  our own training checkpoints load without unpickling code; anything else
  that needs a full unpickle loads only from the paths it was given as
  trusted (the run's own ``work_dir``, a checkpoint the user passed
  ``--trust-checkpoint`` for). Non-finite weights are refused.
* :func:`resume_candidates` / :func:`pick_resume_checkpoint` find the newest
  checkpoint of a work dir that reads back, skipping damaged ones.

Nothing here touches MMEngine when imported: :func:`geopixel.engine.
setup_mmengine` registers the backend and the loader.
"""
import logging
import os
import os.path as osp
import re
from typing import List, Optional, Sequence

from mmengine.fileio.backends import LocalBackend
from mmengine.logging import print_log

from geopixel.utils.files import atomic_write

ATOMIC_BACKEND = 'geopixel_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """LocalBackend whose writes are atomic (temp file + fsync + rename)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj, str(filepath), encoding)


def register_atomic_backend() -> None:
    """Make ``backend_args=dict(backend=ATOMIC_BACKEND)`` work (idempotent)."""
    from mmengine.fileio import register_backend
    register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


class SafeLocalCheckpointLoader:
    """MMEngine's local checkpoint loader, safe on torch>=2.6.

    Args:
        trusted: files, or folders whose files, may be fully unpickled when
            a weights-only load refuses them; every other file is only
            ever read weights-only.
    """

    # MMEngine logs "Loads checkpoint by {__name__[10:]} backend"
    __name__ = 'load_from_local'

    def __init__(self, trusted: Sequence[str] = ()):
        self.trusted = [osp.abspath(p) for p in trusted]

    def is_trusted(self, filename: str) -> bool:
        filename = osp.abspath(filename)
        return any(
            osp.commonpath([filename, d]) == d for d in self.trusted)

    def __call__(self, filename: str, map_location=None):
        from geopixel.checkpoint import check_finite, read_checkpoint
        filename = osp.expanduser(filename)
        checkpoint = read_checkpoint(
            filename, map_location=map_location,
            trusted=self.is_trusted(filename))
        state = (checkpoint.get('state_dict', checkpoint)
                 if isinstance(checkpoint, dict) else None)
        if isinstance(state, dict):
            check_finite(state, filename)
        return checkpoint

    def install(self) -> 'SafeLocalCheckpointLoader':
        """Register as MMEngine's loader for local paths (replacing any
        earlier one, so the trusted paths are exactly this loader's)."""
        from mmengine.runner.checkpoint import CheckpointLoader
        CheckpointLoader.register_scheme(prefixes='', loader=self, force=True)
        return self


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
