"""Move a collated batch to the model's device and normalise the canvases."""
from typing import Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from geopixel.registry import MODELS
from ..tilers.base import CLIP_MEAN, CLIP_STD


@MODELS.register_module()
class GeoPixelDataPreprocessor(BaseDataPreprocessor):
    """uint8 canvases -> ``(x / 255 - mean) / std`` in fp32, on the device.

    The arithmetic is torchvision's ToTensor + Normalize, so the normalised
    canvases equal the reference's bit for bit. Original images stay uint8:
    the grounding encoder applies its own preprocessing.
    """

    def __init__(self,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        self.register_buffer('mean',
                             torch.tensor(mean, dtype=torch.float32).view(
                                 -1, 1, 1), False)
        self.register_buffer('std',
                             torch.tensor(std, dtype=torch.float32).view(
                                 -1, 1, 1), False)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        canvases = [
            img.float().div(255).sub(self.mean).div(self.std)
            for img in inputs['hd_image']
        ]
        return dict(
            inputs=dict(canvases=canvases, images=list(inputs['image'])),
            data_samples=data.get('data_samples'))
