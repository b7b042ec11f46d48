"""Causal LMs and the adapters that own their fine-tuning policy."""
from .base import BaseLLMAdapter

__all__ = ['BaseLLMAdapter']
