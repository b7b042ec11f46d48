"""Cost per generated token vs prompt length, with and without a KV cache.

    python tools/analysis/benchmark_generation.py [--prompts 1024 4096]
        [--tokens 32] [--config configs/geopixel/rrsis_tiny.py]

Uses the LLM of the given config (random weights). "cached" is geopixel's
generate(); "uncached" re-runs the whole sequence for every token, as the
official implementation does (its KV cache is switched off). Reports ms per
generated token (prefill excluded) and the 4k/1k ratio; writes JSON to
--out. Set MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ on CPU.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def time_cached(llm, embeds, im_mask, tokens: int) -> float:
    """Seconds per token of generate()'s decoding loop (prefill excluded;
    forced tokens so no early EOS)."""
    import torch
    forced = torch.randint(3, 100, (tokens, )).tolist()
    out = llm.generate(embeds, im_mask, eos_token_ids=[-1], forced_ids=forced)
    return out['decode_seconds'] / tokens


def time_uncached(llm, embeds, im_mask, tokens: int) -> float:
    """Seconds per token when every step re-runs the whole sequence."""
    import torch
    seq, mask = embeds, im_mask
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(tokens):
            out = llm(seq, None, mask)
            nxt = llm.embed_tokens(out['logits'][:, -1:].argmax(-1))
            seq = torch.cat([seq, nxt], dim=1)
            mask = torch.cat([mask, mask.new_zeros(1, 1)], dim=1)
        return (time.perf_counter() - start) / tokens


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='configs/geopixel/rrsis_tiny.py')
    parser.add_argument('--prompts', type=int, nargs='+',
                        default=[1024, 4096])
    parser.add_argument('--tokens', type=int, default=32)
    parser.add_argument('--uncached-tokens', type=int, default=4)
    parser.add_argument('--image-fraction', type=float, default=0.9,
                        help='share of the prompt that is image tokens')
    parser.add_argument('--out', default='work_dirs/benchmark_generation.json')
    args = parser.parse_args(argv)

    import torch

    from geopixel.engine.runner_setup import load_config
    from geopixel.registry import LLM_ADAPTERS
    torch.manual_seed(0)
    cfg = load_config(args.config)
    llm = LLM_ADAPTERS.build(dict(cfg.model.llm, vocab_size=1003)).eval()
    hidden = llm.hidden_size
    rows = []
    for length in args.prompts:
        embeds = torch.randn(1, length, hidden)
        im_mask = torch.zeros(1, length, dtype=torch.bool)
        im_mask[0, 1:1 + int(length * args.image_fraction)] = True
        time_cached(llm, embeds, im_mask, 4)  # warm-up
        cached = time_cached(llm, embeds, im_mask, args.tokens)
        uncached = time_uncached(llm, embeds, im_mask, args.uncached_tokens)
        rows.append(
            dict(prompt_tokens=length,
                 cached_ms_per_token=round(cached * 1000, 2),
                 uncached_ms_per_token=round(uncached * 1000, 2)))
        print(rows[-1])
    first, last = rows[0], rows[-1]
    summary = dict(
        config=args.config,
        llm=dict(layers=llm.llm.config.num_hidden_layers, hidden=hidden),
        threads=torch.get_num_threads(),
        malloc_tuned='MALLOC_MMAP_THRESHOLD_' in os.environ,
        rows=rows,
        cached_ratio=round(
            last['cached_ms_per_token'] / first['cached_ms_per_token'], 3),
        uncached_ratio=round(
            last['uncached_ms_per_token'] / first['uncached_ms_per_token'],
            3))
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
