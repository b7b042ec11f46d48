"""Peak memory of building GeoPixel from a checkpoint: meta-device build +
streaming against the eager build.

    python tools/analysis/benchmark_meta_loading.py [--dir /tmp/meta_bench]
        [--hidden 1536] [--layers 20] [--shard-size 500MB]

Builds a mid-size GeoPixel with random weights (the tiny config's classes
and grounding parts; InternLM2 of ``--hidden`` x ``--layers``, CLIP
ViT-B/16 at 224 px), writes it as a released-format sharded folder
(``export_official``, fp32), then builds the model from that folder in two
fresh processes, ``build_on_meta=True`` (the default) and ``False``, and
reports each one's peak RSS (``ru_maxrss``), its RSS after imports, and
the peak as a multiple of the checkpoint's size.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

CHILD = r'''
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import torch
from geopixel.registry import MODELS
from geopixel.engine import setup_mmengine
setup_mmengine()
sys.path.insert(0, {here!r})
from benchmark_meta_loading import mid_size_cfg
cfg = mid_size_cfg({data!r}, {hidden}, {layers})
cfg.update(checkpoint={folder!r}, build_on_meta={on_meta})
cfg['tokenizer'] = dict(cfg['tokenizer'], path={folder!r})
def rss_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
after_imports = rss_mib()
start = time.perf_counter()
model = MODELS.build(cfg)
seconds = time.perf_counter() - start
params = sum(p.numel() for p in model.parameters())
print(json.dumps(dict(
    after_imports_mib=after_imports,
    peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    final_mib=rss_mib(), build_s=seconds, parameters=params,
    initialised=len(model.initialised_keys))))
'''


def mid_size_cfg(data_root: str, hidden: int, layers: int) -> dict:
    from geopixel.testing import tiny_model_cfg
    cfg = tiny_model_cfg(data_root)
    cfg['llm']['llm_config'] = dict(
        hidden_size=hidden, intermediate_size=hidden * 8 // 3,
        num_hidden_layers=layers, num_attention_heads=hidden // 128,
        num_key_value_heads=hidden // 256)
    cfg['vision_encoder']['clip_config'] = dict(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, patch_size=16)
    cfg['vision_encoder']['tile_size'] = 224
    cfg['seg_words_head'] = None  # training only; the export leaves it out
    cfg['mask_decoder']['locator'] = False  # no place for it in a release
    return cfg


def folder_bytes(path: str) -> int:
    return sum(osp.getsize(osp.join(path, f)) for f in os.listdir(path)
               if f.endswith('.safetensors'))


def measure(data: str, folder: str, hidden: int, layers: int,
            on_meta: bool) -> dict:
    """Build in a fresh process: its peak RSS is the build's alone."""
    code = CHILD.format(repo=REPO, here=osp.dirname(osp.abspath(__file__)),
                        data=data, folder=folder, hidden=hidden,
                        layers=layers, on_meta=on_meta)
    env = dict(os.environ, OMP_NUM_THREADS='2')
    out = subprocess.run([sys.executable, '-c', code], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dir', default=osp.join(tempfile.gettempdir(),
                                                  'meta_bench'))
    parser.add_argument('--hidden', type=int, default=1536)
    parser.add_argument('--layers', type=int, default=20)
    parser.add_argument('--shard-size', default='500MB')
    args = parser.parse_args(argv)

    import torch

    from geopixel.checkpoint.export import export_official
    from geopixel.engine import setup_mmengine
    from geopixel.registry import MODELS
    from geopixel.testing import toy_dataset
    setup_mmengine()
    data = osp.join(args.dir, 'data')
    if not osp.isdir(data):
        toy_dataset(data, num_images=4, size=256, seed=0)
    cfg = mid_size_cfg(data, args.hidden, args.layers)
    folder = osp.join(args.dir, 'checkpoint')
    if not osp.isdir(folder):
        torch.manual_seed(0)
        export_official(MODELS.build(cfg), folder,
                        shard_size=args.shard_size, dtype=torch.float32)
    size = folder_bytes(folder)
    shards = len([f for f in os.listdir(folder)
                  if f.endswith('.safetensors')])
    rows = []
    for on_meta in (True, False):
        result = measure(data, folder, args.hidden, args.layers, on_meta)
        result.update(build_on_meta=on_meta,
                      peak_over_checkpoint=result['peak_mib'] * 2**20 / size,
                      growth_over_checkpoint=(result['peak_mib'] -
                                              result['after_imports_mib']) *
                      2**20 / size)
        rows.append(result)
    print(f'checkpoint: {size / 2**30:.2f} GiB in {shards} shards, '
          f'{rows[0]["parameters"] / 1e6:.0f}M parameters')
    print('| build | peak RSS | after imports | peak / checkpoint | '
          '(peak - imports) / checkpoint | build time |')
    print('|---|---|---|---|---|---|')
    for r in rows:
        print(f'| {"meta + stream" if r["build_on_meta"] else "eager"} | '
              f'{r["peak_mib"] / 1024:.2f} GiB | '
              f'{r["after_imports_mib"] / 1024:.2f} GiB | '
              f'{r["peak_over_checkpoint"]:.2f}x | '
              f'{r["growth_over_checkpoint"]:.2f}x | {r["build_s"]:.1f} s |')
    print(json.dumps(dict(checkpoint_bytes=size, shards=shards, rows=rows)))


if __name__ == '__main__':
    main()
