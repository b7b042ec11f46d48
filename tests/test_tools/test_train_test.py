"""tools/train.py and tools/test.py end to end on the synthetic data.

The model is the toy in geopixel/testing/toy_grounding.py: these tests are
about the tools (config, overrides, atomic checkpoints, resume after a
crash, evaluation, CPU DDP), not about GeoPixel itself.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from geopixel.testing import TOY_RRSIS_CONFIG as CONFIG

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run_tool(args, cwd, timeout=300, check=True, **extra_env):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1',
               **extra_env)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed:\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-3000:]}')
    return proc


@pytest.fixture
def workspace(synthetic_root, tmp_path):
    (tmp_path / 'data').mkdir()
    os.symlink(synthetic_root, tmp_path / 'data' / 'synthetic')
    return tmp_path


def test_train_crash_resume_and_test(workspace):
    work = workspace / 'work'
    python = sys.executable
    train = [python, osp.join(REPO, 'tools', 'train.py'), CONFIG,
             '--work-dir', str(work)]
    crashed = run_tool(
        train + ['--cfg-options', 'train_cfg.max_iters=9',
                 'custom_hooks.1.at_iter=5'], workspace, check=False)
    assert crashed.returncode != 0
    assert 'simulated crash at iteration 5' in crashed.stderr + crashed.stdout
    assert sorted(p for p in os.listdir(work) if p.endswith('.pth')) == [
        'iter_3.pth'
    ]
    assert (work / 'last_checkpoint').read_text().endswith('iter_3.pth')
    resumed = run_tool(
        train + ['--resume', '--cfg-options', 'train_cfg.max_iters=9'],
        workspace)
    log = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 3' in log
    assert 'Iter(train) [4/9]' in log and 'Iter(train) [9/9]' in log
    assert (work / 'iter_9.pth').exists()
    assert not [p for p in os.listdir(work) if p.endswith('.tmp')]

    out = workspace / 'preds.pkl'
    run_tool([python, osp.join(REPO, 'tools', 'test.py'), CONFIG,
              str(work / 'iter_9.pth'), '--work-dir', str(work), '--out',
              str(out)], workspace)
    metrics_files = [osp.join(d, f) for d, _, fs in os.walk(work)
                     for f in fs if f == 'metrics.json']
    assert metrics_files
    metrics = json.load(open(metrics_files[0]))
    with open(workspace / 'data' / 'synthetic' / 'meta.json') as f:
        meta = json.load(f)
    # every sentence of every test ref was evaluated
    assert metrics['toy/samples'] == meta['rrsisd']['test']
    assert 0.0 <= metrics['toy/mIoU'] <= 100.0
    assert out.exists()

    # a bad copy of the newest checkpoint: --resume warns and falls back
    newest = work / 'iter_9.pth'
    newest.write_bytes(newest.read_bytes()[:1000])
    resumed = run_tool(
        train + ['--resume', '--cfg-options', 'train_cfg.max_iters=12'],
        workspace)
    log = resumed.stdout + resumed.stderr
    assert f'cannot resume from {newest}' in log
    assert 'resumed epoch: 0, iter: 6' in log and 'Iter(train) [12/12]' in log


def toy_state():
    from geopixel.testing import ToyGroundingModel
    return ToyGroundingModel().state_dict()


class WritesMarker:
    """Unpickling this creates ``path``: code run from a checkpoint."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


def test_test_tool_loads_strictly_and_runs_no_code(workspace):
    import torch
    python = sys.executable
    work = workspace / 'work'
    test = [python, osp.join(REPO, 'tools', 'test.py'), CONFIG]
    outside = workspace / 'downloaded'
    outside.mkdir()
    partial = outside / 'partial.pth'
    torch.save({'state_dict': {'conv.weight': toy_state()['conv.weight']}},
               partial)
    proc = run_tool(test + [str(partial), '--work-dir', str(work)],
                    workspace, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f'checkpoint {partial}: does not fit the model' in log
    assert 'missing keys 1 (conv.bias)' in log
    assert not list(work.rglob('metrics.json'))
    proc = run_tool(test + [str(partial), '--work-dir', str(work),
                            '--non-strict'], workspace)
    assert 'missing keys 1 (conv.bias)' in proc.stdout + proc.stderr
    assert list(work.rglob('metrics.json'))

    marker = workspace / 'MARKER'
    evil = outside / 'evil.pth'
    torch.save({'state_dict': toy_state(), 'x': WritesMarker(str(marker))},
               evil)
    for tool in (test + [str(evil)],
                 [python, osp.join(REPO, 'tools', 'train.py'), CONFIG,
                  '--resume', str(evil)]):
        proc = run_tool(tool + ['--work-dir', str(work)], workspace,
                        check=False)
        assert proc.returncode != 0
        assert '--trust-checkpoint' in proc.stdout + proc.stderr
        assert not marker.exists()
    run_tool(test + [str(evil), '--work-dir', str(work),
                     '--trust-checkpoint'], workspace)
    assert marker.exists()  # only because the user said so


def test_time_budget_stop_saves_and_validates(workspace):
    from mmengine.runner import Runner

    from geopixel.engine.runner_setup import load_config, relocate_paths
    cfg = load_config(CONFIG, work_dir=str(workspace / 'budget'))
    relocate_paths(cfg, 'data/synthetic', str(workspace / 'data' /
                                               'synthetic'))
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.custom_hooks.append(dict(type='geopixel.TimeBudgetHook', minutes=0))
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1  # stopped after the first of 6 iterations
    assert (workspace / 'budget' / 'iter_1.pth').exists()
    assert 'val/toy/mIoU' in runner.message_hub.log_scalars


def test_cfg_options_and_amp_on_cpu(workspace):
    proc = run_tool([sys.executable, osp.join(REPO, 'tools', 'train.py'),
                     CONFIG, '--amp', '--work-dir',
                     str(workspace / 'w')], workspace, check=False)
    assert proc.returncode != 0
    assert '--amp needs a CUDA device' in proc.stderr + proc.stdout


@pytest.mark.slow
def test_two_process_cpu_ddp(workspace):
    proc = run_tool([
        'bash', osp.join(REPO, 'tools', 'dist_train.sh'), CONFIG, '2',
        '--work-dir', str(workspace / 'ddp'), '--cfg-options',
        'train_cfg.max_iters=4', 'train_cfg.val_interval=4'
    ], workspace, timeout=600)
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # MMEngine's name for the world size
    assert 'Iter(train) [4/4]' in log
    assert (workspace / 'ddp' / 'iter_3.pth').exists()


@pytest.mark.slow
def test_tiny_geopixel_train_test_and_overlays(workspace):
    """The quick start's path: the real model at tiny size through the
    tools."""
    pytest.importorskip('sam2')
    config = osp.join(REPO, 'configs', 'geopixel', 'rrsis_tiny.py')
    work = workspace / 'tiny'
    run_tool([sys.executable, osp.join(REPO, 'tools', 'train.py'), config,
              '--work-dir', str(work), '--cfg-options',
              'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
              'param_scheduler.0.end=2', 'param_scheduler.1.begin=2',
              'param_scheduler.1.end=4',
              'default_hooks.checkpoint.interval=4'],
             workspace)
    assert (work / 'iter_4.pth').exists()
    run_tool([sys.executable, osp.join(REPO, 'tools', 'test.py'), config,
              str(work / 'iter_4.pth'), '--work-dir', str(work),
              '--show-dir', str(work / 'show')], workspace)
    metrics = json.load(open(next(
        osp.join(d, f) for d, _, fs in os.walk(work) for f in fs
        if f == 'metrics.json')))
    with open(workspace / 'data' / 'synthetic' / 'meta.json') as f:
        meta = json.load(f)
    assert metrics['rrsis/samples'] == meta['rrsisd']['test']
    assert set(metrics) >= {'rrsis/P@0.5', 'rrsis/oIoU', 'rrsis/mIoU'}
    assert len(os.listdir(work / 'show')) == metrics['rrsis/samples']


@pytest.mark.slow
def test_tiny_gcg_test_prints_every_metric_and_writes_predictions(workspace):
    pytest.importorskip('sam2')
    pytest.importorskip('pycocoevalcap')
    import shutil
    if shutil.which('java') is None:
        pytest.skip('caption metrics need Java')
    config = osp.join(REPO, 'configs', 'geopixel', 'gcg_tiny.py')
    work = workspace / 'gcg'
    short = ['train_cfg.max_iters=2', 'param_scheduler.0.end=1',
             'param_scheduler.1.begin=1', 'param_scheduler.1.end=2',
             'default_hooks.checkpoint.interval=2',
             'model.generation_cfg.max_new_tokens=8']
    run_tool([sys.executable, osp.join(REPO, 'tools', 'train.py'), config,
              '--work-dir', str(work), '--cfg-options'] + short, workspace)
    proc = run_tool([sys.executable, osp.join(REPO, 'tools', 'test.py'),
                     config, str(work / 'iter_2.pth'), '--work-dir',
                     str(work), '--out', str(work / 'preds'),
                     '--cfg-options', 'model.generation_cfg.max_new_tokens=8'],
                    workspace)
    log = proc.stdout + proc.stderr
    for name in ('gcg/CIDEr', 'gcg/METEOR', 'gcg/AP50', 'gcg/mIoU',
                 'gcg/Recall (IoU-only)', 'gcg/uni/AP50', 'gcg/multi/mIoU'):
        assert name in log, name
    with open(workspace / 'data' / 'synthetic' / 'meta.json') as f:
        meta = json.load(f)
    files = os.listdir(work / 'preds')
    assert len(files) == meta['geopixeld']['test']
    pred = json.load(open(work / 'preds' / files[0]))
    assert set(pred) == {'image_id', 'caption', 'phrases', 'pred_masks'}


def _losses(work):
    """``{iteration: loss}`` from a run's scalars.json files."""
    losses = {}
    for d, _, files in os.walk(work):
        if 'scalars.json' in files:
            with open(osp.join(d, 'scalars.json')) as f:
                for line in f:
                    row = json.loads(line)
                    if 'loss' in row:
                        losses[row['iter']] = row['loss']
    return losses


@pytest.mark.slow
def test_trainable_only_checkpoints_resume_and_test(workspace):
    """The tiny model with a frozen SAM2 encoder read from a file: its
    checkpoints leave the encoder out, resume to the same losses as an
    uninterrupted run, and tools/test.py restores the encoder."""
    pytest.importorskip('sam2')
    import shutil

    import torch

    from geopixel.registry import MODELS
    from geopixel.testing import tiny_model_cfg
    sam2_file = workspace / 'sam2_tiny.pt'
    model = MODELS.build(tiny_model_cfg(str(workspace / 'data' /
                                            'synthetic')))
    torch.save(dict(model=model.grounding_encoder.state_dict()), sam2_file)
    config = osp.join(REPO, 'configs', 'geopixel', 'rrsis_tiny.py')
    options = ['--cfg-options', 'train_cfg.max_iters=4',
               'train_cfg.val_interval=100', 'param_scheduler.0.end=2',
               'param_scheduler.1.begin=2', 'param_scheduler.1.end=4',
               'default_hooks.checkpoint.interval=2',
               'default_hooks.logger.interval=1',
               f'model.grounding_encoder.checkpoint={sam2_file}',
               'model.grounding_encoder.frozen=True']
    train = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config]
    whole = workspace / 'whole'
    run_tool(train + ['--work-dir', str(whole)] + options, workspace)
    ckpt = torch.load(whole / 'iter_2.pth', weights_only=False)
    saved = ckpt['state_dict']
    assert not [k for k in saved if k.startswith('grounding_encoder.')]
    assert any(k.startswith('mask_decoder.') for k in saved)
    record = ckpt['meta']['geopixel_frozen_weights']
    assert list(record['sources']) == [str(sam2_file)]
    assert 'optimizer' in ckpt

    resumed = workspace / 'resumed'
    resumed.mkdir()
    shutil.copy(whole / 'iter_2.pth', resumed / 'iter_2.pth')
    log = run_tool(train + ['--work-dir', str(resumed), '--resume',
                            str(resumed / 'iter_2.pth')] + options,
                   workspace)
    assert 'resumed epoch: 0, iter: 2' in log.stdout + log.stderr
    first, second = _losses(whole), _losses(resumed)
    assert sorted(second) == [3, 4]
    assert [second[i] for i in (3, 4)] == [first[i] for i in (3, 4)]

    tested = run_tool([sys.executable, osp.join(REPO, 'tools', 'test.py'),
                       config, str(resumed / 'iter_4.pth'), '--work-dir',
                       str(resumed)] + options, workspace)
    assert 'every key fits' in tested.stdout + tested.stderr
