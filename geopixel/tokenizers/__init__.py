"""Tokenizers (no transformers import: ids are computed by sentencepiece)."""
from .internlm2 import GEOPIXEL_TOKENS, InternLM2Tokenizer

__all__ = ['InternLM2Tokenizer', 'GEOPIXEL_TOKENS']
