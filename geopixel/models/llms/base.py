"""LLM adapter contract: wraps a causal LM and decides which weights train."""
from abc import abstractmethod
from typing import Dict

import torch
from torch import nn


class BaseLLMAdapter(nn.Module):
    """A causal LM plus its fine-tuning policy.

    ``forward(inputs_embeds, attention_mask, im_mask, labels)`` returns a
    dict with ``logits``, ``hidden_states`` (final, normed) and, with
    labels, ``loss``; ``embed_tokens`` maps ids to embeddings; ``generate``
    decodes with a KV cache. The adapter alone decides ``requires_grad`` of
    the LM's parameters.
    """

    hidden_size: int

    @abstractmethod
    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> embeddings."""

    @abstractmethod
    def forward(self, inputs_embeds, attention_mask=None, im_mask=None,
                labels=None, **kwargs) -> dict:
        """One forward pass over fused image + text embeddings."""

    @abstractmethod
    def generate(self, inputs_embeds, im_mask, eos_token_ids,
                 **kwargs) -> dict:
        """Decode one sequence with a KV cache."""

    @abstractmethod
    def resize_token_embeddings(self, new_size: int) -> None:
        """Grow the vocabulary (new rows initialised as in the recipe)."""

    @abstractmethod
    def merge_and_unload(self) -> None:
        """Fold trainable adapters into the base weights."""

    @abstractmethod
    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass."""

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """Only the parameters this adapter trains (for small checkpoints)."""
        return {
            name: param.detach()
            for name, param in self.named_parameters() if param.requires_grad
        }
