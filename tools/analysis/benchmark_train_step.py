"""Training step time and peak memory of a config's model (CPU or GPU).

    python tools/analysis/benchmark_train_step.py [CONFIG] [--steps 20]
        [--batch-size 4] [--data-root data/synthetic]

Runs forward + backward + AdamW step on real samples of the config's
training set (the synthetic data for the tiny configs) and reports the
median step time, samples per second and peak memory (process RSS on CPU,
``max_memory_allocated`` on CUDA). Set MALLOC_MMAP_THRESHOLD_ /
MALLOC_TRIM_THRESHOLD_ on CPU (the result says whether they were set).
"""
import argparse
import json
import os
import os.path as osp
import resource
import statistics
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?',
                        default='configs/geopixel/rrsis_tiny.py')
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--device', default='cuda' if __import__(
        'torch').cuda.is_available() else 'cpu')
    parser.add_argument('--out', default=None, help='write JSON here')
    args = parser.parse_args(argv)

    import torch
    from mmengine.dataset import pseudo_collate

    from geopixel.engine.runner_setup import load_config
    from geopixel.registry import DATASETS, MODELS
    torch.manual_seed(0)
    cfg = load_config(args.config)
    model = MODELS.build(cfg.model).to(args.device).train()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for step in range(args.warmup + args.steps):
        idx = [(step * batch_size + i) % len(dataset)
               for i in range(batch_size)]
        data = pseudo_collate([dataset[i] for i in idx])
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        batch = model.data_preprocessor(data, True)
        losses = model(**batch, mode='loss')
        loss = sum(losses.values())
        optim.zero_grad()
        loss.backward()
        optim.step()
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = dict(
        config=args.config,
        device=args.device,
        batch_size=batch_size,
        steps=args.steps,
        median_step_seconds=round(median, 4),
        samples_per_second=round(batch_size / median, 2),
        parameters=sum(p.numel() for p in model.parameters()),
        trainable_parameters=sum(p.numel() for p in params),
        threads=torch.get_num_threads(),
        malloc_tuned='MALLOC_MMAP_THRESHOLD_' in os.environ)
    if args.device.startswith('cuda'):
        result['peak_gpu_memory_gb'] = round(
            torch.cuda.max_memory_allocated() / 2**30, 3)
    result['peak_rss_mb'] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
