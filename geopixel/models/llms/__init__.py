"""Causal LMs and the adapters that own their fine-tuning policy."""
from .adapters import (IXC_PLORA, PAPER_LORA, FrozenLLMAdapter,
                       FullFineTuneAdapter, FullLoRAAdapter, InternLM2Adapter,
                       PartialLoRAAdapter)
from .base import BaseLLMAdapter
from .internlm2 import InternLM2Config, InternLM2ForCausalLM
from .partial_lora import PLoRALinear, wrap_partial_lora

__all__ = [
    'BaseLLMAdapter', 'InternLM2Adapter', 'PartialLoRAAdapter',
    'FullLoRAAdapter', 'FullFineTuneAdapter', 'FrozenLLMAdapter',
    'PAPER_LORA', 'IXC_PLORA',
    'InternLM2Config', 'InternLM2ForCausalLM', 'PLoRALinear',
    'wrap_partial_lora'
]
