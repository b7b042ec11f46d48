"""CLIP ViT tile encoder with IXC-2.5's 2x2 merge, newline and separator.

For an image tiled into ``rows x cols`` 560 px tiles plus a global view,
the visual token sequence is (reference: the official vision tower)::

    global view: 20 rows of [20 merged tokens, newline]           (420)
    separator                                                      (1)
    tiles:       rows*20 rows of [cols*20 merged tokens, newline]

Each merged token concatenates a 2x2 patch neighbourhood of the last CLIP
layer (before the post-layernorm, CLS dropped) on the channel axis in the
order (0,0), (0,1), (1,0), (1,1). The projector (Linear, GELU, Linear) maps
every token, newline and separator included, to the LLM width.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from geopixel.registry import VISION_ENCODERS
from ..tilers.base import global_view, split_tiles
from .base import BaseVisionEncoder


def _clip_vision_model(config: Optional[dict], checkpoint: Optional[str]):
    from transformers import CLIPVisionConfig, CLIPVisionModel
    if checkpoint:
        import os.path as osp
        if not osp.isdir(checkpoint):
            raise FileNotFoundError(
                f'CLIP vision tower folder not found: {checkpoint}. Expected '
                'a Hugging Face folder (config.json + weights), e.g. a local '
                'copy of internlm/internlm-xcomposer2d5-clip.')
        from geopixel.checkpoint.frozen import mark_loaded
        from geopixel.checkpoint.meta import weights_deferred
        if weights_deferred():  # the composite model streams the weights
            return CLIPVisionModel(CLIPVisionConfig.from_pretrained(
                checkpoint))
        model, info = CLIPVisionModel.from_pretrained(
            checkpoint, output_loading_info=True)
        initialised = set(info.get('missing_keys', ())) | {
            item[0] if isinstance(item, tuple) else item
            for item in info.get('mismatched_keys', ())}
        mark_loaded(model, checkpoint,
                    [k for k in model.state_dict() if k not in initialised])
        return model
    return CLIPVisionModel(CLIPVisionConfig(**(config or {})))


@VISION_ENCODERS.register_module()
class CLIPVisionEncoder(BaseVisionEncoder):
    """CLIP ViT + 2x2 merge + projector + newline/separator tokens.

    Args:
        clip_config: ``CLIPVisionConfig`` arguments (ViT-L/14 at 560 px by
            default) when no ``checkpoint`` folder is given.
        checkpoint: local folder of a Hugging Face CLIP vision model.
        out_channels: projector output width; the composite model sets it
            to the LLM width.
        tile_size: tile side in pixels (the CLIP input size).
        frozen: freeze the CLIP tower (the projector always trains).
        train_separators: train the newline/separator tokens (the reference
            keeps them frozen).
        max_clip_batch: crops per CLIP forward (bounds activation memory).
    """

    def __init__(self,
                 clip_config: Optional[dict] = None,
                 checkpoint: Optional[str] = None,
                 out_channels: int = 4096,
                 tile_size: int = 560,
                 frozen: bool = True,
                 train_separators: bool = False,
                 max_clip_batch: int = 32):
        super().__init__()
        defaults = dict(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=tile_size,
            patch_size=14,
            hidden_act='quick_gelu',
            layer_norm_eps=1e-5)
        self.vit = _clip_vision_model(
            dict(defaults, **(clip_config or {})), checkpoint)
        cfg = self.vit.config
        self.tile_size = tile_size
        self.patch_grid = tile_size // cfg.patch_size
        if self.patch_grid % 2:
            raise ValueError('the 2x2 merge needs an even patch grid, got '
                             f'{self.patch_grid}')
        merged = 4 * cfg.hidden_size
        self.merged_channels = merged
        self.hidden_size = out_channels
        self.projector = nn.Sequential(
            nn.Linear(merged, out_channels), nn.GELU(),
            nn.Linear(out_channels, out_channels))
        # names and shapes of the reference's plora_glb_GN / plora_sub_GN
        self.glb_GN = nn.Parameter(torch.zeros(1, 1, merged))
        self.sub_GN = nn.Parameter(torch.zeros(1, 1, 1, merged))
        self.frozen = frozen
        self.max_clip_batch = max_clip_batch
        if frozen:
            self.vit.requires_grad_(False)
        self.glb_GN.requires_grad_(train_separators)
        self.sub_GN.requires_grad_(train_separators)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.vit.eval()
        return self

    def clip_features(self, crops: torch.Tensor) -> torch.Tensor:
        """Last CLIP layer without CLS: [N, grid*grid, C]."""
        outs = []
        for chunk in crops.split(self.max_clip_batch):
            with torch.set_grad_enabled(torch.is_grad_enabled()
                                        and not self.frozen):
                hidden = self.vit(pixel_values=chunk).last_hidden_state
            outs.append(hidden[:, 1:])
        return torch.cat(outs)

    def merge(self, features: torch.Tensor) -> torch.Tensor:
        """[N, g*g, C] -> [N, g/2, g/2, 4C] in (dy, dx) channel order."""
        n, _, c = features.shape
        g = self.patch_grid
        x = features.reshape(n, g // 2, 2, g // 2, 2, c)
        return x.permute(0, 1, 3, 2, 4, 5).reshape(n, g // 2, g // 2, 4 * c)

    def _with_newlines(self, grid: torch.Tensor) -> torch.Tensor:
        rows = grid.shape[0]
        newline = self.sub_GN.reshape(1, 1, -1).expand(rows, 1, -1)
        return torch.cat([grid, newline.to(grid.dtype)], dim=1).flatten(0, 1)

    def assemble(self, merged: torch.Tensor,
                 grid: Tuple[int, int]) -> torch.Tensor:
        """Merged features of [global, tiles...] -> token sequence [T, 4C]."""
        rows, cols = grid
        side = merged.shape[1]
        glob = self._with_newlines(merged[0])
        tiles = merged[1:].reshape(rows, cols, side, side, -1)
        tiles = tiles.permute(0, 2, 1, 3, 4).reshape(rows * side, cols * side,
                                                     -1)
        sep = self.glb_GN.reshape(1, -1).to(merged.dtype)
        return torch.cat([glob, sep, self._with_newlines(tiles)])

    def forward(self, canvases: Sequence[torch.Tensor],
                grids: Sequence[Tuple[int, int]]) -> List[torch.Tensor]:
        """Normalised canvases [3, H, W] -> one [T_i, out_channels] each."""
        crops, counts = [], []
        for canvas, grid in zip(canvases, grids):
            crops.append(global_view(canvas, self.tile_size)[None])
            crops.append(split_tiles(canvas, tuple(grid), self.tile_size))
            counts.append(1 + grid[0] * grid[1])
        dtype = next(self.vit.parameters()).dtype
        features = self.clip_features(torch.cat(crops).to(dtype))
        merged = self.merge(features)
        tokens = [
            self.assemble(m, grid)
            for m, grid in zip(merged.split(counts), grids)
        ]
        lengths = [t.shape[0] for t in tokens]
        projected = self.projector(torch.cat(tokens).to(
            self.projector[0].weight.dtype))
        return list(projected.split(lengths))
