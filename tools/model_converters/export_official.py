"""Export a trained model as a released GeoPixel-7B folder (LoRA merged).

    python tools/model_converters/export_official.py CONFIG CHECKPOINT OUT_DIR
        [--shard-size 5GB] [--dtype keep|bfloat16|float16|float32]
        [--unused-from PATH ...] [--no-unused] [--overwrite]
        [--trust-checkpoint] [--attn-implementation eager]
        [--cfg-options k=v ...]

Builds the model of CONFIG, loads CHECKPOINT (a file tools/test.py reads),
merges its LoRA with the configured scaling and writes OUT_DIR with the
released key names: safetensors shards + ``model.safetensors.index.json``,
``config.json``, ``generation_config.json`` and the tokenizer files. The
folder loads back with ``GeoPixel(checkpoint=OUT_DIR)`` /
``load_official_checkpoint``.

A release also carries weights GeoPixel never runs (IXC-2.5's
``lora_sft/dpo/web`` adapters, SAM2's video memory). They are copied from
``--unused-from`` (repeatable; default: the config's ``model.checkpoint``,
``model.ixc_checkpoint`` and SAM2 ``checkpoint`` files that exist);
``--no-unused`` leaves them out.

OUT_DIR is written atomically (a hidden folder beside it, renamed at the
end): an interrupted export leaves no OUT_DIR. An existing non-empty OUT_DIR
is refused unless ``--overwrite``. Exit status: 0 written, 1 error.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

DTYPES = ('keep', 'bfloat16', 'float16', 'float32')


def parse_args(argv=None):
    from mmengine.config import DictAction

    from geopixel.checkpoint.export import DEFAULT_SHARD_SIZE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the config the model was trained '
                        'with')
    parser.add_argument('checkpoint', help='the trained checkpoint (what '
                        'tools/test.py reads)')
    parser.add_argument('out_dir', help='the folder to write')
    parser.add_argument('--shard-size', default=DEFAULT_SHARD_SIZE,
                        help='largest shard, e.g. 5GB, 500MB, 2GiB '
                        '(default: %(default)s)')
    parser.add_argument('--dtype', choices=DTYPES, default='keep',
                        help='cast floating weights (the release is '
                        'bfloat16; default: keep the model\'s)')
    parser.add_argument('--unused-from', action='append', metavar='PATH',
                        help='released GeoPixel / IXC-2.5 folder or SAM2 .pt '
                        'to copy the unused-module weights from '
                        '(repeatable)')
    parser.add_argument('--no-unused', action='store_true',
                        help='leave the unused-module weights out')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a non-empty OUT_DIR (once the new '
                        'folder is complete)')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='the checkpoint may be fully unpickled if a weights-only load '
        'refuses it; that runs any code the file carries')
    parser.add_argument('--attn-implementation', default='eager',
                        help='config.json attention (the release names '
                        'flash_attention_2; default: %(default)s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    args = parser.parse_args(argv)
    if args.no_unused and args.unused_from:
        parser.error('--no-unused and --unused-from contradict each other')
    return args


def config_sources(model_cfg) -> list:
    """The files the config loads released weights from, that exist."""
    paths = [model_cfg.get('checkpoint'), model_cfg.get('ixc_checkpoint')]
    for part in ('grounding_encoder', 'mask_decoder'):
        sub = model_cfg.get(part)
        if isinstance(sub, dict):
            paths.append(sub.get('checkpoint'))
    found = []
    for path in paths:
        if isinstance(path, str) and osp.exists(path) and path not in found:
            found.append(path)
    return found


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from geopixel.checkpoint import CheckpointError, load_model_weights
    from geopixel.checkpoint.export import ExportError, export_official
    from geopixel.engine.runner_setup import load_config
    from geopixel.registry import MODELS
    try:
        from geopixel.checkpoint.export import parse_size
        parse_size(args.shard_size)
        cfg = load_config(args.config, args.cfg_options)
        if args.no_unused:
            sources = []
        elif args.unused_from:
            sources = args.unused_from
        else:
            sources = config_sources(cfg.model)
        model = MODELS.build(cfg.model)
        load_model_weights(model, args.checkpoint,
                           trusted=args.trust_checkpoint)
        dtype = None if args.dtype == 'keep' else getattr(torch, args.dtype)
        report = export_official(
            model.eval(), args.out_dir, shard_size=args.shard_size,
            dtype=dtype, unused_from=sources, overwrite=args.overwrite,
            attn_implementation=args.attn_implementation)
    except (ExportError, CheckpointError, FileNotFoundError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {report["out_dir"]}: {report["tensors"]} tensors, '
          f'{report["total_size"] / 1e9:.3f} GB ({report["dtype"]}) in '
          f'{len(report["shards"])} shard(s)')
    print(f'LoRA merged into {len(report["merged"])} module(s)')
    if report['left_out']:
        print(f'left out (training only): {len(report["left_out"])} keys, '
              f'e.g. {report["left_out"][0]}')
    for source, count in report['unused'].items():
        print(f'unused-module weights: {count} from {source}')
    if report['unused_missing']:
        print('note: no unused-module weights (IXC-2.5 lora_sft/dpo/web, '
              'SAM2 video memory) were given, so the folder lacks them; '
              'geopixel does not need them, the official from_pretrained '
              'reports them as newly initialised (--unused-from adds them)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
