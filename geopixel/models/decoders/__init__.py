"""Mask decoders (MASK_DECODERS registry)."""
from .base import BaseMaskDecoder
from .sam2_mask_decoder import SAM2MaskDecoder, postprocess_masks
from .sam_mask_decoder import SAMMaskDecoder

__all__ = [
    'BaseMaskDecoder', 'SAM2MaskDecoder', 'SAMMaskDecoder', 'postprocess_masks'
]
