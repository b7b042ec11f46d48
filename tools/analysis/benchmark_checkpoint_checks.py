"""Time what the safe checkpoint path adds: the weights-only read, the
finiteness check and the resume-time CRC check.

    python tools/analysis/benchmark_checkpoint_checks.py [--gib 1.0]
        [--dtype bfloat16] [--dir /tmp]

Writes a checkpoint shaped like a training one (a state dict of ``--gib``
GiB in 64 MiB tensors, plus an MMEngine message hub) and reports seconds
and GiB/s for: ``torch.load(weights_only=False)`` (MMEngine's old path),
:func:`geopixel.checkpoint.read_checkpoint` (weights-only with the
allowlist), :func:`~geopixel.checkpoint.check_finite` and
:func:`~geopixel.checkpoint.checkpoint_problem` (zip + CRC, no unpickle).
Each is the best of ``--repeat`` runs (the file is in the page cache).
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def best_of(repeat, fn):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--gib', type=float, default=1.0)
    parser.add_argument('--dtype', default='bfloat16')
    parser.add_argument('--dir', default=tempfile.gettempdir())
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args(argv)
    import torch
    from mmengine.logging import MessageHub

    from geopixel.checkpoint import (check_finite, checkpoint_problem,
                                     read_checkpoint)
    dtype = getattr(torch, args.dtype)
    item = torch.empty((), dtype=dtype).element_size()
    per_tensor = 64 * 2**20 // item
    count = max(1, int(args.gib * 2**30 // (per_tensor * item)))
    state = {f'layer{i}.weight': torch.randn(per_tensor).to(dtype)
             for i in range(count)}
    hub = MessageHub.get_instance('benchmark')
    hub.update_scalar('train/loss', 0.5)
    path = osp.join(args.dir, 'geopixel_benchmark_checkpoint.pth')
    torch.save(dict(meta=dict(iter=1), state_dict=state,
                    message_hub=hub.state_dict()), path)
    gib = os.path.getsize(path) / 2**30
    try:
        timings = dict(
            full_unpickle=best_of(args.repeat, lambda: torch.load(
                path, map_location='cpu', weights_only=False)),
            read_checkpoint=best_of(args.repeat,
                                    lambda: read_checkpoint(path)),
            check_finite=best_of(args.repeat,
                                 lambda: check_finite(state, path)),
            checkpoint_problem=best_of(args.repeat,
                                       lambda: checkpoint_problem(path)))
    finally:
        os.remove(path)
    result = dict(
        file_gib=round(gib, 3), dtype=args.dtype, tensors=count,
        seconds={k: round(v, 3) for k, v in timings.items()},
        gib_per_s={k: round(gib / v, 2) for k, v in timings.items()})
    print(json.dumps(result, indent=2))
    return result


if __name__ == '__main__':
    main()
