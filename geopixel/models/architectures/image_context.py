"""What a conversation about one image reuses, and what one answer holds.

:class:`ImageContext` keeps everything that depends on the image only (its
visual tokens, its grounding features) plus the LLM's KV cache of the last
sequence run on it. A new question or chat turn reuses the longest prefix
of that sequence it shares, so N questions pay for the image once and a
chat turn pays only for its new tokens.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

IMAGE_TOKEN = -1
PAD_TOKEN = -2


@dataclass
class ImageContext:
    """One image, encoded, plus the LLM cache of its last sequence.

    Attributes:
        visual: [N, H] image tokens for the LLM.
        features: grounding features of this image (batch of 1).
        size: original ``(h, w)``; masks come out at this size.
        timings: seconds spent on ``vision`` and ``grounding``.
        cached_ids: the sequence the cache holds (text ids, ``IMAGE_TOKEN``
            at image positions).
        cache: ``(key, value)`` per layer, batch 1, one position per id of
            ``cached_ids``; None before the first question.
    """
    visual: torch.Tensor
    features: dict
    size: Tuple[int, int]
    timings: Dict[str, float] = field(default_factory=dict)
    cached_ids: List[int] = field(default_factory=list)
    cache: Optional[list] = None

    def reusable(self, sequence: List[int], limit: int) -> int:
        """How many leading positions of ``sequence`` the cache already
        holds, at most ``limit``."""
        n = 0
        for a, b in zip(self.cached_ids, sequence[:limit]):
            if a != b:
                break
            n += 1
        return n

    def forget(self) -> None:
        """Drop the LLM cache (the image encoding stays)."""
        self.cached_ids, self.cache = [], None


@dataclass
class Response:
    """One answer about one image.

    Attributes:
        ids: generated token ids (empty when the answer was given).
        text: the answer (end-of-turn removed); the conversation text when
            the answer was given (teacher forcing).
        phrases: the grounded phrases of ``text`` (GLaMM's rule).
        masks: float mask logits [n, h, w] at the original size, one per
            ``[SEG]`` in order (a pixel is in the mask where > 0).
        timings: seconds of ``prefill``, ``decode`` and ``masks`` (a
            batch's seconds shared evenly among its images).
        reused_tokens: sequence positions taken from the image's cache
            instead of being run again.
    """
    ids: torch.Tensor
    text: str
    phrases: List[str]
    masks: torch.Tensor
    timings: Dict[str, float] = field(default_factory=dict)
    reused_tokens: int = 0


__all__ = ['ImageContext', 'Response', 'IMAGE_TOKEN', 'PAD_TOKEN']
