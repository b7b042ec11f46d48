"""Tokenizers (TOKENIZERS registry); no transformers import: ids are
computed by sentencepiece."""
from .internlm2 import InternLM2Tokenizer

__all__ = ['InternLM2Tokenizer']
