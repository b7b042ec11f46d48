"""SAM (v1) mask decoder prompted by [SEG] embeddings (pairs with
:class:`geopixel.models.grounding_encoders.SAMGroundingEncoder`)."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from geopixel.registry import MASK_DECODERS
from .base import BaseMaskDecoder


@MASK_DECODERS.register_module()
class SAMMaskDecoder(BaseMaskDecoder):
    """transformers' ``SamMaskDecoder`` with SAM's random-Fourier image
    positional embedding and no-mask dense prompt.

    Per sample, the n projected ``[SEG]`` embeddings are n single-point
    prompts (``multimask_output=False``). Low-res logits are upsampled to
    the encoder input, the resize padding is cropped, and the result is
    resized to the original image size.

    Args:
        embed_dim / image_size: filled in from the grounding encoder.
        decoder_overrides: ``SamMaskDecoderConfig`` fields.
        checkpoint: local Hugging Face SAM folder to load the decoder from.
        frozen: keep the decoder fixed.
    """

    def __init__(self,
                 embed_dim: int = 256,
                 image_size: int = 1024,
                 decoder_overrides: Optional[dict] = None,
                 checkpoint: Optional[str] = None,
                 frozen: bool = False):
        super().__init__()
        from transformers import SamMaskDecoderConfig, SamVisionConfig
        from transformers.models.sam.modeling_sam import (
            SamMaskDecoder, SamPositionalEmbedding)
        self.side = image_size // 16
        self.image_size = image_size
        self.shared_image_embedding = SamPositionalEmbedding(
            SamVisionConfig(num_pos_feats=embed_dim // 2))
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        config = SamMaskDecoderConfig(
            hidden_size=embed_dim, **(decoder_overrides or {}))
        config._attn_implementation = 'sdpa'  # built outside from_pretrained
        self.mask_decoder = SamMaskDecoder(config)
        from geopixel.checkpoint.meta import weights_deferred
        if checkpoint is not None and not weights_deferred():
            self._load(checkpoint)
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)

    def _load(self, path: str) -> None:
        from geopixel.checkpoint import read_state_dict
        state = read_state_dict(path)
        mine = {}
        for key, value in state.items():
            if key.startswith(('mask_decoder.', 'shared_image_embedding.')):
                mine[key] = value
            elif key == 'prompt_encoder.no_mask_embed.weight':
                mine['no_mask_embed.weight'] = value
        self.load_state_dict(mine, strict=True)
        from geopixel.checkpoint.frozen import mark_loaded
        mark_loaded(self, path, mine)

    def image_pe(self) -> torch.Tensor:
        side = self.side
        ref = self.shared_image_embedding.positional_embedding
        grid = torch.ones((side, side), device=ref.device, dtype=ref.dtype)
        y = (grid.cumsum(0) - 0.5) / side
        x = (grid.cumsum(1) - 0.5) / side
        pe = self.shared_image_embedding(torch.stack([x, y], dim=-1))
        return pe.permute(2, 0, 1)[None]

    def forward(self, features: dict, prompts: Sequence[torch.Tensor],
                original_sizes: Sequence[Tuple[int, int]]
                ) -> List[torch.Tensor]:
        outputs = []
        pe = self.image_pe()
        for i, (p, size) in enumerate(zip(prompts, original_sizes)):
            if p.shape[0] == 0:
                outputs.append(features['image_embed'].new_zeros(
                    (0, *size)).float())
                continue
            embed = features['image_embed'][i:i + 1]
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                1, -1, self.side, self.side)
            masks = self.mask_decoder(
                image_embeddings=embed,
                image_positional_embeddings=pe,
                sparse_prompt_embeddings=p[None, :, None, :].to(embed.dtype),
                dense_prompt_embeddings=dense,
                multimask_output=False)[0]
            low = masks[0, :, :1]  # [n, 1, 4s, 4s]
            outputs.append(self.postprocess(low, size))
        return outputs

    def postprocess(self, low: torch.Tensor,
                    size: Tuple[int, int]) -> torch.Tensor:
        h, w = size
        scale = self.image_size / max(h, w)
        nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
        x = F.interpolate(low.float(), size=(self.image_size, ) * 2,
                          mode='bilinear', align_corners=False)
        x = x[..., :nh, :nw]
        return F.interpolate(x, size=(h, w), mode='bilinear',
                             align_corners=False)[:, 0]
