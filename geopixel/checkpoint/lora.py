"""LoRA merges with the scaling the training run recorded.

A merge folds ``B @ A * scaling`` into the base weight, and ``scaling``
comes from the run's LoRA configuration: ``lora_alpha / r``
(``lora_alpha / sqrt(r)`` with ``use_rslora``), per module where
``rank_pattern`` / ``alpha_pattern`` say so, peft's defaults where the
configuration is silent (as peft applied them in training). Nothing
assumes the GeoPixel recipe's alpha 16 / r 8: a configuration is required,
and a rank that contradicts it is an error. :func:`lora_delta` is the one
merge formula, used for state dicts (:func:`merge_unmerged_lora`) and for
modules (``BaseLLMAdapter.merge_and_unload``).
"""
import json
import math
import os.path as osp
import re
from typing import Dict, Optional, Union

import torch

ADAPTER_CONFIG = 'adapter_config.json'


def as_lora_config(config) -> 'peft.LoraConfig':  # noqa: F821
    """``config`` (a peft ``LoraConfig``, or a dict of its fields such as
    ``model.llm.lora`` of our configs or an ``adapter_config.json``) as a
    ``LoraConfig`` with peft's defaults filled in."""
    from peft import LoraConfig
    if isinstance(config, LoraConfig):
        return config
    if not isinstance(config, dict):
        raise TypeError(f'a LoRA configuration is a dict or LoraConfig, '
                        f'got {type(config).__name__}')
    fields = set(LoraConfig.__dataclass_fields__)
    return LoraConfig(**{k: v for k, v in config.items() if k in fields})


def _pattern_value(patterns: dict, module: str, default):
    """peft's rule: a pattern applies to the module whose name is it or
    ends with ``.`` + it (as a regular expression)."""
    for pattern, value in (patterns or {}).items():
        if module == pattern or re.match(rf'(.*\.)?{pattern}$', module):
            return value
    return default


def lora_scaling(config, module: str, rank: Optional[int] = None) -> float:
    """The scaling of ``module``'s LoRA under ``config``; ``rank`` (the
    rows of its ``lora_A``) must be the rank the configuration gives."""
    config = as_lora_config(config)
    r = _pattern_value(config.rank_pattern, module, config.r)
    alpha = _pattern_value(config.alpha_pattern, module, config.lora_alpha)
    if rank is not None and rank != r:
        raise ValueError(
            f'{module}: lora_A has rank {rank} but the LoRA configuration '
            f'says r={r}; this is not the configuration the run trained '
            'with')
    return alpha / math.sqrt(r) if config.use_rslora else alpha / r


def lora_delta(a: torch.Tensor, b: torch.Tensor,
               scaling: float) -> torch.Tensor:
    """``B @ A * scaling`` in fp32: what a merge adds to the weight."""
    return (b.float() @ a.float()) * scaling


def read_lora_config(path: str) -> Optional[dict]:
    """The ``adapter_config.json`` of a training output: in the folder
    ``path``, or beside the file ``path``; None when there is none."""
    folder = path if osp.isdir(path) else osp.dirname(path)
    file = osp.join(folder, ADAPTER_CONFIG)
    if not osp.isfile(file):
        return None
    with open(file, encoding='utf-8') as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            from .io import CheckpointError
            raise CheckpointError(f'is not valid JSON ({exc})',
                                  file) from None


def merge_unmerged_lora(state: Dict[str, torch.Tensor],
                        lora_config: Union[dict, object]
                        ) -> Dict[str, torch.Tensor]:
    """Merge the peft LoRA of an un-merged training output (a zero_to_fp32
    state dict: ``base_model.model.`` prefix, ``base_layer``,
    ``lora_A/B.default``) into its base weights, with the scaling of
    ``lora_config`` (see the module docstring)."""
    if lora_config is None:
        raise ValueError(
            'merging LoRA needs the LoRA configuration the run trained with '
            f'(its {ADAPTER_CONFIG}, or the lora dict of its config)')
    config = as_lora_config(lora_config)
    state = {(k[len('base_model.model.'):]
              if k.startswith('base_model.model.') else k): v
             for k, v in state.items()}
    merged = {}
    for key, value in state.items():
        if '.lora_A.' in key or '.lora_B.' in key:
            continue
        merged[key.replace('.base_layer.', '.')] = value
    for key in [k for k in state if '.lora_A.' in k]:
        module = key.split('.lora_A.')[0]
        a = state[key]
        b = state[key.replace('.lora_A.', '.lora_B.')]
        target = f'{module}.weight'
        scaling = lora_scaling(config, module, a.shape[0])
        merged[target] = (merged[target].float() +
                          lora_delta(a, b, scaling)).to(merged[target].dtype)
    return merged


__all__ = [
    'ADAPTER_CONFIG', 'as_lora_config', 'lora_scaling', 'lora_delta',
    'read_lora_config', 'merge_unmerged_lora'
]
