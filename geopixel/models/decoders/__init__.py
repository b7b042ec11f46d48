"""Mask decoders (MASK_DECODERS registry)."""
from .base import BaseMaskDecoder
from .sam2_mask_decoder import SAM2MaskDecoder, postprocess_masks

__all__ = ['BaseMaskDecoder', 'SAM2MaskDecoder', 'postprocess_masks']
