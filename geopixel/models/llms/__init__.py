"""Causal LMs and the adapters that own their fine-tuning policy."""
from .adapters import (PAPER_LORA, FrozenLLMAdapter, FullLoRAAdapter,
                       InternLM2Adapter, PartialLoRAAdapter)
from .base import BaseLLMAdapter
from .internlm2 import InternLM2Config, InternLM2ForCausalLM, PLoRALinear

__all__ = [
    'BaseLLMAdapter', 'InternLM2Adapter', 'PartialLoRAAdapter',
    'FullLoRAAdapter', 'FrozenLLMAdapter', 'PAPER_LORA', 'InternLM2Config',
    'InternLM2ForCausalLM', 'PLoRALinear'
]
