"""InternLM2 adapters: partial LoRA + LoRA (the paper), LoRA only, frozen.

Each adapter builds (or loads from a local IXC-2.5 / InternLM2 folder) our
InternLM2, resizes its vocabulary to the tokenizer, and sets which weights
train, following the reference recipe (section 5): the base LM frozen;
peft LoRA (r 8, alpha 16, dropout 0.05 on ``attention.wqkv``,
``attention.wo``, ``feed_forward.w1/w2/w3``) trainable; the embedding and
output layers trainable in full or, with ``train_embeddings='new_rows'``,
only in the rows of the added tokens; partial LoRA and norms frozen.
"""
import json
import os.path as osp
from typing import Optional

import torch
from torch import nn

from geopixel.registry import LLM_ADAPTERS
from .base import BaseLLMAdapter
from .generation import generate
from .internlm2 import InternLM2Config, InternLM2ForCausalLM, PLoRALinear

LORA_TARGETS = ('attention.wqkv', 'attention.wo', 'feed_forward.w1',
                'feed_forward.w2', 'feed_forward.w3')
PAPER_LORA = dict(
    r=8, lora_alpha=16, lora_dropout=0.05, target_modules=list(LORA_TARGETS))
EMBEDDING_MODES = ('full', 'new_rows', 'none')


def _llm_keys(key: str) -> bool:
    return (key.startswith(('model.tok_embeddings.', 'model.layers.',
                            'model.norm.', 'output.'))
            and not any(t in key for t in ('.lora_sft_', '.lora_dpo_',
                                           '.lora_web_')))


def load_internlm2_folder(path: str, config: InternLM2Config):
    """Read config.json and the LLM weights of an IXC-2.5 / InternLM2
    folder (sharded or not, safetensors or .bin)."""
    from geopixel.checkpoint import read_state_dict
    cfg_file = osp.join(path, 'config.json')
    if not osp.isfile(cfg_file):
        raise FileNotFoundError(
            f'{cfg_file} not found: `pretrained` must be a local IXC-2.5 or '
            'InternLM2 folder (config.json + weights), e.g. a download of '
            'internlm/internlm-xcomposer2d5-7b')
    with open(cfg_file) as f:
        values = json.load(f)
    keep = {k: v for k, v in config.to_dict().items() if k.startswith(
        ('plora_', 'use_plora'))}
    config = InternLM2Config.from_dict({**values, **keep})
    state = read_state_dict(path, keep=_llm_keys)
    return config, state


class InternLM2Adapter(BaseLLMAdapter):
    """InternLM2 with a configurable fine-tuning policy.

    Args:
        llm_config: ``InternLM2Config`` fields (IXC-2.5 7B by default).
        pretrained: local IXC-2.5 / InternLM2 folder to load.
        vocab_size: resize to this (the composite model passes the
            tokenizer's length).
        lora: peft ``LoraConfig`` arguments, or None for no LoRA.
        train_embeddings: ``'full'``, ``'new_rows'`` or ``'none'``.
        train_plora: also train the partial-LoRA weights.
        gradient_checkpointing: recompute activations in backward.
    """

    def __init__(self,
                 llm_config: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 vocab_size: Optional[int] = None,
                 lora: Optional[dict] = None,
                 train_embeddings: str = 'full',
                 train_plora: bool = False,
                 use_plora: bool = True,
                 gradient_checkpointing: bool = False):
        super().__init__()
        if train_embeddings not in EMBEDDING_MODES:
            raise ValueError(f'train_embeddings must be one of '
                             f'{EMBEDDING_MODES}')
        config = InternLM2Config.from_dict(
            dict(llm_config or {}, use_plora=use_plora))
        state = None
        if pretrained is not None:
            config, state = load_internlm2_folder(pretrained, config)
        elif vocab_size is not None:
            config.vocab_size = vocab_size  # random init: build at size
        self.llm = InternLM2ForCausalLM(config)
        if state is not None:
            missing, unexpected = self.llm.load_state_dict(state,
                                                           strict=False)
            if unexpected or [m for m in missing if 'Plora' not in m]:
                raise KeyError(f'{pretrained} does not fit InternLM2: '
                               f'missing {missing[:5]}, unexpected '
                               f'{unexpected[:5]}')
        self.hidden_size = config.hidden_size
        self.num_base_tokens = config.vocab_size
        if vocab_size is not None and vocab_size != config.vocab_size:
            self.resize_token_embeddings(vocab_size)
        self.train_embeddings = train_embeddings
        self.lora_config = dict(lora) if lora else None
        self._row_hooks = []
        if self.lora_config:
            self._inject_lora(self.lora_config)
        self._apply_policy(train_plora)
        if gradient_checkpointing:
            self.enable_gradient_checkpointing()

    # -- policy -----------------------------------------------------------
    def _inject_lora(self, lora: dict) -> None:
        from peft import LoraConfig, inject_adapter_in_model
        cfg = LoraConfig(bias='none', **lora)
        inject_adapter_in_model(cfg, self.llm)

    def _apply_policy(self, train_plora: bool) -> None:
        for name, param in self.llm.named_parameters():
            param.requires_grad = ('.lora_A.' in name or '.lora_B.' in name)
            if train_plora and 'Plora_' in name:
                param.requires_grad = True
        embed = self.llm.model.tok_embeddings.weight
        output = self.llm.output.weight
        if self.train_embeddings != 'none':
            embed.requires_grad_(True)
            output.requires_grad_(True)
        if self.train_embeddings == 'new_rows':
            self._hook_new_rows()

    def _hook_new_rows(self) -> None:
        """Zero the gradient of pre-existing rows: only added tokens learn.

        With AdamW and no weight decay (the recipe) a zero gradient leaves
        a row unchanged.
        """
        for handle in self._row_hooks:
            handle.remove()
        base = self.num_base_tokens

        def keep_new_rows(grad):
            grad = grad.clone()
            grad[:base] = 0
            return grad

        self._row_hooks = [
            self.llm.model.tok_embeddings.weight.register_hook(keep_new_rows),
            self.llm.output.weight.register_hook(keep_new_rows)
        ]

    # -- interface --------------------------------------------------------
    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.llm.model.tok_embeddings(input_ids)

    def forward(self,
                inputs_embeds,
                attention_mask=None,
                im_mask=None,
                labels=None,
                past_key_values=None,
                use_cache=False) -> dict:
        out = self.llm(inputs_embeds, attention_mask, im_mask,
                       past_key_values, use_cache)
        if labels is not None:
            logits = out['logits'][:, :-1].float()
            target = labels[:, 1:]
            out['loss'] = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                ignore_index=-100)
        return out

    def generate(self, inputs_embeds, im_mask, eos_token_ids,
                 **kwargs) -> dict:
        return generate(self.forward, self.embed_tokens, inputs_embeds,
                        im_mask, eos_token_ids, **kwargs)

    def resize_token_embeddings(self, new_size: int) -> None:
        self.llm.resize_token_embeddings(new_size)

    def enable_gradient_checkpointing(self) -> None:
        self.llm.model.gradient_checkpointing = True

    def merge_and_unload(self) -> None:
        """Fold peft LoRA into ``wqkv/wo/w1/w2/w3`` and drop the wrappers."""
        from peft.tuners.lora import LoraLayer
        for parent in list(self.llm.modules()):
            for child_name, child in list(parent.named_children()):
                if isinstance(child, LoraLayer):
                    child.merge()
                    setattr(parent, child_name, child.get_base_layer())
        self.lora_config = None
        for name, param in self.llm.named_parameters():
            if not name.endswith(('tok_embeddings.weight', 'output.weight')):
                param.requires_grad = False

    def extra_repr(self) -> str:
        cfg = self.llm.config
        return (f'layers={cfg.num_hidden_layers}, hidden={cfg.hidden_size}, '
                f'plora={cfg.use_plora}, lora={self.lora_config}, '
                f'train_embeddings={self.train_embeddings!r}')


@LLM_ADAPTERS.register_module()
class PartialLoRAAdapter(InternLM2Adapter):
    """The paper recipe: partial LoRA on image tokens (frozen, from IXC-2.5)
    plus peft LoRA on all tokens, embedding and output layers trained."""

    def __init__(self, lora: Optional[dict] = PAPER_LORA, **kwargs):
        kwargs.setdefault('use_plora', True)
        super().__init__(lora=lora, **kwargs)


@LLM_ADAPTERS.register_module()
class FullLoRAAdapter(InternLM2Adapter):
    """LoRA on all tokens, no partial LoRA (``im_mask`` is ignored)."""

    def __init__(self, lora: Optional[dict] = PAPER_LORA, **kwargs):
        kwargs['use_plora'] = False
        super().__init__(lora=lora, **kwargs)


@LLM_ADAPTERS.register_module()
class FrozenLLMAdapter(InternLM2Adapter):
    """Nothing in the LM trains (optionally the new token rows do)."""

    def __init__(self, train_embeddings: str = 'none', **kwargs):
        kwargs.pop('lora', None)
        super().__init__(lora=None, train_embeddings=train_embeddings,
                         **kwargs)


__all__ = [
    'InternLM2Adapter', 'PartialLoRAAdapter', 'FullLoRAAdapter',
    'FrozenLLMAdapter', 'PAPER_LORA', 'LORA_TARGETS', 'PLoRALinear'
]
