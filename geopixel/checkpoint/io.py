"""Read a state dict from a file or a Hugging Face folder (no pickle code).

Accepts ``.safetensors``, ``.bin`` / ``.pt`` / ``.pth`` (loaded with
``weights_only=True``), and folders holding ``model.safetensors``,
``pytorch_model.bin`` or their sharded ``*.index.json`` forms.
"""
import json
import os.path as osp
from typing import Dict, Optional

import torch

FOLDER_FILES = ('model.safetensors.index.json', 'model.safetensors',
                'pytorch_model.bin.index.json', 'pytorch_model.bin')


def _read_file(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    state = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('state_dict', 'model', 'module'):
        if isinstance(state, dict) and key in state and isinstance(
                state[key], dict):
            return state[key]
    return state


def read_state_dict(path: str,
                    keep: Optional[callable] = None) -> Dict[str, torch.Tensor]:
    """All tensors of a checkpoint file or folder (``keep(key)`` filters).

    Raises:
        FileNotFoundError: naming what was expected where.
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
        with open(file) as f:
            index = json.load(f)['weight_map']
        state = {}
        for shard in sorted(set(index.values())):
            shard_keys = [k for k, s in index.items() if s == shard]
            if keep is not None and not any(keep(k) for k in shard_keys):
                continue  # skip shards holding nothing we need
            state.update(read_state_dict(osp.join(path, shard), keep))
        return state
    raise FileNotFoundError(
        f'{path} holds none of {", ".join(FOLDER_FILES)}')
