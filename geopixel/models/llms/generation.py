"""Batched decoding with a KV cache from fused image + text embeddings.

The reference re-runs the whole ~4k-token prefix at every step (its KV
cache is switched off); here the prompt is run once and every new token
costs one cached step, so the cost per token is nearly flat in the prompt
length.

Several sequences decode as one batch. A sample's rows may hold padding
anywhere (an earlier cache padded on the left, then its new tokens padded
on the left): padded keys are masked out and every sample carries its own
positions, so each sample computes what it computes alone. The cache is a
list of ``(key, value)`` per layer, ``[B, kv_heads, T, head_dim]``.
"""
import time
from typing import Callable, List, Optional, Sequence, Union

import torch

KVCache = List[tuple]


@torch.no_grad()
def generate(forward: Callable,
             embed: Callable,
             inputs_embeds: torch.Tensor,
             im_mask: Optional[torch.Tensor],
             eos_token_ids: Sequence[int],
             max_new_tokens: int = 512,
             do_sample: bool = False,
             temperature: float = 1.0,
             top_p: float = 1.0,
             forced_ids: Optional[Union[Sequence[int],
                                        Sequence[Sequence[int]]]] = None,
             generator: Optional[torch.Generator] = None,
             attention_mask: Optional[torch.Tensor] = None,
             position_ids: Optional[torch.Tensor] = None,
             past_key_values: Optional[KVCache] = None,
             pad_token_id: int = 0) -> dict:
    """Prefill ``inputs_embeds`` [B, L, H] (after ``past_key_values``),
    then decode every sample until EOS or its token limit.

    Args:
        forward: ``forward(inputs_embeds, attention_mask, im_mask,
            past_key_values=, use_cache=, position_ids=)`` returning
            ``logits``, ``hidden_states`` and ``past_key_values``.
        embed: token ids -> embeddings.
        attention_mask: [B, T + L] over the cache and the new tokens, True
            on real tokens (None: no padding).
        position_ids: [B, L] positions of the new tokens (None: they
            follow the cache).
        forced_ids: decode exactly these ids (one list for every sample or
            one per sample) instead of choosing them: teacher forcing
            through the cache.
        pad_token_id: what finished samples feed while others decode.

    Returns:
        ``ids`` (one LongTensor per sample, EOS included when produced);
        ``hidden_states`` (per sample [n, H]: the final hidden state of
        each generated token fed back, at its own position, which is what
        the reference gathers for ``[SEG]``); ``prefill_hidden_states``
        [B, L, H]; ``prefill_last_logits`` [B, V]; ``past_key_values`` and
        ``attention_mask`` of everything fed (a sample's generated tokens
        in the cache are ``hidden_states[i]``'s, in order);
        ``prefill_seconds``, ``decode_seconds``.
    """
    batch, length = inputs_embeds.shape[:2]
    device = inputs_embeds.device
    past_len = past_key_values[0][0].shape[2] if past_key_values else 0
    if attention_mask is None:
        attention_mask = torch.ones(
            batch, past_len + length, dtype=torch.bool, device=device)
    attention_mask = attention_mask.bool()
    if position_ids is None:
        position_ids = torch.arange(
            past_len, past_len + length, device=device)[None].expand(
                batch, -1)
    forced = _per_sample(forced_ids, batch)
    limits = [
        len(f) if f is not None else max_new_tokens for f in forced
    ]
    eos = set(int(e) for e in eos_token_ids)
    start = time.perf_counter()
    out = forward(
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        im_mask=im_mask,
        past_key_values=past_key_values,
        use_cache=True,
        position_ids=position_ids)
    past = out['past_key_values']
    logits = out['logits'][:, -1]
    prefill_hidden = out['hidden_states']
    prefill_last_logits = logits.float()
    prefill_seconds = time.perf_counter() - start
    start = time.perf_counter()
    next_pos = position_ids[:, -1] + 1
    ids: List[List[int]] = [[] for _ in range(batch)]
    states: List[list] = [[] for _ in range(batch)]
    running = [limit > 0 for limit in limits]
    step = 0
    while any(running):
        feed = []
        for i in range(batch):
            if not running[i]:
                feed.append(pad_token_id)
                continue
            token = (int(forced[i][step]) if forced[i] is not None else
                     _pick(logits[i].float(), do_sample, temperature, top_p,
                           generator))
            ids[i].append(token)
            last = len(ids[i]) == limits[i]
            if token in eos and (forced[i] is None or last):
                running[i] = False  # EOS is never fed back
                feed.append(pad_token_id)
                continue
            feed.append(token)
        fed = list(running)
        if not any(fed):
            break
        alive = torch.tensor(fed, device=device)
        attention_mask = torch.cat([attention_mask, alive[:, None]], dim=1)
        step_out = forward(
            inputs_embeds=embed(torch.tensor(feed, device=device)[:, None]),
            attention_mask=attention_mask,
            im_mask=None,
            past_key_values=past,
            use_cache=True,
            position_ids=next_pos[:, None])
        past = step_out['past_key_values']
        logits = step_out['logits'][:, -1]
        next_pos = next_pos + 1
        for i in range(batch):
            if fed[i]:
                states[i].append(step_out['hidden_states'][i, -1])
                if len(ids[i]) == limits[i]:
                    running[i] = False
        step += 1
    width = inputs_embeds.shape[-1]
    return dict(
        ids=[
            torch.tensor(seq, dtype=torch.long, device=device) for seq in ids
        ],
        hidden_states=[
            torch.stack(s) if s else inputs_embeds.new_zeros((0, width))
            for s in states
        ],
        prefill_hidden_states=prefill_hidden,
        prefill_last_logits=prefill_last_logits,
        past_key_values=past,
        attention_mask=attention_mask,
        prefill_seconds=prefill_seconds,
        decode_seconds=time.perf_counter() - start)


def _per_sample(forced_ids, batch: int) -> list:
    if forced_ids is None:
        return [None] * batch
    forced_ids = list(forced_ids)
    if forced_ids and not isinstance(forced_ids[0], int):
        if len(forced_ids) != batch:
            raise ValueError(f'forced_ids holds {len(forced_ids)} lists for '
                             f'a batch of {batch}')
        return [list(f) for f in forced_ids]
    return [forced_ids] * batch


def _pick(logits: torch.Tensor, do_sample: bool, temperature: float,
          top_p: float, generator) -> int:
    if not do_sample:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(0) - sorted_probs < top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep],
                                                sorted_probs[keep])
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))


def pad_caches(caches: Sequence[Optional[KVCache]],
               lengths: Sequence[int]) -> Optional[KVCache]:
    """Per-sample caches (batch 1; the first ``lengths[i]`` positions are
    used) -> one batched cache, left-padded with zeros to the longest."""
    longest = max(lengths)
    if longest == 0:
        return None
    template = next(c for c, n in zip(caches, lengths) if n)
    layers = []
    for layer in range(len(template)):
        pair = []
        for part in range(2):
            ref = template[layer][part]
            rows = []
            for cache, n in zip(caches, lengths):
                row = ref.new_zeros(ref.shape[:2] + (longest, ) +
                                    ref.shape[3:])
                if n:
                    row[:, :, longest - n:] = cache[layer][part][:, :, :n]
                rows.append(row)
            pair.append(torch.cat(rows))
        layers.append(tuple(pair))
    return layers


def select_cache(cache: KVCache, index: int,
                 keep: torch.Tensor) -> KVCache:
    """Sample ``index`` of a batched cache, only the positions ``keep``
    ([T] bool) marks, as a batch-1 cache."""
    if bool(keep.all()) and cache[0][0].shape[0] == 1:
        return cache
    cols = keep.nonzero().squeeze(1)
    return [(k[index:index + 1, :, cols], v[index:index + 1, :, cols])
            for k, v in cache]
