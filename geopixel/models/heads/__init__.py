"""Auxiliary training heads on LLM states (MODELS registry)."""
from .seg_words_head import SegWordsHead, request_words

__all__ = ['SegWordsHead', 'request_words']
