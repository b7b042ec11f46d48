"""Mask decoders (MASK_DECODERS registry)."""
from .base import BaseMaskDecoder

__all__ = ['BaseMaskDecoder']
