"""Checkpoints that hold what trains: frozen weights are referenced, not
copied.

A 7B GeoPixel run trains under a tenth of its weights; the rest (CLIP,
SAM2, the LLM's base) come from released files the config names. Saving
them at every checkpoint costs ~20 GB a save, so a training checkpoint
keeps every weight that trains, plus every frozen weight that no file
reproduces (random init, grown vocabulary rows), and records for each
frozen weight it leaves out the file it came from and a SHA-256 of its
value. Loading builds the model from the config (which reads those files
again) and fills the left-out keys in from it, after checking each one is
bit-identical to what the run trained with; a changed or missing source is
an error, never a silently different model.

Which weights came from a file is known exactly: every component that
loads weights calls :func:`mark_loaded`, which tags the loaded tensors
themselves (so renames by peft wrappers and moves to another dtype keep
the tag, and a tensor replaced later, such as a grown embedding, loses it).
"""
import hashlib
import os.path as osp
from typing import Dict, Iterable, Mapping, Optional, Tuple

import torch

SOURCE_ATTR = '_geopixel_weight_source'
META_KEY = 'geopixel_frozen_weights'


def mark_loaded(module: torch.nn.Module, path: str,
                keys: Iterable[str]) -> None:
    """Tag ``module``'s tensors ``keys`` (its own state-dict names) as
    loaded from ``path``."""
    tensors = module.state_dict(keep_vars=True)
    path = osp.abspath(path)
    for key in keys:
        tensor = tensors.get(key)
        if tensor is not None:
            setattr(tensor, SOURCE_ATTR, path)


def unmark(tensor: torch.Tensor) -> None:
    """The tensor no longer holds what its file holds (e.g. grown rows)."""
    if hasattr(tensor, SOURCE_ATTR):
        delattr(tensor, SOURCE_ATTR)


def sourced_frozen_keys(model: torch.nn.Module) -> Dict[str, str]:
    """``{key: source file}`` for every frozen weight of ``model`` that was
    loaded from a file (a parameter without ``requires_grad``, or a
    buffer)."""
    found = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        source = getattr(tensor, SOURCE_ATTR, None)
        if source is None:
            continue
        if isinstance(tensor, torch.nn.Parameter) and tensor.requires_grad:
            continue
        found[key] = source
    return found


def tensor_digest(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes."""
    tensor = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(
        f'{tensor.dtype}{tuple(tensor.shape)}'.encode())
    if tensor.numel():
        digest.update(memoryview(tensor.view(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


class DigestCache:
    """Digests of frozen tensors, computed once per run (they do not
    change; a tensor's version counter says if one did)."""

    def __init__(self):
        self._cache = {}

    def __call__(self, tensor: torch.Tensor) -> str:
        key = (id(tensor), tensor._version, tensor.dtype, tensor.data_ptr())
        if key not in self._cache:
            self._cache[key] = tensor_digest(tensor)
        return self._cache[key]


def drop_frozen_sourced(model: torch.nn.Module,
                        state: Mapping[str, torch.Tensor],
                        digest=tensor_digest
                        ) -> Tuple[Dict[str, torch.Tensor], dict]:
    """``state`` without the frozen weights a file reproduces, and the
    record :func:`complete_frozen` needs to restore them.

    ``state`` is ``model``'s state dict (maybe already on the CPU); the
    model itself says which of its tensors came from a file.
    """
    sourced = sourced_frozen_keys(model)
    tensors = model.state_dict(keep_vars=True)
    kept, digests, sources = {}, {}, {}
    for key, value in state.items():
        source = sourced.get(key)
        if source is None:
            kept[key] = value
            continue
        digests[key] = digest(tensors[key])
        entry = sources.setdefault(source, dict(keys=0))
        entry['keys'] += 1
    for source, entry in sources.items():
        if osp.exists(source):
            entry['bytes'] = _size_of(source)
    record = dict(policy='trainable', sources=sources, digests=digests)
    return kept, record


def _size_of(path: str) -> int:
    if osp.isfile(path):
        return osp.getsize(path)
    import os
    return sum(
        osp.getsize(osp.join(root, name))
        for root, _, names in os.walk(path) for name in names)


def frozen_record(checkpoint) -> Optional[dict]:
    """The record :func:`drop_frozen_sourced` left in a checkpoint's
    ``meta`` (None: a full checkpoint)."""
    if not isinstance(checkpoint, dict):
        return None
    meta = checkpoint.get('meta')
    return meta.get(META_KEY) if isinstance(meta, dict) else None


def complete_frozen(model: torch.nn.Module,
                    state: Dict[str, torch.Tensor],
                    record: dict,
                    path: str,
                    digest=tensor_digest) -> Dict[str, torch.Tensor]:
    """Fill the frozen weights a trainable-only checkpoint left out in from
    ``model`` (built from the config, so from the same files).

    Every left-out key must exist in ``model``, be loaded from a file there
    too, and hash to the digest recorded at save time; otherwise a
    :class:`~geopixel.checkpoint.CheckpointError` names the keys and their
    files.
    """
    from .io import CheckpointError, _named
    digests = record.get('digests') or {}
    tensors = model.state_dict(keep_vars=True)
    sourced = sourced_frozen_keys(model)
    absent, unsourced, changed = [], [], []
    completed = dict(state)
    for key, expected in digests.items():
        if key in state:
            continue
        if key not in tensors:
            absent.append(key)
        elif key not in sourced:
            unsourced.append(key)
        elif digest(tensors[key]) != expected:
            changed.append(f'{key} (from {sourced[key]})')
        else:
            completed[key] = tensors[key].detach()
    problems = []
    if absent:
        problems.append(f'{_named(absent)} left-out frozen key(s) are not in '
                        'the model')
    if unsourced:
        files = sorted(record.get('sources') or {})
        problems.append(
            f'{_named(unsourced)} frozen key(s) were left out because the '
            f'run loaded them from {", ".join(files) or "a file"}, but this '
            'model was built without loading them (is the config\'s '
            'checkpoint path set?)')
    if changed:
        problems.append(
            f'{_named(changed)} frozen weight(s) differ from the ones the '
            'run trained with (was a source file replaced?)')
    if problems:
        raise CheckpointError(
            'is a trainable-only checkpoint whose frozen weights cannot be '
            'restored: ' + '; '.join(problems), path)
    return completed
