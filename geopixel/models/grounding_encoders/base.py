"""Grounding encoder contract."""
from abc import ABCMeta, abstractmethod
from typing import Dict, List, Sequence

import torch
from torch import nn

GroundingFeatures = Dict[str, object]


class BaseGroundingEncoder(nn.Module, metaclass=ABCMeta):
    """Images -> features that a mask decoder turns into masks.

    Owns its preprocessing (input size, mean, std) and is frozen by default
    (``frozen``).
    ``hidden_dim`` is the width of the prompt embeddings its decoder takes;
    the composite model sizes the ``[SEG]`` projector from it.
    """

    hidden_dim: int
    input_size: int

    @abstractmethod
    def preprocess(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """uint8 [3, H_i, W_i] images -> the normalised input batch."""

    @abstractmethod
    def forward(self, pixel_values: torch.Tensor) -> GroundingFeatures:
        """Features of a preprocessed batch (``image_embed`` and friends)."""

    @staticmethod
    def original_sizes(images: Sequence[torch.Tensor]) -> List[tuple]:
        return [tuple(img.shape[-2:]) for img in images]
