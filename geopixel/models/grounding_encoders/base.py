"""Grounding encoder contract."""
from abc import abstractmethod

from torch import nn


class BaseGroundingEncoder(nn.Module):
    """Images -> image embedding + high-resolution features for a decoder.

    Owns its preprocessing (input size, mean, std); frozen by default.
    ``hidden_dim`` is the prompt width its decoder expects.
    """

    hidden_dim: int

    @abstractmethod
    def preprocess(self, images):
        """uint8 [3, H, W] images -> the encoder's normalised input batch."""

    @abstractmethod
    def forward(self, pixel_values):
        """Encoder features for a preprocessed batch."""
