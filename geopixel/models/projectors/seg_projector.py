"""The [SEG] projector: LLM hidden state -> mask decoder prompt."""
from torch import nn

from geopixel.registry import MODELS


@MODELS.register_module()
class SegProjector(nn.Sequential):
    """``Linear(hidden, hidden) -> ReLU -> Linear(hidden, out) -> Dropout``.

    Indices 0 and 2 match the reference's ``text_hidden_fcs.0.{0,2}``. The
    composite model fills ``in_channels`` (LLM width) and ``out_channels``
    (grounding encoder width) from the built components.
    """

    def __init__(self,
                 in_channels: int = 4096,
                 out_channels: int = 256,
                 dropout: float = 0.0):
        super().__init__(
            nn.Linear(in_channels, in_channels), nn.ReLU(inplace=True),
            nn.Linear(in_channels, out_channels), nn.Dropout(dropout))
