"""Parameters, memory per GPU and FLOPs per step of a training config.

    python tools/analysis/estimate_memory.py CONFIG [--gpus 4] [--hd-num 9]
        [--batch-size 2] [--grad-checkpointing on|off]
        [--strategy ddp|zero2|zero3|all] [--image-size 800x800]
        [--text-tokens 256] [--masks 4] [--json]
    python tools/analysis/estimate_memory.py configs/geopixel/rrsis_tiny.py \\
        --data-root data/synthetic --measure

The model is built from the config's own classes on the meta device: no
weight file is read and no memory is allocated, so the 7B recipes work
without their checkpoints (a missing tokenizer folder gets a stand-in of
the LM's vocabulary + GeoPixel's 3 tokens). Unset options come from the
config. ``--measure`` (CPU, configs without DeepSpeed) also runs one real
training step on the config's data and prints measured against estimated.
Formulas and the numbers for the paper config:
docs/en/notes/memory_and_cost.md.
"""
import argparse
import contextlib
import json
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def image_size(text: str):
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'image size must be WIDTHxHEIGHT (e.g. 800x800), got {text!r}'
        ) from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f'image size must be positive, got '
                                         f'{text!r}')
    return width, height


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('config')
    parser.add_argument('--gpus', type=positive, default=1)
    parser.add_argument('--hd-num', type=positive, default=None,
                        help='tile budget (default: the training tiler\'s)')
    parser.add_argument('--batch-size', type=positive, default=None,
                        help='samples per GPU (default: the config\'s)')
    parser.add_argument('--grad-checkpointing', choices=('on', 'off'),
                        default=None,
                        help='default: the LLM config\'s')
    parser.add_argument('--strategy', default='all',
                        choices=('ddp', 'zero2', 'zero3', 'all'))
    parser.add_argument('--image-size', type=image_size, default=(800, 800),
                        help='training image WIDTHxHEIGHT (GeoPixelD and '
                        'RRSIS-D: 800x800)')
    parser.add_argument('--text-tokens', type=positive, default=256,
                        help='text tokens per sample (template + answer)')
    parser.add_argument('--masks', type=positive, default=4,
                        help='[SEG] masks per sample')
    parser.add_argument('--vocab-size', type=positive, default=None,
                        help='override the tokenizer length')
    parser.add_argument('--data-root', default=None,
                        help='where the synthetic data lives (replaces '
                        'data/synthetic in the config)')
    parser.add_argument('--measure', action='store_true',
                        help='also run one real CPU training step')
    parser.add_argument('--json', action='store_true',
                        help='print the report as JSON')
    return parser.parse_args(argv)


def load(args):
    from geopixel.engine.runner_setup import load_config
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config not found: {args.config}')
    cfg = load_config(args.config)
    if args.data_root is not None:
        from geopixel.testing import relocate
        cfg = relocate(cfg, args.data_root)
    return cfg


# parts whose own forward GeoPixel.loss calls
OWN_FORWARD = ('vision_encoder', 'llm', 'grounding_encoder', 'seg_projector')


def measure(cfg, batch_size=None) -> dict:
    """One real training step on CPU: exact bytes of weights, gradients
    and optimizer states, what autograd keeps for backward, the allocator's
    peak during the step, and the sample sizes the estimate needs."""
    import torch

    from geopixel.registry import MODELS
    from geopixel.testing import demo_batch
    from geopixel.utils.memory_estimate import (SavedTensorCounter,
                                                is_deepspeed,
                                                peak_allocated_bytes)
    if is_deepspeed(cfg):
        raise ValueError('--measure runs one plain PyTorch step on CPU; '
                         'DeepSpeed configs are estimated only')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    batch_size = batch_size or cfg.train_dataloader.batch_size
    batch = demo_batch(cfg, model, num_samples=batch_size)
    samples = batch['data_samples']
    opt_cfg = dict(cfg.optim_wrapper.optimizer)
    opt_type = opt_cfg.pop('type')
    if isinstance(opt_type, str):
        opt_type = getattr(torch.optim, opt_type)
    optimizer = opt_type([p for p in model.parameters() if p.requires_grad],
                         **opt_cfg)
    counter = SavedTensorCounter(exclude=[*model.parameters(),
                                          *model.buffers()])
    # what each part's forward keeps; the rest (GeoPixel.loss calls the
    # mask decoder's forward_train, the losses, a [SEG] words head's loss
    # method) stays 'other'
    hooks = []
    for name in OWN_FORWARD:
        module = getattr(model, name)
        hooks.append(module.register_forward_pre_hook(
            lambda m, a, name=name: setattr(counter, '_part', name)))
        hooks.append(module.register_forward_hook(
            lambda m, a, o: setattr(counter, '_part', 'other')))

    def step(count=False):
        if count:
            with counter.part('other'):
                losses = model(**batch, mode='loss')
        else:
            losses = model(**batch, mode='loss')
        sum(losses.values()).backward()
        optimizer.step()

    step(count=True)  # the optimizer's states now exist
    for hook in hooks:
        hook.remove()
    grads = sum(p.grad.numel() * p.grad.element_size()
                for p in model.parameters() if p.grad is not None)
    optimizer.zero_grad(set_to_none=True)
    peak = peak_allocated_bytes(step)
    masks = [len(s.gt_masks) for s in samples]
    height, width = samples[0].gt_masks.shape[-2:]
    return dict(
        weights=sum(p.numel() * p.element_size()
                    for p in model.parameters()),
        gradients=grads,
        optimizer=sum(v.numel() * v.element_size()
                      for s in optimizer.state.values()
                      for v in s.values() if torch.is_tensor(v)),
        saved=counter.total,
        saved_by_part=dict(counter.bytes),
        step_peak=peak,
        batch_size=batch_size,
        image_size=(int(width), int(height)),
        text_tokens=max(len(s.input_ids) for s in samples),
        masks=masks)


def main(argv=None):
    args = parse_args(argv)
    # libraries that print on import (DeepSpeed's accelerator notice) write
    # to stderr: stdout carries the report only (--json pipes cleanly)
    with contextlib.redirect_stdout(sys.stderr):
        report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    from geopixel.utils.memory_estimate import to_markdown
    print(to_markdown(report, args.config))
    if 'measured' in report:
        print()
        print(measured_markdown(report['measured']))


def run(args) -> dict:
    from geopixel.utils.memory_estimate import STRATEGIES, estimate
    cfg = load(args)
    options = dict(
        gpus=args.gpus,
        hd_num=args.hd_num,
        batch_size=args.batch_size,
        grad_checkpointing=(None if args.grad_checkpointing is None else
                            args.grad_checkpointing == 'on'),
        strategies=(STRATEGIES if args.strategy == 'all' else
                    (args.strategy, )),
        image_size=args.image_size,
        text_tokens=args.text_tokens,
        masks=args.masks,
        vocab_size=args.vocab_size)
    measured = None
    if args.measure:
        measured = measure(cfg, args.batch_size)
        # estimate what was measured: its samples, on CPU
        options.update(image_size=measured['image_size'],
                       text_tokens=measured['text_tokens'],
                       masks=measured['masks'],
                       batch_size=measured['batch_size'], device='cpu')
    report = estimate(cfg, **options)
    if measured is not None:
        report['measured'] = compare(report, measured)
    return report


def compare(report: dict, measured: dict) -> dict:
    state = report['memory'].get('ddp') or next(iter(
        report['memory'].values()))
    act = report['activations']
    rows = dict(
        weights=(measured['weights'], state['weights']),
        gradients=(measured['gradients'], state['gradients']),
        optimizer=(measured['optimizer'], state['optimizer']),
        saved_for_backward=(measured['saved'], act['saved_total']),
        **{
            f'saved: {name}': (measured['saved_by_part'].get(name, 0),
                               act['saved'].get(name, 0))
            for name in OWN_FORWARD
        },
        **{
            'saved: other': (measured['saved_by_part'].get('other', 0),
                             sum(v for k, v in act['saved'].items()
                                 if k not in OWN_FORWARD))
        },
        step_peak=(measured['step_peak'],
                   act['peak'] + state['gradients']))
    return dict(
        sample=dict(batch_size=measured['batch_size'],
                    image_size=measured['image_size'],
                    text_tokens=measured['text_tokens'],
                    masks=measured['masks']),
        rows={k: dict(measured=m, estimated=e, ratio=e / m if m else None)
              for k, (m, e) in rows.items()})


def measured_markdown(measured: dict) -> str:
    s = measured['sample']
    lines = [
        f'Measured on CPU (one step, batch {s["batch_size"]}, '
        f'{s["image_size"][0]}x{s["image_size"][1]} images, '
        f'{s["text_tokens"]} text tokens, masks per sample '
        f'{", ".join(map(str, s["masks"]))}):',
        '', '| bytes | measured | estimated | estimated / measured |',
        '|---|---:|---:|---:|'
    ]
    labels = dict(
        weights='weights', gradients='gradients',
        optimizer='optimizer states',
        saved_for_backward='activations kept for backward',
        step_peak='step peak above weights + optimizer (activations peak '
        '+ gradients)')
    labels['saved: other'] = ('kept: the rest (mask decoder, mask '
                              'losses, [SEG] words head)')
    for key, row in measured['rows'].items():
        ratio = '' if row['ratio'] is None else f'{row["ratio"]:.4f}'
        label = labels.get(key, key.replace('saved:', 'kept:'))
        lines.append(f'| {label} | {row["measured"]:,} | '
                     f'{row["estimated"]:,} | {ratio} |')
    return '\n'.join(lines)


if __name__ == '__main__':
    from geopixel.utils import run_tool
    run_tool(main, errors=(ValueError, FileNotFoundError,
                           NotImplementedError))
