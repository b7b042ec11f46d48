"""SAM (v1) ViT image encoder as an alternative grounding encoder.

Built on transformers' ``SamVisionEncoder`` (the ``segment_anything``
package imports torchvision, which does not work on the CPU stack). SAM v1
preprocessing differs from SAM2's: the longest side is resized to the input
size (aspect kept), normalised, and padded bottom-right; the decoder later
crops that padding away before resizing masks to the original size.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from geopixel.registry import GROUNDING_ENCODERS
from .base import BaseGroundingEncoder, GroundingFeatures
from .sam2 import IMAGENET_MEAN, IMAGENET_STD

SAM_VARIANTS = {
    'vit_b': dict(hidden_size=768, num_hidden_layers=12,
                  num_attention_heads=12, global_attn_indexes=[2, 5, 8, 11]),
    'vit_l': dict(hidden_size=1024, num_hidden_layers=24,
                  num_attention_heads=16,
                  global_attn_indexes=[5, 11, 17, 23]),
    'vit_h': dict(hidden_size=1280, num_hidden_layers=32,
                  num_attention_heads=16,
                  global_attn_indexes=[7, 15, 23, 31]),
}


def sam_vision_config(variant: str, image_size: int,
                      overrides: Optional[dict] = None):
    from transformers import SamVisionConfig
    if variant not in SAM_VARIANTS:
        raise ValueError(f'unknown SAM variant {variant!r}; choose one of '
                         f'{sorted(SAM_VARIANTS)}')
    values = dict(SAM_VARIANTS[variant], image_size=image_size)
    values.update(overrides or {})
    return SamVisionConfig(**values)


@GROUNDING_ENCODERS.register_module()
class SAMGroundingEncoder(BaseGroundingEncoder):
    """Frozen SAM ViT-B/L/H image encoder.

    Args:
        variant: ``'vit_b'``, ``'vit_l'`` or ``'vit_h'``.
        image_size: input side (1024 for released SAM weights).
        overrides: ``SamVisionConfig`` fields (tiny CPU models).
        checkpoint: a local Hugging Face SAM folder (e.g. a copy of
            facebook/sam-vit-huge); its ``vision_encoder.*`` weights load.
        frozen: keep the encoder frozen.
    """

    def __init__(self,
                 variant: str = 'vit_h',
                 image_size: int = 1024,
                 overrides: Optional[dict] = None,
                 checkpoint: Optional[str] = None,
                 frozen: bool = True):
        super().__init__()
        from transformers.models.sam.modeling_sam import SamVisionEncoder
        config = sam_vision_config(variant, image_size, overrides)
        config._attn_implementation = 'sdpa'  # built outside from_pretrained
        self.vision_encoder = SamVisionEncoder(config)
        self.hidden_dim = config.output_channels
        self.input_size = image_size
        self.register_buffer(
            'pixel_mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer(
            'pixel_std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        from geopixel.checkpoint.meta import weights_deferred
        if checkpoint is not None and not weights_deferred():
            from geopixel.checkpoint import read_state_dict
            state = read_state_dict(
                checkpoint, keep=lambda k: k.startswith('vision_encoder.'))
            state = {k[len('vision_encoder.'):]: v for k, v in state.items()}
            self.vision_encoder.load_state_dict(state, strict=True)
            from geopixel.checkpoint.frozen import mark_loaded
            mark_loaded(self.vision_encoder, checkpoint, state)
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode and not self.frozen)
        return self

    def resized_size(self, height: int, width: int):
        scale = self.input_size / max(height, width)
        return int(height * scale + 0.5), int(width * scale + 0.5)

    def preprocess(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Longest side to ``input_size``, normalise, pad bottom-right."""
        batch = []
        for img in images:
            h, w = img.shape[-2:]
            nh, nw = self.resized_size(h, w)
            x = img[:3].float().div(255)[None]
            x = F.interpolate(x, size=(nh, nw), mode='bilinear',
                              align_corners=False, antialias=True)
            x = (x - self.pixel_mean) / self.pixel_std
            x = F.pad(x, (0, self.input_size - nw, 0, self.input_size - nh))
            batch.append(x)
        return torch.cat(batch)

    def forward(self, pixel_values: torch.Tensor) -> GroundingFeatures:
        dtype = self.pixel_mean.dtype
        with torch.set_grad_enabled(torch.is_grad_enabled()
                                    and not self.frozen):
            out = self.vision_encoder(pixel_values=pixel_values.to(dtype))
        embed = out.last_hidden_state if hasattr(out, 'last_hidden_state') \
            else out[0]
        return dict(image_embed=embed, high_res=[], input_size=self.input_size)
