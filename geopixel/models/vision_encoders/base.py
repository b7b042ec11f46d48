"""Vision encoder contract."""
from abc import ABCMeta, abstractmethod

from torch import nn


class BaseVisionEncoder(nn.Module, metaclass=ABCMeta):
    """Normalised tiled pixels -> visual tokens for the LLM.

    Implementations take the tiled canvases of a batch and return one
    [T_i, C] token tensor per image (T_i follows the tiler's token count),
    with ``hidden_size`` = C.
    """

    hidden_size: int

    @abstractmethod
    def forward(self, canvases, grids):
        """List of [3, H_i, W_i] canvases and their (rows, cols) grids."""
