"""Move a collated batch to the model's device and normalise the canvases."""
from typing import Sequence, Union

import numpy as np
import torch
from mmengine.model import BaseDataPreprocessor

from geopixel.registry import MODELS

# CLIP's pixel statistics (what IXC-2.5's vision tower was trained with)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalize_canvas(canvas: Union[np.ndarray, torch.Tensor],
                     mean: Sequence[float] = CLIP_MEAN,
                     std: Sequence[float] = CLIP_STD) -> torch.Tensor:
    """A uint8 canvas as fp32 ``(x / 255 - mean) / std``, [3, H, W].

    Takes the H x W x 3 array a tiler makes or the 3 x H x W tensor the
    pipeline packs. The arithmetic is torchvision's ToTensor + Normalize,
    so the result equals the reference's bit for bit.
    """
    if isinstance(canvas, np.ndarray):
        canvas = torch.from_numpy(np.ascontiguousarray(canvas)).permute(
            2, 0, 1)
    mean_t = torch.as_tensor(mean, dtype=torch.float32,
                             device=canvas.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32,
                            device=canvas.device).view(-1, 1, 1)
    return canvas.float().div(255).sub(mean_t).div(std_t)


@MODELS.register_module()
class GeoPixelDataPreprocessor(BaseDataPreprocessor):
    """uint8 canvases -> normalised fp32 canvases (:func:`normalize_canvas`)
    on the device. Original images stay uint8: the grounding encoder
    applies its own preprocessing."""

    def __init__(self,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        self.mean = tuple(mean)
        self.std = tuple(std)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        canvases = [
            normalize_canvas(img, self.mean, self.std)
            for img in inputs['hd_image']
        ]
        return dict(
            inputs=dict(canvases=canvases, images=list(inputs['image'])),
            data_samples=data.get('data_samples'))
