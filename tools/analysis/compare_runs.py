"""Did two training runs follow the same path? Per-step logged values and
the final weights of two work dirs, side by side.

    python tools/analysis/compare_runs.py WORK_DIR_A WORK_DIR_B
        [--checkpoint iter_4.pth] [--keys loss grad_norm ...]

Written for scale equivalence (docs/en/notes/scale_equivalence.md): one
process against N processes on the same global batch. Reads each run's
newest ``*/vis_data/scalars.json`` (log every iteration with
``default_hooks.logger.interval=1 log_processor.window_size=1`` for raw
per-step values) and the named checkpoint of each dir (default: the one
``last_checkpoint`` names). Prints, per step, each key's values and their
relative difference, then the largest relative difference per key and the
weights' largest absolute difference and relative L2 difference.
"""
import argparse
import glob
import json
import math
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

DEFAULT_KEYS = ('loss', 'grad_norm')


def train_scalars(work_dir: str):
    """The per-iteration training records of the newest run in
    ``work_dir``, in step order (validation records left out)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not files:
        raise FileNotFoundError(
            f'{work_dir}: no */vis_data/scalars.json (was the run logged '
            'with a LocalVisBackend?)')
    records = []
    with open(files[-1]) as f:
        for line_no, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f'{files[-1]}, line {line_no}: not JSON ({exc})') from None
            if 'loss' in record:
                records.append(record)
    return records


def relative_difference(a: float, b: float) -> float:
    """|a - b| / max(|a|, |b|), 0 for two zeros."""
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


def compare_scalars(records_a, records_b, keys):
    """Per step ``{key: (a, b, relative difference)}``; the steps and keys
    must be the same in both runs."""
    steps_a = [r['step'] for r in records_a]
    steps_b = [r['step'] for r in records_b]
    if steps_a != steps_b:
        raise ValueError(f'the runs logged different steps: {steps_a} and '
                         f'{steps_b}')
    rows = []
    for a, b in zip(records_a, records_b):
        row = {}
        for key in keys:
            if key not in a or key not in b:
                raise KeyError(f'step {a["step"]}: {key!r} is not logged by '
                               'both runs')
            row[key] = (a[key], b[key], relative_difference(a[key], b[key]))
        rows.append(row)
    return rows


def checkpoint_weights(path: str):
    """The ``state_dict`` of a checkpoint, read without running code."""
    from geopixel.checkpoint import read_checkpoint
    checkpoint = read_checkpoint(path)
    return checkpoint.get('state_dict', checkpoint)


def compare_weights(state_a, state_b, reference=None):
    """The largest absolute difference over all floating-point weights and
    ``||a - b|| / ||a - reference||`` (L2 over all of them; ``reference``
    the starting weights, so the difference is measured against how far
    training moved them; without it, against ``||a||``). Both states must
    hold the same names and shapes."""
    if state_a.keys() != state_b.keys():
        only = sorted(set(state_a) ^ set(state_b))
        raise KeyError(f'the checkpoints hold different weights: {only[:5]}')
    max_abs, worst, diff_sq, ref_sq = 0.0, None, 0.0, 0.0
    for name, a in state_a.items():
        if not a.is_floating_point():
            continue
        a = a.double()
        b = state_b[name].double()
        if a.shape != b.shape:
            raise ValueError(f'{name}: shapes {tuple(a.shape)} and '
                             f'{tuple(b.shape)}')
        delta = (a - b).abs()
        if delta.numel() and delta.max().item() > max_abs:
            max_abs, worst = delta.max().item(), name
        diff_sq += delta.pow(2).sum().item()
        base = a if reference is None else a - reference[name].double()
        ref_sq += base.pow(2).sum().item()
    relative = math.sqrt(diff_sq / ref_sq) if ref_sq else 0.0
    return dict(max_abs=max_abs, worst=worst, relative_l2=relative)


def last_checkpoint(work_dir: str) -> str:
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{work_dir}: no last_checkpoint file; name '
                                'the checkpoint with --checkpoint')
    with open(path) as f:
        return f.read().strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir_a')
    parser.add_argument('work_dir_b')
    parser.add_argument('--keys', nargs='+', default=list(DEFAULT_KEYS),
                        help='logged values to compare (default: loss, '
                        'grad_norm)')
    parser.add_argument('--checkpoint', help='file name of the checkpoint '
                        'to compare in both dirs (default: the last one)')
    args = parser.parse_args(argv)
    rows = compare_scalars(train_scalars(args.work_dir_a),
                           train_scalars(args.work_dir_b), args.keys)
    print('step  ' + '  '.join(f'{k + " A":>14} {k + " B":>14} {"rel.":>8}'
                               for k in args.keys))
    for step, row in enumerate(rows, 1):
        print(f'{step:4d}  ' + '  '.join(f'{a:14.7f} {b:14.7f} {r:8.1e}'
                                         for a, b, r in row.values()))
    for key in args.keys:
        print(f'largest relative difference of {key}: '
              f'{max(row[key][2] for row in rows):.2e}')
    paths = [
        osp.join(d, args.checkpoint) if args.checkpoint else last_checkpoint(d)
        for d in (args.work_dir_a, args.work_dir_b)
    ]
    weights = compare_weights(*map(checkpoint_weights, paths))
    print(f'weights ({osp.basename(paths[0])}): largest absolute difference '
          f'{weights["max_abs"]:.2e} ({weights["worst"]}), relative L2 '
          f'difference {weights["relative_l2"]:.2e}')


if __name__ == '__main__':
    main()
