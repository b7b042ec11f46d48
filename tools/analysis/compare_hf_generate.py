"""Our decoding loop against transformers' ``generate()``, same weights.

    python tools/analysis/compare_hf_generate.py [--sizes tiny mid]
        [--prompt 512] [--tokens 32] [--batch 1 8]

Builds transformers' ``LlamaForCausalLM`` with random weights and times
greedy decoding of ``--tokens`` tokens after a ``--prompt``-token prompt
(given as embeddings, as GeoPixel's fused image + text prompt is), in three
ways: ``generate()`` of transformers; geopixel's loop driving the same
Llama (through ``TinyLlamaAdapter``); geopixel's loop driving our InternLM2
of the same sizes. Reports ms per generated token (prefill included, so
batch sizes compare) and checks that both loops pick the same ids on the
same Llama. This is the measurement behind keeping our own loop (see
docs/en/notes/performance.md). Writes JSON to --out.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

SIZES = dict(
    tiny=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2),
    mid=dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
             num_attention_heads=16, num_key_value_heads=4))
VOCAB = 1024


def hf_generate(llm, embeds, mask, tokens):
    import torch
    with torch.no_grad():
        start = time.perf_counter()
        out = llm.generate(
            inputs_embeds=embeds, attention_mask=mask.long(),
            max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
            eos_token_id=None, pad_token_id=0)
        return time.perf_counter() - start, out[:, -tokens:]


def our_generate(adapter, embeds, mask, tokens):
    import torch
    pos = (mask.long().cumsum(1) - 1).clamp(min=0)
    start = time.perf_counter()
    out = adapter.generate(embeds, None, eos_token_ids=[-1],
                           max_new_tokens=tokens, attention_mask=mask,
                           position_ids=pos)
    seconds = time.perf_counter() - start
    return seconds, torch.stack(out['ids'])


def batch_inputs(batch, prompt, hidden):
    """Left-padded prompts of slightly different lengths."""
    import torch
    embeds = torch.randn(batch, prompt, hidden)
    mask = torch.ones(batch, prompt, dtype=torch.bool)
    for i in range(batch):
        mask[i, :i * 3] = False
    return embeds, mask


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', nargs='+', default=['tiny', 'mid'],
                        choices=sorted(SIZES))
    parser.add_argument('--prompt', type=int, default=512)
    parser.add_argument('--tokens', type=int, default=32)
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--out',
                        default='work_dirs/compare_hf_generate.json')
    args = parser.parse_args(argv)

    import torch

    from geopixel.models.llms import InternLM2Adapter
    from geopixel.testing.llm_adapters import TinyLlamaAdapter
    rows = []
    for size in args.sizes:
        torch.manual_seed(0)
        llama = TinyLlamaAdapter(llm_config=SIZES[size],
                                 vocab_size=VOCAB).eval()
        ours = InternLM2Adapter(llm_config=SIZES[size],
                                vocab_size=VOCAB).eval()
        for batch in args.batch:
            embeds, mask = batch_inputs(batch, args.prompt,
                                        llama.hidden_size)
            our_generate(llama, embeds, mask, 2)  # warm-up
            hf_generate(llama.llm, embeds, mask, 2)
            t_hf, ids_hf = hf_generate(llama.llm, embeds, mask, args.tokens)
            t_loop, ids_loop = our_generate(llama, embeds, mask, args.tokens)
            t_ours, _ = our_generate(ours, embeds, mask, args.tokens)
            per = 1000 / (args.tokens * batch)
            rows.append(dict(
                size=size, batch=batch, prompt=args.prompt,
                tokens=args.tokens,
                hf_generate_ms_per_token=round(t_hf * per, 3),
                our_loop_on_llama_ms_per_token=round(t_loop * per, 3),
                our_loop_on_internlm2_ms_per_token=round(t_ours * per, 3),
                same_ids=bool(torch.equal(ids_hf, ids_loop))))
            print(rows[-1])
    summary = dict(threads=torch.get_num_threads(), rows=rows)
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
