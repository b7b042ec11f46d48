"""SAM2 Hiera image encoder as GeoPixel's grounding encoder.

Built from the ``sam2`` package's own config files with
``OmegaConf.load`` + ``hydra.utils.instantiate`` (never Hydra's global
``compose``), so it works from any working directory and beside other Hydra
users. Only the image encoder and ``no_mem_embed`` are built: GeoPixel uses
SAM2 on single images, so the video-memory modules of a full ``SAM2Base``
would only cost memory (their checkpoint keys are dropped on load).

Output, as SAM2Base prepares it for the mask decoder (reference section 3):
``image_embed`` is the lowest-resolution FPN level plus ``no_mem_embed``;
``high_res`` are the two higher levels, still to be projected by the
decoder's ``conv_s0`` / ``conv_s1``.
"""
import os.path as osp
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geopixel.registry import GROUNDING_ENCODERS
from .base import BaseGroundingEncoder, GroundingFeatures

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SAM2_CONFIGS = {
    'hiera_t': 'configs/sam2/sam2_hiera_t.yaml',
    'hiera_s': 'configs/sam2/sam2_hiera_s.yaml',
    'hiera_b+': 'configs/sam2/sam2_hiera_b+.yaml',
    'hiera_l': 'configs/sam2/sam2_hiera_l.yaml',
    'sam2.1_hiera_t': 'configs/sam2.1/sam2.1_hiera_t.yaml',
    'sam2.1_hiera_s': 'configs/sam2.1/sam2.1_hiera_s.yaml',
    'sam2.1_hiera_b+': 'configs/sam2.1/sam2.1_hiera_b+.yaml',
    'sam2.1_hiera_l': 'configs/sam2.1/sam2.1_hiera_l.yaml',
}


def load_sam2_model_config(variant: str, overrides: Optional[dict] = None):
    """The ``model`` node of a sam2 config, with nested ``overrides``."""
    try:
        import sam2
        from omegaconf import OmegaConf
    except ImportError as exc:
        raise ImportError(
            'the SAM2 grounding encoder needs the sam2 extra: see '
            'requirements/sam2.txt') from exc
    path = SAM2_CONFIGS.get(variant, variant)
    if not osp.isabs(path) and not osp.isfile(path):
        path = osp.join(osp.dirname(sam2.__file__), path)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'SAM2 config {variant!r} not found (tried {path}); use one of '
            f'{sorted(SAM2_CONFIGS)} or a path to a sam2 YAML file')
    cfg = OmegaConf.load(path).model
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.create(_plain(overrides)))
    return cfg


def _plain(value):
    """Config containers (e.g. MMEngine's ConfigDict) as plain dicts."""
    from collections.abc import Mapping
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_sam2_checkpoint(path: str) -> dict:
    """State dict of a SAM2 ``.pt`` (``{'model': ...}``) or a bare dict."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'SAM2 checkpoint not found: {path}. Download e.g. '
            'sam2_hiera_large.pt from the SAM2 release and give its path.')
    from geopixel.checkpoint import read_state_dict
    return read_state_dict(path)


@GROUNDING_ENCODERS.register_module()
class SAM2GroundingEncoder(BaseGroundingEncoder):
    """Frozen SAM2 image encoder (Hiera + FPN neck).

    Args:
        variant: ``'hiera_l'`` (GeoPixel), ``'hiera_t'``..., a sam2.1
            variant, or a path to a sam2 YAML.
        overrides: nested overrides of the config's ``model`` node, e.g.
            ``dict(image_encoder=dict(trunk=dict(embed_dim=8)))``.
        image_size: input side (1024 for the released model; smaller sizes
            for fast CPU runs).
        checkpoint: SAM2 ``.pt`` to load (local path); None = random init.
        frozen: keep the encoder frozen (as GeoPixel does).
    """

    def __init__(self,
                 variant: str = 'hiera_l',
                 overrides: Optional[dict] = None,
                 image_size: int = 1024,
                 checkpoint: Optional[str] = None,
                 frozen: bool = True):
        super().__init__()
        from hydra.utils import instantiate
        cfg = load_sam2_model_config(variant, overrides)
        self.image_encoder = instantiate(cfg.image_encoder, _recursive_=True)
        self.hidden_dim = self.image_encoder.neck.d_model
        self.input_size = image_size
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        nn.init.trunc_normal_(self.no_mem_embed, std=0.02)
        self.register_buffer(
            'pixel_mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer(
            'pixel_std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        self.frozen = frozen
        from geopixel.checkpoint.meta import weights_deferred
        if checkpoint is not None and not weights_deferred():
            from geopixel.checkpoint.frozen import mark_loaded
            loaded = self.load_sam2_weights(load_sam2_checkpoint(checkpoint))
            mark_loaded(self, checkpoint, loaded)
        if frozen:
            self.requires_grad_(False)

    def load_sam2_weights(self, state: dict) -> List[str]:
        """Load the encoder part of a SAM2 state dict (prefix-free keys);
        returns the keys loaded."""
        mine = {
            k: v
            for k, v in state.items()
            if k.startswith('image_encoder.') or k == 'no_mem_embed'
        }
        missing, unexpected = self.load_state_dict(mine, strict=False)
        missing = [k for k in missing if not k.startswith('pixel_')]
        if missing or unexpected:
            raise KeyError(f'SAM2 checkpoint does not fit the encoder: '
                           f'missing {missing[:5]}, unexpected '
                           f'{unexpected[:5]}')
        return list(mine)

    def train(self, mode: bool = True):
        super().train(mode and not self.frozen)
        return self

    def preprocess(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Resize to ``input_size`` squared (bilinear, antialiased, aspect
        not kept) and normalise with ImageNet statistics, as SAM2Transforms
        does."""
        batch = []
        for img in images:
            x = img[:3].float().div(255)[None]
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode='bilinear',
                align_corners=False, antialias=True)
            batch.append(x)
        x = torch.cat(batch)
        return (x - self.pixel_mean) / self.pixel_std

    def forward(self, pixel_values: torch.Tensor) -> GroundingFeatures:
        dtype = self.no_mem_embed.dtype
        with torch.set_grad_enabled(torch.is_grad_enabled()
                                    and not self.frozen):
            out = self.image_encoder(pixel_values.to(dtype))
        levels = out['backbone_fpn']
        image_embed = levels[-1] + self.no_mem_embed.view(1, -1, 1, 1)
        return dict(image_embed=image_embed, high_res=list(levels[:-1]))
