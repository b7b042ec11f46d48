"""LLM adapter contract: wraps a causal LM and decides which weights train."""
from abc import abstractmethod

from torch import nn


class BaseLLMAdapter(nn.Module):
    """A causal LM plus its fine-tuning policy.

    ``forward(inputs_embeds, attention_mask, im_mask, labels)`` returns
    logits, hidden states and the CE loss; ``embed_tokens`` maps ids to
    embeddings; ``generate`` decodes with a KV cache.
    """

    hidden_size: int

    @abstractmethod
    def embed_tokens(self, input_ids):
        """Token ids -> embeddings."""

    @abstractmethod
    def forward(self, inputs_embeds, attention_mask, im_mask=None,
                labels=None):
        """One forward pass over fused image + text embeddings."""
