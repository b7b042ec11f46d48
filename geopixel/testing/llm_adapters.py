"""A tiny Llama adapter: all that a second decoder-only LM has to write.

transformers' ``LlamaForCausalLM`` with random weights (2 layers, width 64
by default). It implements only building the model, its key map (Hugging
Face Llama folders already use the model's names), the embedding layers and
one forward pass; partial LoRA, peft LoRA, which weights train, merging,
the loss and generation come from :class:`BaseLLMAdapter`. Importing this
module registers it in ``LLM_ADAPTERS``.
"""
import functools
import inspect
from typing import Dict, Optional

import torch

from geopixel.models.llms import BaseLLMAdapter
from geopixel.registry import LLM_ADAPTERS

TINY_LLAMA = dict(
    vocab_size=64,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    tie_word_embeddings=False)
LLAMA_TARGETS = ('self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj',
                 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj',
                 'mlp.down_proj')


@functools.lru_cache(maxsize=None)
def _cache_argument() -> str:
    """The KV-cache argument and output field: ``cache`` in transformers
    5, ``past_key_values`` before."""
    from transformers.models.llama.modeling_llama import LlamaModel
    params = inspect.signature(LlamaModel.forward).parameters
    return 'cache' if 'cache' in params else 'past_key_values'


@LLM_ADAPTERS.register_module()
class TinyLlamaAdapter(BaseLLMAdapter):
    """Llama under the shared fine-tuning policy (``TINY_LLAMA`` sizes
    unless ``llm_config`` or a checkpoint's config.json says otherwise)."""

    lora_targets = LLAMA_TARGETS
    default_plora = dict(rank=8, alpha=8, dropout=0.0)

    def build_model(self, llm_config: dict, checkpoint: Optional[str]):
        from transformers import LlamaConfig, LlamaForCausalLM
        if checkpoint is None:
            config = LlamaConfig(**dict(TINY_LLAMA, **llm_config))
        else:
            config = LlamaConfig.from_pretrained(checkpoint, **llm_config)
        return LlamaForCausalLM(config)

    def checkpoint_state(self, checkpoint: str) -> Dict[str, torch.Tensor]:
        from geopixel.checkpoint import read_state_dict
        return read_state_dict(checkpoint)

    def input_embeddings(self):
        return self.llm.model.embed_tokens

    def output_embeddings(self):
        return self.llm.lm_head

    def lm_forward(self, inputs_embeds, attention_mask, past_key_values,
                   use_cache, position_ids=None) -> dict:
        from transformers.cache_utils import DynamicCache
        cache = _cache_argument()
        if past_key_values is not None:  # our (key, value) list -> HF's
            past_key_values = DynamicCache(ddp_cache_data=past_key_values)
        if attention_mask is not None:
            attention_mask = attention_mask.long()
        out = self.llm.model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **{cache: past_key_values})
        hidden = out.last_hidden_state
        presents = None
        if use_cache:
            presents = [(layer.keys, layer.values)
                        for layer in getattr(out, cache).layers]
        return dict(
            logits=self.llm.lm_head(hidden),
            hidden_states=hidden,
            past_key_values=presents)


__all__ = ['TinyLlamaAdapter', 'TINY_LLAMA', 'LLAMA_TARGETS']
