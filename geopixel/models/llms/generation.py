"""Decoding with a KV cache from fused image + text embeddings.

The reference re-runs the whole ~4k-token prefix at every step (its KV
cache is switched off); here the prefix is run once and every new token
costs one cached step, so the cost per token is nearly flat in the prompt
length.
"""
import time
from typing import Callable, Optional, Sequence

import torch


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
             forced_ids: Optional[Sequence[int]] = None,
             generator: Optional[torch.Generator] = None) -> dict:
    """Generate for one sequence ([1, L, H] embeddings).

    Args:
        forward: ``forward(inputs_embeds, attention_mask, im_mask,
            past_key_values, use_cache)`` returning ``logits``,
            ``hidden_states`` and ``past_key_values``.
        embed: token ids -> embeddings.
        forced_ids: decode exactly these ids (teacher forcing through the
            cache; used to check the cached path against a full forward).

    Returns:
        ``ids`` [n] of the generated tokens (EOS included when produced),
        ``hidden_states`` [n, H]: the final hidden state of each generated
        token at its own position (what the reference gathers for
        ``[SEG]``), ``prefill_last_logits``, and the wall time of the
        prefill and of the decoding loop (``prefill_seconds``,
        ``decode_seconds``).
    """
    if inputs_embeds.shape[0] != 1:
        raise ValueError('generate() decodes one sequence at a time')
    eos = set(int(e) for e in eos_token_ids)
    start = time.perf_counter()
    out = forward(
        inputs_embeds=inputs_embeds,
        attention_mask=None,
        im_mask=im_mask,
        past_key_values=None,
        use_cache=True)
    past = out['past_key_values']
    logits = out['logits'][:, -1]
    prefill_last_logits = logits[0].float()
    prefill_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ids, states = [], []
    limit = len(forced_ids) if forced_ids is not None else max_new_tokens
    for step in range(limit):
        if forced_ids is not None:
            token = int(forced_ids[step])
        else:
            token = _pick(logits[0].float(), do_sample, temperature, top_p,
                          generator)
        ids.append(token)
        if token in eos and forced_ids is None:
            break
        if token in eos and step == limit - 1:
            break
        step_out = forward(
            inputs_embeds=embed(
                torch.tensor([[token]], device=inputs_embeds.device)),
            attention_mask=None,
            im_mask=None,
            past_key_values=past,
            use_cache=True)
        past = step_out['past_key_values']
        states.append(step_out['hidden_states'][0, -1])
        logits = step_out['logits'][:, -1]
    hidden = (torch.stack(states) if states else inputs_embeds.new_zeros(
        (0, inputs_embeds.shape[-1])))
    return dict(
        ids=torch.tensor(ids, dtype=torch.long, device=inputs_embeds.device),
        hidden_states=hidden,
        prefill_last_logits=prefill_last_logits,
        prefill_seconds=prefill_seconds,
        decode_seconds=time.perf_counter() - start)


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
