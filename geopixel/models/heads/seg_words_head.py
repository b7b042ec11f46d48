"""The [SEG] state names the words it grounds: an auxiliary loss.

Not in the paper; on in the tiny configs. A [SEG] state learns the words of
its expression only through the mask loss, and the mask loss can use a
word only once the decoder already does: a word that the LLM never routes
into [SEG] (in the tiny model, position words: its [SEG] attention gave
them 0.3%) never gets a gradient that would route it
(docs/en/notes/refer_study.md). This head asks each [SEG] state for the
bag of words it grounds, so every word of the expression reaches [SEG]
from the first step, whether or not the decoder uses it yet.

The words a [SEG] grounds: the phrase ``<p> ... </p>`` right before it in
the answer (grounded descriptions), else the request of its turn (the
user turn before its answer: referring segmentation). The loss is the KL
divergence from the uniform distribution over those words to the head's
softmax over the vocabulary (0 when the head names exactly them).
The head is a ``hidden x vocabulary`` linear map: 0.13M parameters at tiny
size, 377M for InternLM2-7B, which is why the 7B recipes leave it off.
"""
from typing import Iterable, List, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from geopixel.registry import MODELS


def request_words(token_ids: Sequence[int], seg_id: int,
                  end_of_turn_id: int, phrase_start_id: int,
                  phrase_end_id: int,
                  ignore_ids: Iterable[int] = ()) -> List[List[int]]:
    """For each [SEG] of one sequence, in order, the sorted distinct token
    ids it grounds (see the module docstring); negative ids (image tokens,
    padding) and ``ignore_ids`` never count.

    Raises ValueError for a [SEG] with no word to ground (nothing before
    it but image tokens and ignored ids).
    """
    ids = list(token_ids)
    ignore = set(ignore_ids) | {seg_id, end_of_turn_id, phrase_start_id,
                                phrase_end_id}
    ends = [i for i, t in enumerate(ids) if t == end_of_turn_id]
    bags = []
    for p in (i for i, t in enumerate(ids) if t == seg_id):
        before = [e for e in ends if e < p]
        request_end = before[-1] if before else -1
        span = _phrase_span(ids, request_end + 1, p, seg_id,
                            phrase_start_id, phrase_end_id)
        if span is None:
            request_start = before[-2] + 1 if len(before) > 1 else 0
            span = (request_start, max(request_end, 0))
        words = sorted({t for t in ids[span[0]:span[1]]
                        if t >= 0 and t not in ignore})
        if not words:
            raise ValueError(f'the [SEG] at token {p} grounds no word: no '
                             'phrase before it and an empty request')
        bags.append(words)
    return bags


def _phrase_span(ids, start, seg, seg_id, phrase_start_id, phrase_end_id):
    """(first, end) of the words of the ``<p> ... </p>`` in
    ``ids[start:seg]`` closed after the last [SEG] there, or None."""
    close = None
    for i in range(seg - 1, start - 1, -1):
        if ids[i] == seg_id:
            return None
        if ids[i] == phrase_end_id:
            close = i
            break
    if close is None:
        return None
    for i in range(close - 1, start - 1, -1):
        if ids[i] == phrase_start_id:
            return (i + 1, close)
        if ids[i] == phrase_end_id:
            return None
    return None


@MODELS.register_module()
class SegWordsHead(nn.Module):
    """``Linear(hidden, vocabulary)`` over [SEG] states, trained to name
    the words each grounds. The composite model fills ``in_channels`` (LLM
    width) and ``vocab_size`` (the tokenizer's length).

    Args:
        loss_weight: weight of ``loss_seg_words``.
    """

    def __init__(self, in_channels: int, vocab_size: int,
                 loss_weight: float = 1.0):
        super().__init__()
        self.proj = nn.Linear(in_channels, vocab_size)
        self.vocab_size = vocab_size
        self.loss_weight = loss_weight

    def loss(self, states: torch.Tensor, bags: Sequence[Sequence[int]],
             avg_factor: Optional[float] = None) -> torch.Tensor:
        """Mean over [SEG] states ([N, hidden], one bag of ids each) of
        KL(uniform over the bag || softmax of the head).

        ``avg_factor``: divide the sum by this instead of N (under DDP,
        the rank's share of the global mean: see
        :func:`geopixel.models.losses.global_mean_divisors`).
        """
        if states.shape[0] != len(bags):
            raise ValueError(f'{states.shape[0]} [SEG] states but '
                             f'{len(bags)} word bags')
        if not bags:
            # 0 through the whole head (weight and bias): DDP needs every
            # parameter in the graph, also on a rank without [SEG]
            return self.proj(states.to(self.proj.weight.dtype)).sum() * 0.0
        # the head's own dtype in, the softmax in fp32
        log_p = F.log_softmax(
            self.proj(states.to(self.proj.weight.dtype)).float(), dim=-1)
        # the uniform distribution over each bag, one row per state
        target = torch.zeros_like(log_p)
        for row, bag in zip(target, bags):
            row[list(bag)] = 1.0 / len(bag)
        kl = (target * (target.clamp(min=1e-30).log() - log_p)).sum(-1)
        if avg_factor is not None:
            return kl.sum() / avg_factor * self.loss_weight
        return kl.mean() * self.loss_weight
