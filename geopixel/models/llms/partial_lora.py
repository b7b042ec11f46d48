"""Partial LoRA: a low-rank delta applied only on image-token rows.

IXC-2.5 puts it on every projection of InternLM2 (``Plora_A/B``, rank 256);
the LLM adapter base wraps the target ``nn.Linear`` layers of any causal LM
with it, so the rule lives here once. The image-token mask reaches the
layers through their ``im_mask`` attribute, set by the adapter, rather than
through the LM's forward signature, which a Hugging Face model does not let
us extend.
"""
import math
from typing import Iterable, Optional, Set

import torch
from torch import nn


class PLoRALinear(nn.Linear):
    """A linear layer plus a low-rank delta applied only where ``im_mask``.

    Built around an existing ``nn.Linear`` whose weight and bias it takes
    over, so parameter names stay ``weight``, ``bias``, ``Plora_A.weight``
    and ``Plora_B.weight`` (the IXC-2.5 checkpoint names). ``im_mask``
    ([B, L] bool, or None for no image token) is set by the adapter before
    every forward and kept until the next one, so that recomputation in a
    gradient-checkpointed backward sees the same mask.

    With no image token in the batch the delta is still computed on the
    first row and multiplied by 0, so every parameter takes part in the
    graph (DDP and ZeRO need that), as in the reference.
    """

    def __init__(self,
                 base: nn.Linear,
                 rank: int,
                 alpha: float,
                 dropout: float = 0.0):
        # nn.Linear.__init__ would allocate and initialise a second weight
        nn.Module.__init__(self)
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.weight = base.weight
        self.bias = base.bias
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.Plora_A = nn.Linear(base.in_features, rank, bias=False,
                                 **factory)
        self.Plora_B = nn.Linear(rank, base.out_features, bias=False,
                                 **factory)
        self.lora_dropout = nn.Dropout(dropout) if dropout else \
            nn.Identity()
        self.lora_scaling = alpha / rank
        self.reset_partial_lora()
        self.im_mask: Optional[torch.Tensor] = None

    def reset_partial_lora(self) -> None:
        """A as nn.Linear initialises, B zero: the delta starts at 0."""
        nn.init.kaiming_uniform_(self.Plora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.Plora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        im_mask = self.im_mask
        if im_mask is None:
            return out
        if im_mask.any():
            delta = self.Plora_B(self.Plora_A(self.lora_dropout(x[im_mask])))
            out = out.clone()
            out[im_mask] = out[im_mask] + delta * self.lora_scaling
        else:
            delta = self.Plora_B(self.Plora_A(self.lora_dropout(x[:, :1])))
            out = torch.cat([out[:, :1] + delta * 0, out[:, 1:]], dim=1)
        return out


def wrap_partial_lora(model: nn.Module, targets: Iterable[str], rank: int,
                      alpha: float, dropout: float = 0.0) -> int:
    """Replace every ``nn.Linear`` whose name ends with one of ``targets``
    by a :class:`PLoRALinear` around it; returns how many were wrapped.

    Raises ValueError when no layer matches: a partial LoRA that wraps
    nothing would silently train as a plain LM.
    """
    targets = tuple(targets)
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, nn.Linear)
             and not isinstance(module, PLoRALinear)
             and _matches(name, targets)]
    if not found:
        raise ValueError(f'partial LoRA: no nn.Linear of {type(model)} '
                         f'matches the targets {list(targets)}')
    for name, linear in found:
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name)
        setattr(parent, child, PLoRALinear(linear, rank, alpha, dropout))
    return len(found)


def _matches(name: str, targets: tuple) -> bool:
    return any(name == t or name.endswith('.' + t) for t in targets)


def partial_lora_layers(model: nn.Module):
    """Every :class:`PLoRALinear` of ``model``."""
    return [m for m in model.modules() if isinstance(m, PLoRALinear)]


def partial_lora_keys(model: nn.Module) -> Set[str]:
    """State-dict keys of the partial-LoRA weights of ``model``."""
    return {
        f'{name}.{branch}.weight' if name else f'{branch}.weight'
        for name, module in model.named_modules()
        if isinstance(module, PLoRALinear)
        for branch in ('Plora_A', 'Plora_B')
    }
