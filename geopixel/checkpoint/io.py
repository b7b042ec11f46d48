"""Read checkpoints without running code from them, and check what they hold.

Accepts ``.safetensors``, ``.bin`` / ``.pt`` / ``.pth`` and Hugging Face
folders holding ``model.safetensors``, ``pytorch_model.bin`` or their sharded
``*.index.json`` forms.

Pickle-based files load with ``weights_only=True``: tensors, plain
containers, numpy arrays and the objects MMEngine puts in a training
checkpoint (its message hub's ``HistoryBuffer``) are allowed; anything else
(a class of another project, or code such as ``os.system``) is refused with a
:class:`CheckpointError` that names the file, what it holds, and how to load
it anyway if the user trusts it (``trusted=True``; ``--trust-checkpoint`` in
the tools). Unreadable (truncated, corrupt) files and non-finite weights are
errors that name the file, never a raw zip-reader message or a silent NaN.
"""
import os.path as osp
import pickle
import zipfile
from typing import Dict, List, Mapping, Optional

import torch

from geopixel.utils.files import read_json

FOLDER_FILES = ('model.safetensors.index.json', 'model.safetensors',
                'pytorch_model.bin.index.json', 'pytorch_model.bin')
_MAX_NAMED = 8


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, untrusted content,
    non-finite weights, or keys that do not fit the model."""

    def __init__(self, problem: str, file: str):
        self.problem = problem
        self.file = file
        super().__init__(f'checkpoint {file}: {problem}')


def _named(keys: List[str]) -> str:
    """``3 (a, b, c)`` or ``20 (a, ..., h, ...)``: counts with examples."""
    shown = ', '.join(keys[:_MAX_NAMED])
    more = ', ...' if len(keys) > _MAX_NAMED else ''
    return f'{len(keys)} ({shown}{more})'


# -- what a weights_only load may build ------------------------------------
_HISTORY_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name: str):
    """``getattr`` for unpickling MMEngine's ``HistoryBuffer`` only.

    A HistoryBuffer pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; a general ``getattr`` would let a
    file reach any attribute of any allowed object (``ndarray.tofile``
    writes files), so only those methods are served.
    """
    from mmengine.logging import HistoryBuffer
    known = set(_HISTORY_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if obj is not HistoryBuffer or name.startswith('_') or name not in known:
        raise pickle.UnpicklingError(
            f'refusing getattr({getattr(obj, "__name__", obj)!r}, {name!r})')
    return getattr(obj, name)


def _safe_globals() -> list:
    import numpy as np
    from mmengine.logging import HistoryBuffer
    try:
        reconstruct = np._core.multiarray._reconstruct
        scalar = np._core.multiarray.scalar
    except AttributeError:  # numpy < 2
        reconstruct = np.core.multiarray._reconstruct
        scalar = np.core.multiarray.scalar
    allowed = [np.ndarray, np.dtype, reconstruct, scalar, HistoryBuffer,
               (_history_buffer_getattr, 'builtins.getattr')]
    allowed += [type(np.dtype(t)) for t in np.typecodes['All']]
    allowed += [np.float64, np.float32, np.float16, np.int64, np.int32,
                np.int16, np.int8, np.uint8, np.bool_]
    return allowed


def _untrusted_content(path: str) -> List[str]:
    """The globals a pickle-based checkpoint would import beyond what
    :func:`_safe_globals` allows (read, not executed)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a legacy (non-zip) file: the load error says it
        return []
    allowed = {
        name if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
        for g in _safe_globals()
        for name in ([g[1]] if isinstance(g, tuple) else [None])
    }
    return [n for n in names if n not in allowed]


def read_checkpoint(path: str,
                    map_location='cpu',
                    trusted: bool = False):
    """Everything a checkpoint file holds, loaded without running code.

    Args:
        path: a ``.safetensors`` file or a torch-saved file.
        map_location: as for ``torch.load``.
        trusted: the user vouches for the file: when it holds objects a
            weights-only load refuses, unpickle it fully.

    Raises:
        FileNotFoundError: nothing at ``path``.
        CheckpointError: unreadable, or untrusted content without
            ``trusted``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    if path.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            device = map_location if isinstance(map_location, str) else 'cpu'
            return load_file(path, device=device)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f'not a readable safetensors file (truncated or corrupt?): '
                f'{exc}', path) from None
    if not zipfile.is_zipfile(path):
        # torch.save has written zip archives since torch 1.6: anything else
        # is damaged, or a legacy file that only a full unpickle reads
        return _read_legacy(path, map_location, trusted)
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trusted:
            content = _untrusted_content(path)
            what = _named(content) if content else _gist(exc)
            raise CheckpointError(
                f'holds objects a weights-only load refuses: {what}. '
                'Loading it would run code from the file. If you trust '
                'where it came from, pass --trust-checkpoint (tools) or '
                'trusted=True; otherwise save it again as a plain state '
                'dict or safetensors where it was made.', path) from None
    except (RuntimeError, EOFError, OSError, ValueError,
            zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f'not a readable checkpoint (truncated or corrupt?): '
            f'{_gist(exc)}', path) from None
    return _full_unpickle(path, map_location)


def _read_legacy(path: str, map_location, trusted: bool):
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location=map_location,
                              weights_only=True)
    except Exception as exc:  # garbage raises anything
        if not trusted:
            raise CheckpointError(
                'not a readable checkpoint (truncated or corrupt?): not a '
                f'torch zip archive ({_gist(exc)}). A legacy (torch < '
                '1.6) file holding objects loads only with '
                '--trust-checkpoint.', path) from None
    return _full_unpickle(path, map_location)


def _full_unpickle(path: str, map_location):
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # any failure of a full unpickle
        raise CheckpointError(
            f'not a readable checkpoint (truncated or corrupt?): '
            f'{_gist(exc)}', path) from None


def _gist(exc: BaseException) -> str:
    """The gist of a long torch error message."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return (lines[0][:300] if lines else type(exc).__name__)


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be read back, or None when it reads.

    Verifies the zip structure and every member's CRC (what torch writes),
    or the safetensors header and size, without unpickling anything: the
    cheap test used to pick a checkpoint to resume from.
    """
    if osp.isdir(path):
        return None  # a DeepSpeed checkpoint folder: its reader checks it
    if not osp.isfile(path):
        return 'file is missing'
    if path.endswith('.safetensors'):
        try:
            read_checkpoint(path)
        except CheckpointError as exc:
            return exc.problem
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f'not a readable checkpoint (truncated or corrupt?): {exc}'
    except Exception as exc:  # zlib errors and the like from a bad copy
        return f'not a readable checkpoint (corrupt?): {exc}'
    if bad is not None:
        return f'corrupt: member {bad} fails its CRC check'
    return None


# -- what a checkpoint holds -------------------------------------------------
def check_finite(state: Mapping[str, torch.Tensor], path: str) -> None:
    """Refuse a state dict with NaN or infinite values (a diverged run or a
    damaged file): a model built from it computes garbage."""
    bad = [k for k, v in state.items() if not _finite(v)]
    if bad:
        raise CheckpointError(
            f'non-finite values (NaN or inf) in {_named(bad)} tensor(s)',
            path)


def _finite(value) -> bool:
    """True unless a floating tensor holds NaN or inf. ``aminmax``
    propagates both and allocates nothing: about 50x faster than
    ``isfinite(...).all()`` on a 7B checkpoint."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point() \
            or value.numel() == 0:
        return True
    low, high = torch.aminmax(value.detach().reshape(-1))
    return bool(torch.isfinite(low)) and bool(torch.isfinite(high))


def model_state_of(checkpoint, path: str) -> Dict[str, torch.Tensor]:
    """The model weights of a loaded checkpoint: its ``state_dict`` /
    ``model`` / ``module`` entry or the dict itself, ``module.`` (DDP)
    prefixes removed."""
    state = checkpoint
    for key in ('state_dict', 'model', 'module'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            'holds no state dict (expected a dict of tensors, or one under '
            '"state_dict", "model" or "module")', path)
    return {(k[len('module.'):] if k.startswith('module.') else k): v
            for k, v in state.items()}


def _read_file(path: str) -> Dict[str, torch.Tensor]:
    state = model_state_of(read_checkpoint(path), path)
    check_finite(state, path)
    return state


def read_state_dict(path: str, keep: Optional[callable] = None
                    ) -> Dict[str, torch.Tensor]:
    """All tensors of a checkpoint file or folder (``keep(key)`` filters).

    Raises:
        FileNotFoundError: naming what was expected where.
        CheckpointError: unreadable, untrusted or non-finite content.
    """
    if osp.isfile(path):
        state = _read_file(path)
        return {k: v for k, v in state.items() if keep is None or keep(k)}
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'checkpoint not found: {path} (expected a file or a folder '
            f'with one of {", ".join(FOLDER_FILES)})')
    for name in FOLDER_FILES:
        file = osp.join(path, name)
        if not osp.isfile(file):
            continue
        if not name.endswith('.index.json'):
            return read_state_dict(file, keep)
        try:
            index = read_json(file, 'shard index')['weight_map']
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f'unreadable shard index ({exc})',
                                  file) from None
        state = {}
        for shard in sorted(set(index.values())):
            shard_keys = [k for k, s in index.items() if s == shard]
            if keep is not None and not any(keep(k) for k in shard_keys):
                continue  # skip shards holding nothing we need
            state.update(read_state_dict(osp.join(path, shard), keep))
        return state
    raise FileNotFoundError(
        f'{path} holds none of {", ".join(FOLDER_FILES)}')


def load_model_weights(model: torch.nn.Module,
                       path: str,
                       strict: bool = True,
                       trusted: bool = False) -> dict:
    """Load a geopixel checkpoint's weights into ``model``, checked.

    Every model key must be in the checkpoint with its shape, and the
    checkpoint may hold no other key; otherwise (with ``strict``) a
    :class:`CheckpointError` names the keys. Without ``strict`` the keys
    that fit are loaded and the report says what did not. A trainable-only
    training checkpoint gets its left-out frozen weights from ``model``
    (built from the same files; checked bit for bit: ``frozen.py``).

    Returns:
        dict with ``missing``, ``unexpected`` and ``mismatched`` key lists.
    """
    # a folder: Hugging Face style (sharded) weight files
    checkpoint = (read_state_dict(path) if osp.isdir(path) else
                  read_checkpoint(path, trusted=trusted))
    state = model_state_of(checkpoint, path)
    check_finite(state, path)
    from .frozen import complete_frozen, frozen_record
    record = frozen_record(checkpoint)
    if record is not None:  # a trainable-only training checkpoint
        state = complete_frozen(model, state, record, path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f'{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
        for k in own if k in state and state[k].shape != own[k].shape
    ]
    report = dict(missing=missing, unexpected=unexpected,
                  mismatched=mismatched)
    if strict and (missing or unexpected or mismatched):
        raise CheckpointError(
            'does not fit the model: ' + describe_fit(report) +
            '. Is it the checkpoint of this config? (--non-strict loads '
            'what fits and prints this report.)', path)
    fitting = {k: v for k, v in state.items()
               if k in own and v.shape == own[k].shape}
    model.load_state_dict(fitting, strict=False)
    return report


def describe_fit(report: dict) -> str:
    """One line for a :func:`load_model_weights` report."""
    parts = [f'{name} keys {_named(report[name])}'
             for name in ('missing', 'unexpected', 'mismatched')
             if report.get(name)]
    return '; '.join(parts) or 'every key fits'
