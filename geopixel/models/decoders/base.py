"""Mask decoder contract."""
from abc import abstractmethod

from torch import nn


class BaseMaskDecoder(nn.Module):
    """Grounding features + per-sample prompt embeddings -> mask logits.

    ``forward(features, prompts, original_sizes)`` takes one [n_i, D] prompt
    tensor per sample and returns one [n_i, H_i, W_i] logit tensor per
    sample at its original size.
    """

    @abstractmethod
    def forward(self, features, prompts, original_sizes):
        """Decode one mask per prompt."""
