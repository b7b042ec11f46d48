"""Scale equivalence (issue 12, item 6): N processes on a global batch
train as one process on that batch.

GeoPixel's losses are means over answer tokens and masks. Under DDP each
rank divides its sums by the global count over the world size
(``geopixel.models.losses.global_mean_divisors``), so the gradients DDP
averages are those of the global batch, however unequally the tokens and
masks fall on the ranks; ``GeoPixel.parse_losses`` logs the mean over ranks,
the global batch's loss. docs/en/notes/scale_equivalence.md has the
measured numbers.
"""
import importlib.util
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

import geopixel.models.architectures.geopixel as geopixel_module
from geopixel.registry import DATASETS
from geopixel.structures import IGNORE_INDEX
from geopixel.testing.tiny import get_config

from . import ddp_steps

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'geopixel', 'gcg_tiny.py')
LOSS_KEYS = ('loss', 'loss_ce', 'loss_mask_bce', 'loss_mask_dice',
             'loss_mask_aux', 'loss_seg_words')
# float32 on CPU. Measured here (docs/en/notes/scale_equivalence.md): the
# logged losses agree to <= 1.1e-6 (relative), the gradient norm to <=
# 2.8e-6, the weights to <= 1.9e-4 of how far training moved them; with the
# per-rank local means of before they miss by 4.7e-3 (total loss), 0.2 and
# 0.42. The margins leave room for other BLAS builds.
LOSS_RTOL = 2e-5
GRAD_NORM_RTOL = 1e-4
WEIGHTS_RTOL = 1e-2


def load_tool(name):
    path = osp.join(REPO, 'tools', *name.split('/'))
    spec = importlib.util.spec_from_file_location(
        'tool_' + name.replace('/', '_')[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answer_tokens(sample) -> int:
    return int((sample['data_samples'].labels != IGNORE_INDEX).sum())


def mask_count(sample) -> int:
    ds = sample['data_samples']
    return len(ds.gt_masks) if 'gt_masks' in ds else 0


def gradients(model, samples, backward: bool = True):
    """The logged values and (with ``backward``) the gradients of one
    training step's loss on ``samples``."""
    from mmengine.dataset import pseudo_collate
    model.zero_grad()
    data = model.data_preprocessor(pseudo_collate(samples), True)
    with torch.set_grad_enabled(backward):
        loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    if backward:
        loss.backward()
    return ({k: v.item() for k, v in log_vars.items()}, {
        name: p.grad.clone()
        for name, p in model.named_parameters() if p.grad is not None
    })


def relative_l2(grads, reference):
    assert grads.keys() == reference.keys()
    diff = sum((grads[k] - reference[k]).double().pow(2).sum()
               for k in reference)
    return float((diff / sum(r.double().pow(2).sum()
                             for r in reference.values())).sqrt())


def test_rank_shares_average_to_the_global_batch(synthetic_root,
                                                 monkeypatch):
    """Two ranks simulated in one process, one of them without any mask:
    the mean of their losses and gradients is the global batch's, and the
    mean of the local means used before is not."""
    model, (rank0, rank1) = ddp_steps.model_and_halves(synthetic_root)
    assert sum(map(mask_count, rank0)) > 0 == sum(map(mask_count, rank1))

    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    counted = []
    real_divisors = geopixel_module.global_mean_divisors

    def one_process(counts, device=None):
        counted.append(list(counts))
        return real_divisors(counts, device)  # no process group: counts

    monkeypatch.setattr(geopixel_module, 'global_mean_divisors',
                        one_process)
    full_logs, full_grads = gradients(model, rank0 + rank1)
    (global_counts, ) = counted

    def run_ranks(divisors, backward=True):
        counted.clear()

        def on_a_rank(counts, device=None):
            counted.append(list(counts))
            return divisors(counts)

        monkeypatch.setattr(geopixel_module, 'global_mean_divisors',
                            on_a_rank)
        (logs0, grads0), (logs1, grads1) = (
            gradients(model, rank0, backward),
            gradients(model, rank1, backward))
        mean_logs = {k: (logs0[k] + logs1[k]) / 2 for k in logs0}
        if not backward:
            return mean_logs, None
        # every trainable parameter gets a gradient on both ranks, also on
        # the one without masks (else DDP waits for it)
        assert grads0.keys() == grads1.keys() == trainable
        mean_grads = {k: (grads0[k] + grads1[k]) / 2 for k in grads0}
        return mean_logs, mean_grads

    logs, grads = run_ranks(lambda counts: [n / 2 for n in global_counts])
    tokens, masks = zip(*counted)
    assert tokens[0] != tokens[1] and masks[1] == 0 < masks[0]
    assert [sum(tokens), sum(masks)] == global_counts
    assert logs.keys() == full_logs.keys() >= set(LOSS_KEYS)
    print(f'\nshares: loss {logs["loss"]:.7f} (one process '
          f'{full_logs["loss"]:.7f}), gradient L2 difference '
          f'{relative_l2(grads, full_grads):.1e}')
    for key, value in full_logs.items():
        assert logs[key] == pytest.approx(value, rel=1e-6, abs=1e-7), key
    assert relative_l2(grads, full_grads) < 1e-5

    # the per-rank means of before: another loss (so another gradient)
    logs, _ = run_ranks(lambda counts: counts, backward=False)
    print(f'local means: loss {logs["loss"]:.7f}')
    assert abs(logs['loss'] - full_logs['loss']) > 1e-2 * full_logs['loss']


def test_compare_runs_tool(tmp_path, capsys):
    """tools/analysis/compare_runs.py on two hand-written work dirs."""
    compare = load_tool('analysis/compare_runs.py')
    for run, (loss, weight) in dict(a=(2.0, 1.0), b=(2.002, 1.5)).items():
        vis = tmp_path / run / '20260101_000000' / 'vis_data'
        vis.mkdir(parents=True)
        records = [dict(loss=loss, grad_norm=1.0, step=1),
                   dict(lr=0.1, step=1),  # no loss: not a training record
                   dict(loss=loss / 2, grad_norm=2.0, step=2)]
        vis.joinpath('scalars.json').write_text(
            '\n'.join(json.dumps(r) for r in records))
        torch.save(dict(state_dict={'w': torch.tensor([weight, 0.0]),
                                    'n': torch.tensor([3])}),
                   tmp_path / run / 'iter_2.pth')
        (tmp_path / run / 'last_checkpoint').write_text(
            str(tmp_path / run / 'iter_2.pth'))
    compare.main([str(tmp_path / 'a'), str(tmp_path / 'b')])
    out = capsys.readouterr().out
    assert 'largest relative difference of loss: 9.99e-04' in out
    assert 'largest relative difference of grad_norm: 0.00e+00' in out
    # |1.5 - 1| / |(1, 0)|, over the weights of run a
    assert 'largest absolute difference 5.00e-01 (w)' in out
    assert 'relative L2 difference 5.00e-01' in out

    records = compare.train_scalars(str(tmp_path / 'a'))
    with pytest.raises(ValueError, match='different steps'):
        compare.compare_scalars(records, records[:1], ['loss'])
    with pytest.raises(KeyError, match="'time' is not logged"):
        compare.compare_scalars(records, records, ['time'])
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        compare.train_scalars(str(tmp_path))


def unequal_global_batch(cfg):
    """Four training samples in an order that puts the two with the fewest
    masks on rank 0 and the two with the most on rank 1 (the sampler gives
    rank r the samples r, r + 2 of each global batch of 4)."""
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    samples = [dataset[i] for i in range(len(dataset))]
    order = sorted(range(len(samples)), key=lambda i: mask_count(samples[i]))
    indices = [order[0], order[-1], order[1], order[-2]]
    per_rank = [[samples[i] for i in indices[r::2]] for r in (0, 1)]
    masks = [sum(map(mask_count, s)) for s in per_rank]
    tokens = [sum(map(answer_tokens, s)) for s in per_rank]
    assert masks[0] != masks[1] and tokens[0] != tokens[1], (
        f'the synthetic data gave equal ranks: masks {masks}, answer tokens '
        f'{tokens}')
    return indices, masks, tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_cpu_ddp_trains_like_one_process(synthetic_root,
                                                     tmp_path, monkeypatch):
    """tools/dist_train.sh with 2 gloo processes (batch 2 each) against
    tools/train.py's path in one process (batch 4), gcg_tiny, 4 AdamW
    steps on the same 4 samples: the logged losses and gradient norms per
    step, and the final weights."""
    compare = load_tool('analysis/compare_runs.py')
    train_tool = load_tool('train.py')
    (tmp_path / 'data').mkdir()
    os.symlink(synthetic_root, tmp_path / 'data' / 'synthetic')
    indices, masks, tokens = unequal_global_batch(
        get_config(CONFIG, synthetic_root))
    steps = 4
    options = [
        f'train_dataloader.dataset.indices={indices}'.replace(' ', ''),
        'train_dataloader.sampler.shuffle=False',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        f'train_cfg.max_iters={steps}',
        f'default_hooks.checkpoint.interval={steps}',
        'default_hooks.logger.interval=1', 'log_processor.window_size=1',
        # a constant lr: every step moves the weights by about lr
        'param_scheduler=None'
    ]
    one, two = tmp_path / 'one', tmp_path / 'two'
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1',
               PORT=str(free_port()))
    with open(tmp_path / 'two.log', 'w') as log:
        # started first: it runs while this process trains the reference
        ddp = subprocess.Popen(
            ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), CONFIG, '2',
             '--work-dir', str(two), '--cfg-options', *options,
             'train_dataloader.batch_size=2'],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        threads = torch.get_num_threads()
        try:
            # one thread each, as the DDP processes: no oversubscription
            torch.set_num_threads(1)
            monkeypatch.chdir(tmp_path)
            cfg = train_tool.build_train_config(train_tool.parse_args(
                [CONFIG, '--work-dir', str(one), '--cfg-options', *options,
                 'train_dataloader.batch_size=4']))
            runner = train_tool.build_runner(cfg)
            start = {k: v.detach().clone()
                     for k, v in runner.model.state_dict().items()}
            runner.train()
            ddp.wait(timeout=600)
        finally:
            torch.set_num_threads(threads)
            if ddp.poll() is None:
                os.killpg(ddp.pid, 9)
    output = (tmp_path / 'two.log').read_text()
    assert ddp.returncode == 0, output[-3000:]
    assert 'GPU number: 2' in output  # MMEngine's name for the world size

    rows = compare.compare_scalars(
        compare.train_scalars(str(one)), compare.train_scalars(str(two)),
        LOSS_KEYS + ('grad_norm', ))
    assert len(rows) == steps
    worst = {k: max(row[k][2] for row in rows) for k in rows[0]}
    name = f'iter_{steps}.pth'
    weights = compare.compare_weights(
        compare.checkpoint_weights(str(one / name)),
        compare.checkpoint_weights(str(two / name)),
        start)
    print(f'\nranks hold masks {masks}, answer tokens {tokens}; largest '
          f'relative differences: ' +
          ', '.join(f'{k} {v:.1e}' for k, v in worst.items()) +
          f'; weights: max abs {weights["max_abs"]:.1e}, L2 '
          f'{weights["relative_l2"]:.1e} of the update')
    for key in LOSS_KEYS:
        assert worst[key] <= LOSS_RTOL, (key, rows)
    assert worst['grad_norm'] <= GRAD_NORM_RTOL, rows
    assert weights['relative_l2'] <= WEIGHTS_RTOL, weights


@pytest.mark.slow
def test_ddp_rank_without_masks_trains_like_one_process(synthetic_root,
                                                        tmp_path):
    """Real DDP (gloo, 2 processes) where rank 1 holds no mask at all: no
    rank waits for another (every step's count all-reduce runs on both,
    every parameter gets a gradient on both), and 3 AdamW steps give the
    losses and weights of one process on the 4 samples."""
    out = tmp_path / 'ddp.pt'
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    with open(tmp_path / 'ddp.log', 'w') as log:
        # started first: it runs while this process trains the reference
        proc = subprocess.Popen(
            [sys.executable, '-m', 'torch.distributed.run',
             '--nproc_per_node', '2', '--master_port', str(free_port()),
             ddp_steps.__file__, str(synthetic_root), str(out)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            model, (rank0, rank1) = ddp_steps.model_and_halves(
                synthetic_root)
            start = ddp_steps.trainable_weights(model)
            logs = ddp_steps.train(model, rank0 + rank1)
            weights = ddp_steps.trainable_weights(model)
            proc.wait(timeout=600)
        finally:
            torch.set_num_threads(threads)
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
    assert proc.returncode == 0, (tmp_path / 'ddp.log').read_text()[-3000:]
    ddp = torch.load(out)
    for step, (one, two) in enumerate(zip(logs, ddp['logs'])):
        assert one.keys() == two.keys()
        for key in one:
            assert two[key] == pytest.approx(one[key], rel=LOSS_RTOL,
                                             abs=1e-7), (step, key)
    # ||DDP weights - one-process weights|| / ||one-process update||
    apart = relative_l2({k: ddp['weights'][k] - start[k] for k in start},
                        {k: weights[k] - start[k] for k in start})
    print(f'\nrank without masks: losses {[round(x["loss"], 6) for x in logs]}'
          f' (DDP {[round(x["loss"], 6) for x in ddp["logs"]]}), weights '
          f'{apart:.1e} of the update apart')
    assert apart <= WEIGHTS_RTOL
