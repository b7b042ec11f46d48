"""InternLM2 adapters: partial LoRA + LoRA (the paper), LoRA only, full
fine-tuning, frozen.

Each adapter builds (or loads from a local IXC-2.5 / InternLM2 folder) our
InternLM2, resizes its vocabulary to the tokenizer, and sets which weights
train through the policy of :class:`BaseLLMAdapter`, following the
reference recipe (section 5): the base LM frozen; peft LoRA (r 8, alpha 16,
dropout 0.05 on ``attention.wqkv``, ``attention.wo``,
``feed_forward.w1/w2/w3``) trainable; the embedding and output layers
trainable in full or, with ``train_embeddings='new_rows'``, only in the
rows of the added tokens; partial LoRA (IXC-2.5: rank 256, alpha 256,
dropout 0.05 on the same projections) and norms frozen.
"""
import dataclasses
import os.path as osp
from typing import Dict, Optional

import torch

from geopixel.registry import LLM_ADAPTERS
from geopixel.utils.files import read_json
from .base import BaseLLMAdapter
from .internlm2 import InternLM2Config, InternLM2ForCausalLM

LORA_TARGETS = ('attention.wqkv', 'attention.wo', 'feed_forward.w1',
                'feed_forward.w2', 'feed_forward.w3')
PAPER_LORA = dict(
    r=8, lora_alpha=16, lora_dropout=0.05, target_modules=list(LORA_TARGETS))
IXC_PLORA = dict(rank=256, alpha=256, dropout=0.05)


def _llm_keys(key: str) -> bool:
    return (key.startswith(('model.tok_embeddings.', 'model.layers.',
                            'model.norm.', 'output.'))
            and not any(t in key for t in ('.lora_sft_', '.lora_dpo_',
                                           '.lora_web_')))


def read_internlm2_config(path: str) -> InternLM2Config:
    """The architecture in config.json of an IXC-2.5 / InternLM2 folder."""
    cfg_file = osp.join(path, 'config.json')
    if not osp.isfile(cfg_file):
        raise FileNotFoundError(
            f'{cfg_file} not found: `checkpoint` must be a local IXC-2.5 or '
            'InternLM2 folder (config.json + weights), e.g. a download of '
            'internlm/internlm-xcomposer2d5-7b')
    return InternLM2Config.from_dict(read_json(cfg_file, 'model config'))


class InternLM2Adapter(BaseLLMAdapter):
    """Our InternLM2 under the shared fine-tuning policy.

    Args: those of :class:`BaseLLMAdapter`; ``llm_config`` takes
    ``InternLM2Config`` fields (IXC-2.5 7B by default), ``checkpoint`` a
    local IXC-2.5 / InternLM2 folder (sharded or not, safetensors or .bin).
    Partial LoRA defaults to IXC-2.5's (rank 256, alpha 256, dropout 0.05),
    whose released ``Plora_A/B`` weights the checkpoint fills.
    """

    lora_targets = LORA_TARGETS
    default_plora = IXC_PLORA

    def build_model(self, llm_config: dict,
                    checkpoint: Optional[str]) -> InternLM2ForCausalLM:
        config = (read_internlm2_config(checkpoint)
                  if checkpoint is not None else InternLM2Config())
        return InternLM2ForCausalLM(dataclasses.replace(config, **llm_config))

    def checkpoint_state(self, checkpoint: str) -> Dict[str, torch.Tensor]:
        from geopixel.checkpoint import read_state_dict
        return read_state_dict(checkpoint, keep=_llm_keys)

    def input_embeddings(self):
        return self.llm.model.tok_embeddings

    def output_embeddings(self):
        return self.llm.output

    def lm_forward(self, inputs_embeds, attention_mask, past_key_values,
                   use_cache, position_ids=None) -> dict:
        return self.llm(inputs_embeds, attention_mask, past_key_values,
                        use_cache, position_ids)

    def enable_gradient_checkpointing(self) -> None:
        self.llm.model.gradient_checkpointing = True


@LLM_ADAPTERS.register_module()
class PartialLoRAAdapter(InternLM2Adapter):
    """The paper recipe: partial LoRA on image tokens (frozen, from IXC-2.5)
    plus peft LoRA on all tokens, embedding and output layers trained."""

    def __init__(self,
                 lora: Optional[dict] = PAPER_LORA,
                 use_plora: bool = True,
                 **kwargs):
        if not use_plora:
            raise ValueError('PartialLoRAAdapter always uses partial LoRA; '
                             'for LoRA alone use FullLoRAAdapter')
        super().__init__(lora=lora, use_plora=True, **kwargs)


@LLM_ADAPTERS.register_module()
class FullLoRAAdapter(InternLM2Adapter):
    """LoRA on all tokens, no partial LoRA (``im_mask`` is ignored)."""

    def __init__(self,
                 lora: Optional[dict] = PAPER_LORA,
                 use_plora: bool = False,
                 **kwargs):
        if use_plora:
            raise ValueError('FullLoRAAdapter has no partial LoRA; use '
                             'PartialLoRAAdapter for use_plora=True')
        if not lora:
            raise ValueError('FullLoRAAdapter needs a LoRA config; for no '
                             'LoRA use FrozenLLMAdapter')
        super().__init__(lora=lora, use_plora=False, **kwargs)


@LLM_ADAPTERS.register_module()
class FrozenLLMAdapter(InternLM2Adapter):
    """Nothing in the LM trains (optionally the new token rows do).

    Partial LoRA is built (frozen) so that IXC-2.5 and GeoPixel checkpoints
    load and image tokens see the released weights.
    """

    def __init__(self,
                 lora: Optional[dict] = None,
                 train_plora: bool = False,
                 train_embeddings: str = 'none',
                 use_plora: bool = True,
                 **kwargs):
        if lora or train_plora:
            raise ValueError('FrozenLLMAdapter trains no LoRA: use '
                             'PartialLoRAAdapter or FullLoRAAdapter')
        if train_embeddings == 'full':
            raise ValueError("FrozenLLMAdapter trains at most the new token "
                             "rows: train_embeddings='new_rows' or 'none'")
        super().__init__(train_embeddings=train_embeddings,
                         use_plora=use_plora, **kwargs)


__all__ = [
    'InternLM2Adapter', 'PartialLoRAAdapter', 'FullLoRAAdapter',
    'FrozenLLMAdapter', 'PAPER_LORA', 'IXC_PLORA', 'LORA_TARGETS'
]


@LLM_ADAPTERS.register_module()
class FullFineTuneAdapter(InternLM2Adapter):
    """Every weight of the LM trains (no LoRA; partial LoRA, if used,
    trains too).

    For LMs with nothing to preserve: the tiny random-init configs, where
    low-rank adapters on random layers cannot route the expression into
    ``[SEG]`` (docs/en/notes/refer_study.md). A 7B LM needs ZeRO-3 for it.
    """

    def __init__(self,
                 lora: Optional[dict] = None,
                 use_plora: bool = True,
                 train_embeddings: str = 'full',
                 **kwargs):
        if lora:
            raise ValueError('FullFineTuneAdapter trains every weight; a '
                             'LoRA on top adds nothing (use FullLoRAAdapter '
                             'for LoRA)')
        if train_embeddings != 'full':
            raise ValueError('FullFineTuneAdapter trains the embeddings in '
                             "full: train_embeddings='full'")
        super().__init__(lora=None, use_plora=use_plora,
                         train_plora=use_plora,
                         train_embeddings='full', **kwargs)

    def _apply_policy(self) -> None:
        self.llm.requires_grad_(True)
