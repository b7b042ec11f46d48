"""Mask decoder contract."""
from abc import ABCMeta, abstractmethod
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn


class BaseMaskDecoder(nn.Module, metaclass=ABCMeta):
    """Grounding features + per-sample prompt embeddings -> mask logits.

    ``forward(features, prompts, original_sizes)`` takes one [n_i, D] prompt
    tensor per sample and returns one [n_i, H_i, W_i] logit tensor per
    sample at its original size. ``frozen`` says whether the decoder is
    kept fixed (GeoPixel trains its SAM2 mask decoder: ``frozen=False``).
    """

    frozen: bool

    @abstractmethod
    def forward(self, features: dict, prompts: Sequence[torch.Tensor],
                original_sizes: Sequence[Tuple[int, int]]
                ) -> List[torch.Tensor]:
        """Decode one mask per prompt."""

    def auxiliary_loss(self, features: dict,
                       prompts: Sequence[torch.Tensor],
                       gt_masks: Sequence[torch.Tensor]
                       ) -> Optional[torch.Tensor]:
        """An extra training loss summed over masks (``gt_masks``: one
        [n_i, H_i, W_i] tensor per sample), or None (the default)."""
        return None

    def forward_train(self, features: dict,
                      prompts: Sequence[torch.Tensor],
                      original_sizes: Sequence[Tuple[int, int]],
                      gt_masks: Sequence[Optional[torch.Tensor]]
                      ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """The masks and the auxiliary loss of one training step; decoders
        whose loss reuses the forward's work compute both in one pass."""
        return (self(features, prompts, original_sizes),
                self.auxiliary_loss(features, prompts, gt_masks))

    def zero_loss(self) -> torch.Tensor:
        """0 that touches every trainable parameter.

        Added to the loss so that a batch without any ``[SEG]`` still gives
        every parameter a gradient (DDP and ZeRO-3 need that).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return torch.zeros(())
        return sum(p.sum() for p in params) * 0.0
