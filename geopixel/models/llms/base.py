"""LLM adapter contract: wraps a causal LM and owns its fine-tuning policy.

The policy is the same for every decoder-only LM, so it lives here: partial
LoRA on image tokens, peft LoRA on all tokens, which weights train
(embedding and output rows in full, only the added rows, or none), merging
LoRA for export, the trainable state dict, the loss and generation. A
subclass for a new LM implements only what depends on the LM: building it
(``build_model``), reading its checkpoint in its own key names
(``checkpoint_state``), its input and output embedding layers, and one
forward pass (``lm_forward``); ``lora_targets`` names the projections that
LoRA and partial LoRA wrap.
"""
from abc import ABCMeta, abstractmethod
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .generation import generate
from .partial_lora import (partial_lora_keys, partial_lora_layers,
                           wrap_partial_lora)

EMBEDDING_MODES = ('full', 'new_rows', 'none')
PLORA_FIELDS = ('rank', 'alpha', 'dropout')


class BaseLLMAdapter(nn.Module, metaclass=ABCMeta):
    """A causal LM plus its fine-tuning policy.

    ``forward(inputs_embeds, attention_mask, im_mask, labels)`` returns a
    dict with ``logits``, ``hidden_states`` (final, normed) and, with
    labels, ``loss``; ``embed_tokens`` maps ids to embeddings; ``generate``
    decodes with a KV cache. The adapter alone decides ``requires_grad`` of
    the LM's parameters: everything is frozen except LoRA, the embedding
    and output layers as ``train_embeddings`` says, and partial LoRA with
    ``train_plora``.

    Args:
        llm_config: architecture fields of the LM (with a ``checkpoint``,
            they override the checkpoint's own config).
        checkpoint: local weights of the LM (file or folder).
        vocab_size: resize the vocabulary to this (the composite model
            passes the tokenizer's length). Without a checkpoint the LM is
            built at this size directly.
        lora: peft ``LoraConfig`` arguments (``target_modules`` defaults to
            ``lora_targets``), or None for no LoRA.
        use_plora: wrap ``lora_targets`` with partial LoRA.
        plora: partial-LoRA ``rank``, ``alpha`` and ``dropout`` (defaults:
            ``default_plora``).
        train_plora: also train the partial-LoRA weights.
        train_embeddings: ``'full'``, ``'new_rows'`` (only rows added by
            ``vocab_size`` learn) or ``'none'``.
        gradient_checkpointing: recompute activations in backward.
    """

    #: projections (name suffixes) that LoRA and partial LoRA wrap
    lora_targets: Tuple[str, ...] = ()
    #: partial-LoRA hyper-parameters that ``plora`` does not give
    default_plora: Optional[Dict[str, float]] = None

    def __init__(self,
                 llm_config: Optional[dict] = None,
                 checkpoint: Optional[str] = None,
                 vocab_size: Optional[int] = None,
                 lora: Optional[dict] = None,
                 use_plora: bool = False,
                 plora: Optional[dict] = None,
                 train_plora: bool = False,
                 train_embeddings: str = 'full',
                 gradient_checkpointing: bool = False):
        super().__init__()
        if train_embeddings not in EMBEDDING_MODES:
            raise ValueError(f'train_embeddings must be one of '
                             f'{EMBEDDING_MODES}, got {train_embeddings!r}')
        if not use_plora and (train_plora or plora is not None):
            raise ValueError('train_plora and plora need use_plora=True')
        plora = dict(self.default_plora or {}, **(plora or {}))
        if use_plora and set(plora) != set(PLORA_FIELDS):
            raise ValueError(f'plora needs exactly {PLORA_FIELDS}, got '
                             f'{sorted(plora)}')
        self.train_embeddings = train_embeddings
        self.train_plora = train_plora
        self._row_hooks = []
        llm_config = dict(llm_config or {})
        if checkpoint is None and vocab_size is not None:
            llm_config['vocab_size'] = vocab_size  # random init: build at size
        self.llm = self.build_model(llm_config, checkpoint)
        self.plora_config = plora if use_plora else None
        if use_plora:
            wrap_partial_lora(self.llm, self.lora_targets, **plora)
        # found once: a walk over a 7B LM's modules costs about 1 ms/token
        self._plora_layers = tuple(partial_lora_layers(self.llm))
        from geopixel.checkpoint.meta import weights_deferred
        if checkpoint is not None and not weights_deferred():
            self._load_checkpoint(checkpoint)
        self.hidden_size = self.input_embeddings().embedding_dim
        self.num_base_tokens = self.input_embeddings().num_embeddings
        if vocab_size is not None and vocab_size != self.num_base_tokens:
            self.resize_token_embeddings(vocab_size)
        self.lora_config = None
        if lora:
            self.lora_config = dict(lora)
            self.lora_config.setdefault('target_modules',
                                        list(self.lora_targets))
            self._inject_lora(self.lora_config)
        self._apply_policy()
        if gradient_checkpointing:
            self.enable_gradient_checkpointing()

    # -- what a new LM implements -----------------------------------------
    @abstractmethod
    def build_model(self, llm_config: dict,
                    checkpoint: Optional[str]) -> nn.Module:
        """The causal LM with random weights: its architecture from
        ``checkpoint``'s config (if any) updated by ``llm_config``."""

    @abstractmethod
    def checkpoint_state(self, checkpoint: str) -> Dict[str, torch.Tensor]:
        """The LM weights of ``checkpoint`` in ``self.llm``'s key names."""

    @abstractmethod
    def input_embeddings(self) -> nn.Embedding:
        """The token embedding layer of ``self.llm``."""

    @abstractmethod
    def output_embeddings(self) -> nn.Linear:
        """The output (LM head) layer of ``self.llm``."""

    @abstractmethod
    def lm_forward(self,
                   inputs_embeds: torch.Tensor,
                   attention_mask: Optional[torch.Tensor],
                   past_key_values,
                   use_cache: bool,
                   position_ids: Optional[torch.Tensor] = None) -> dict:
        """One pass of ``self.llm``: ``logits``, ``hidden_states`` (after
        the final norm) and ``past_key_values`` (None without cache). The
        cache goes in and out as a list of ``(key, value)`` per layer,
        ``[B, kv_heads, T, head_dim]``; ``attention_mask`` [B, T + L]
        covers cache and new tokens; ``position_ids`` [B, L] (None: the
        new tokens follow the cache)."""

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in backward (Hugging Face models; an LM
        with its own switch overrides this)."""
        kwargs = dict(use_reentrant=False)
        if hasattr(self.llm, 'activation_checkpointing_enable'):  # HF >= 5
            self.llm.activation_checkpointing_enable(
                activation_checkpointing_kwargs=kwargs)
        else:
            self.llm.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=kwargs)

    # -- loading ----------------------------------------------------------
    def _load_checkpoint(self, checkpoint: str) -> None:
        """Every LM weight must fit; only partial LoRA may be missing (a
        plain LM checkpoint has none: it starts at zero delta)."""
        from geopixel.checkpoint import CheckpointError, describe_fit
        state = self.checkpoint_state(checkpoint)
        own = self.llm.state_dict()
        plora = partial_lora_keys(self.llm)
        report = dict(
            missing=[k for k in own if k not in state and k not in plora],
            unexpected=[k for k in state if k not in own],
            mismatched=[
                f'{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                for k, v in state.items()
                if k in own and v.shape != own[k].shape
            ])
        if any(report.values()):
            raise CheckpointError(
                f'does not fit {type(self).__name__}: ' +
                describe_fit(report), checkpoint)
        self.llm.load_state_dict(state, strict=False)
        from geopixel.checkpoint.frozen import mark_loaded
        mark_loaded(self.llm, checkpoint, state)

    # -- policy -----------------------------------------------------------
    def _inject_lora(self, lora: dict) -> None:
        from peft import LoraConfig, inject_adapter_in_model
        inject_adapter_in_model(LoraConfig(bias='none', **lora), self.llm)

    def _apply_policy(self) -> None:
        self.llm.requires_grad_(False)
        for _, _, layer in self._lora_layers():
            for name in layer.adapter_layer_names:
                getattr(layer, name).requires_grad_(True)
        if self.train_plora:
            for layer in self._plora_layers:
                layer.Plora_A.requires_grad_(True)
                layer.Plora_B.requires_grad_(True)
        if self.train_embeddings != 'none':
            for weight in self._embedding_weights():
                weight.requires_grad_(True)
        if self.train_embeddings == 'new_rows':
            self._hook_new_rows()

    def _lora_layers(self):
        """``(parent, name, layer)`` of every peft LoRA wrapper."""
        if not self.lora_config:
            return []
        from peft.tuners.lora import LoraLayer
        return [(parent, name, child) for parent in self.llm.modules()
                for name, child in parent.named_children()
                if isinstance(child, LoraLayer)]

    def _embedding_weights(self):
        """Input and output embedding weights (one if they are tied)."""
        weights = [self.input_embeddings().weight]
        output = self.output_embeddings().weight
        if output is not weights[0]:
            weights.append(output)
        return weights

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
            weight.register_hook(keep_new_rows)
            for weight in self._embedding_weights()
        ]

    # -- interface --------------------------------------------------------
    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> embeddings."""
        return self.input_embeddings()(input_ids)

    def forward(self,
                inputs_embeds: torch.Tensor,
                attention_mask: Optional[torch.Tensor] = None,
                im_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None,
                past_key_values=None,
                use_cache: bool = False,
                position_ids: Optional[torch.Tensor] = None) -> dict:
        """One pass over fused image + text embeddings; ``im_mask`` marks
        the image tokens (partial LoRA applies there only)."""
        for layer in self._plora_layers:
            layer.im_mask = im_mask
        out = self.lm_forward(inputs_embeds, attention_mask, past_key_values,
                              use_cache, position_ids)
        if labels is not None:
            logits = out['logits'][:, :-1].float()
            target = labels[:, 1:]
            out['loss'] = nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                ignore_index=-100)
        return out

    def generate(self, inputs_embeds, im_mask, eos_token_ids,
                 **kwargs) -> dict:
        """Decode a (padded) batch with a KV cache (``generation.py``)."""
        return generate(self.forward, self.embed_tokens, inputs_embeds,
                        im_mask, eos_token_ids, **kwargs)

    def resize_token_embeddings(self, new_size: int,
                                std: float = 0.02) -> None:
        """Grow (or shrink) the embedding and output layers in place.

        New rows are N(0, std), as HF's resize does for InternLM2 (the
        recipe); kept rows, ``requires_grad`` and the new-rows rule are
        unchanged, and tied layers stay tied.
        """
        for old in self._embedding_weights():
            keep = min(new_size, old.shape[0])
            grown = torch.empty((new_size, old.shape[1]), device=old.device,
                                dtype=old.dtype)
            nn.init.normal_(grown, std=std)
            with torch.no_grad():
                grown[:keep] = old[:keep]
            weight = nn.Parameter(grown, requires_grad=old.requires_grad)
            for layer in (self.input_embeddings(), self.output_embeddings()):
                if layer.weight is old:
                    layer.weight = weight
        self.input_embeddings().num_embeddings = new_size
        self.output_embeddings().out_features = new_size
        config = getattr(self.llm, 'config', None)
        if config is not None:
            config.vocab_size = new_size
        if self._row_hooks:  # they held the old weights
            self._hook_new_rows()

    def merge_and_unload(self) -> None:
        """Fold peft LoRA into the wrapped projections and drop the
        wrappers; afterwards only the embedding rows may still train.
        Partial LoRA stays (it depends on the token, so it cannot fold)."""
        from geopixel.checkpoint.lora import lora_delta
        for parent, name, layer in self._lora_layers():
            base = layer.get_base_layer()
            with torch.no_grad():  # the formula state-dict merges use
                for adapter in layer.active_adapters:
                    base.weight += lora_delta(
                        layer.lora_A[adapter].weight,
                        layer.lora_B[adapter].weight,
                        layer.scaling[adapter]).to(base.weight.dtype)
            setattr(parent, name, base)
        self.lora_config = None
        embeddings = set(map(id, self._embedding_weights()))
        for param in self.llm.parameters():
            if id(param) not in embeddings:
                param.requires_grad = False

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """Only the parameters this adapter trains (for small checkpoints)."""
        return {
            name: param.detach()
            for name, param in self.named_parameters() if param.requires_grad
        }

    def extra_repr(self) -> str:
        return (f'hidden={self.hidden_size}, plora={self.plora_config}, '
                f'lora={self.lora_config}, train_plora={self.train_plora}, '
                f'train_embeddings={self.train_embeddings!r}')


__all__ = ['BaseLLMAdapter', 'EMBEDDING_MODES']
