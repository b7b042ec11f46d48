"""DeepSpeed ZeRO-2 / ZeRO-3 through MMEngine's FlexibleRunner, on CPU.

DeepSpeed runs here on its CPU accelerator with gloo
(docs/en/advanced_guides/deepspeed.md): the slow tests train the tiny
configs with 2 processes, convert the ZeRO folders with
tools/model_converters/zero_to_checkpoint.py and evaluate the result. ZeRO
needs every rank to run the same training graph (same module calls, same
gradient order); the graph tests check that on one process.
"""
import copy
import importlib.util
import json
import math
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import pytest
import torch

from tests.test_tools.test_train_test import run_tool

from .ddp_steps import without_masks

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    stage: osp.join(REPO, 'configs', 'geopixel', f'rrsis_tiny_zero{stage}.py')
    for stage in (2, 3)
}
GCG_TINY = osp.join(REPO, 'configs', 'geopixel', 'gcg_tiny.py')
CONVERTER = osp.join(REPO, 'tools', 'model_converters',
                     'zero_to_checkpoint.py')
HAS_DEEPSPEED = importlib.util.find_spec('deepspeed') is not None
needs_deepspeed = pytest.mark.skipif(
    not HAS_DEEPSPEED,
    reason='DeepSpeed is not installed (pip install -r '
    'requirements/deepspeed.txt)')

def load_converter():
    spec = importlib.util.spec_from_file_location('zero_to_checkpoint',
                                                  CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(args, cwd, timeout=420, check=True):
    """A tool in a subprocess, on DeepSpeed's CPU accelerator and a free
    rendezvous port."""
    return run_tool(args, cwd, timeout, check, DS_ACCELERATOR='cpu',
                    PORT=str(free_port()))


@pytest.fixture
def workspace(synthetic_root, tmp_path):
    (tmp_path / 'data').mkdir()
    os.symlink(synthetic_root, tmp_path / 'data' / 'synthetic')
    return tmp_path


# -- configs and strategy ----------------------------------------------------
@pytest.mark.parametrize('stage', [2, 3])
def test_zero_config_builds_strategy_and_model(stage, synthetic_root,
                                               tmp_path):
    from geopixel.engine.zero import GeoPixelDeepSpeedStrategy
    from geopixel.testing.tiny import get_config, tiny_model
    cfg = get_config(CONFIGS[stage], synthetic_root)
    assert cfg.runner_type.__name__ == 'FlexibleRunner'
    assert cfg.strategy.type is GeoPixelDeepSpeedStrategy
    assert cfg.strategy.zero_optimization.stage == stage
    assert not cfg.strategy.bf16.enabled  # fp32 on CPU
    assert cfg.strategy.exclude_frozen_parameters is False
    assert cfg.optim_wrapper.optimizer.lr == 2e-3  # rrsis_tiny's
    model = tiny_model(cfg)
    # what GeoPixel.loss reads outside the modules' forwards exists
    from geopixel.engine.zero import register_step_parameters
    expected = sum(1 for name in cfg.strategy.gather_for_step
                   if getattr(model, name) is not None
                   for _ in getattr(model, name).parameters())
    if HAS_DEEPSPEED:
        assert register_step_parameters(
            model, cfg.strategy.gather_for_step) == expected > 0
        from mmengine.registry import STRATEGIES
        # a strategy starts its logger in its work dir
        strategy = STRATEGIES.build(
            dict(copy.deepcopy(cfg.strategy), work_dir=str(tmp_path)))
        assert isinstance(strategy, GeoPixelDeepSpeedStrategy)
        assert strategy.config['zero_optimization']['stage'] == stage
        assert strategy.gather_for_step == (
            'mask_decoder', 'seg_projector', 'seg_words_head')


@needs_deepspeed
def test_gather_for_step_names_a_missing_module():
    from geopixel.engine.zero import register_step_parameters
    model = torch.nn.Module()
    model.head = torch.nn.Linear(2, 2)
    model.absent = None
    assert register_step_parameters(model, ('head', 'absent')) == 2
    with pytest.raises(AttributeError, match="'mask_decoder'.*Module"):
        register_step_parameters(model, ('mask_decoder', ))


# -- one graph on every rank -------------------------------------------------
def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def training_graph(model, sample):
    """What ZeRO sees of one training step: the modules called (in order),
    the modules whose outputs get a gradient (in backward order) and the
    parameters whose gradient is ready (in order)."""
    from mmengine.dataset import pseudo_collate
    names = {m: n for n, m in model.named_modules()}
    calls, backward, grads, handles = [], [], [], []

    def on_output(module, args, output):
        for t in _tensors(output):
            if t.requires_grad:
                t.register_hook(
                    lambda g, n=names[module]: backward.append(n))

    for module in model.modules():
        handles.append(module.register_forward_pre_hook(
            lambda m, a: calls.append(names[m])))
        handles.append(module.register_forward_hook(on_output))
    for name, p in model.named_parameters():
        if p.requires_grad:
            handles.append(p.register_post_accumulate_grad_hook(
                lambda p, n=name: grads.append(n)))
    try:
        model.zero_grad()
        data = model.data_preprocessor(pseudo_collate([sample]), True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    return dict(calls=calls, backward=backward, gradients=grads)


@pytest.fixture(scope='module')
def gcg_model_and_samples(synthetic_root):
    from geopixel.registry import DATASETS
    from geopixel.testing.tiny import get_config, tiny_model
    cfg = get_config(GCG_TINY, synthetic_root)
    model = tiny_model(cfg)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    first = dataset[0]
    count = len(first['data_samples'].gt_masks)
    for i in range(1, len(dataset)):
        if len(dataset[i]['data_samples'].gt_masks) != count:
            return model, [first, dataset[i]]
    raise AssertionError('the synthetic GCG records all hold '
                         f'{count} masks')


def test_training_graph_is_the_same_for_any_seg_count(gcg_model_and_samples):
    model, samples = gcg_model_and_samples
    counts = [len(s['data_samples'].gt_masks) for s in samples]
    assert min(counts) > 0
    first, second = (training_graph(model, s) for s in samples)
    for key in first:
        assert first[key] == second[key], key


def test_training_graph_is_the_same_without_seg(gcg_model_and_samples):
    model, samples = gcg_model_and_samples
    with_seg = training_graph(model, samples[0])
    other = int(samples[0]['data_samples'].input_ids[1])
    assert other != model.seg_token_id
    no_seg = training_graph(
        model, without_masks(copy.deepcopy(samples[0]), model.seg_token_id,
                            other))
    for key in with_seg:
        assert with_seg[key] == no_seg[key], (
            f'{key}: {len(with_seg[key])} with [SEG], {len(no_seg[key])} '
            'without')


# -- the converter ---------------------------------------------------------
def test_converter_refuses_what_is_not_a_zero_folder(tmp_path):
    converter = load_converter()
    plain = tmp_path / 'plain'
    plain.mkdir()
    (plain / 'notes.txt').write_text('x')
    with pytest.raises(converter.NotAZeroCheckpoint,
                       match=re.escape(str(plain)) + '.*no '
                       r'\*model_states\.pt'):
        converter.convert(str(plain), str(tmp_path / 'out.pth'))
    with pytest.raises(converter.NotAZeroCheckpoint, match='does not exist'):
        converter.convert(str(tmp_path / 'absent'), str(tmp_path / 'o.pth'))
    single = tmp_path / 'iter_4.pth'
    torch.save({'state_dict': {}}, single)
    with pytest.raises(converter.NotAZeroCheckpoint,
                       match='is a file.*tools/test.py reads it'):
        converter.convert(str(single), str(tmp_path / 'o.pth'))
    # model states without the optimizer states that hold the fp32 weights
    half = tmp_path / 'work' / 'iter_2.pth'
    half.mkdir(parents=True)
    torch.save({'ds_config': {'zero_optimization': {'stage': 2}},
                'dp_world_size': 2}, half / 'mp_rank_00_model_states.pt')
    with pytest.raises(converter.NotAZeroCheckpoint,
                       match=re.escape(str(half)) + '.*no '
                       r'\*optim_states\.pt'):
        converter.convert(str(half), str(tmp_path / 'o.pth'))
    # one rank's optimizer states missing: an incomplete copy
    torch.save({}, half / 'zero_pp_rank_0_mp_rank_00_optim_states.pt')
    with pytest.raises(converter.NotAZeroCheckpoint,
                       match='1 .*file.* saved by 2 ranks'):
        converter.convert(str(half), str(tmp_path / 'o.pth'))
    with pytest.raises(converter.NotAZeroCheckpoint, match='must end in'):
        converter.convert(str(half), str(tmp_path / 'o.bin'))
    assert not (tmp_path / 'o.pth').exists()
    assert not (tmp_path / 'out.pth').exists()


def test_converter_command_line_names_the_folder(tmp_path):
    proc = subprocess.run(
        [sys.executable, CONVERTER, str(tmp_path), str(tmp_path / 'o.pth')],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f'error: {tmp_path} is not a DeepSpeed ZeRO checkpoint folder' \
        in proc.stderr
    assert 'Traceback' not in proc.stderr


# -- 2-process runs --------------------------------------------------------
TRAIN_OPTIONS = [
    'train_cfg.max_iters=4', 'train_cfg.val_interval=100',
    'param_scheduler.0.end=2', 'param_scheduler.1.begin=2',
    'param_scheduler.1.end=4', 'default_hooks.checkpoint.interval=4',
    'default_hooks.logger.interval=1', 'log_processor.window_size=1',
    'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False'
]


def train_losses(work_dir) -> list:
    """The logged total loss per iteration (MMEngine's scalars.json)."""
    files = [osp.join(d, f) for d, _, fs in os.walk(work_dir) for f in fs
             if f == 'scalars.json']
    assert len(files) == 1, files
    with open(files[0]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [row['loss'] for row in rows if 'loss' in row]


@pytest.mark.slow
@needs_deepspeed
def test_zero2_and_zero3_train_convert_and_test(workspace):
    """2 gloo processes, 4 iterations each; ZeRO-2 and ZeRO-3 start from the
    same weights and data, so they log the same losses and save the same
    weights; the converted file loads strictly in tools/test.py."""
    converted, losses = {}, {}
    for stage in (2, 3):
        work = workspace / f'zero{stage}'
        proc = run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'),
                    CONFIGS[stage], '2', '--work-dir', str(work),
                    '--cfg-options', *TRAIN_OPTIONS], workspace)
        log = proc.stdout + proc.stderr
        assert 'GPU number: 2' in log  # MMEngine's name for world size
        assert 'Iter(train) [4/4]' in log
        folder = work / 'iter_4.pth'
        assert folder.is_dir()
        names = sorted(os.listdir(folder))
        assert sum(n.endswith('optim_states.pt') for n in names) == 2
        losses[stage] = train_losses(work)
        assert len(losses[stage]) == 4
        assert all(math.isfinite(v) for v in losses[stage])
        assert losses[stage][-1] < losses[stage][0]
        out = workspace / f'zero{stage}.pth'
        proc = run([sys.executable, CONVERTER, str(work), str(out)],
                   workspace)
        assert f'ZeRO-{stage}, 2 rank(s)' in proc.stdout
        converted[stage] = torch.load(out, weights_only=True)
        assert converted[stage]['meta']['zero_stage'] == stage
        assert converted[stage]['meta']['iter'] == 4
    assert losses[2] == pytest.approx(losses[3], rel=1e-5)
    two, three = (converted[s]['state_dict'] for s in (2, 3))
    assert two.keys() == three.keys()
    # float32 on CPU, measured: <= 2.4e-5 apart (the largest on attention
    # key biases, whose gradient is 0 up to rounding, which Adam scales up
    # to steps of lr); 3 AdamW steps at lr <= 2e-3 move weights by up to
    # 6e-3, and a scrambled shard would be off by the weights' own size
    for key in two:
        torch.testing.assert_close(two[key], three[key], rtol=0, atol=1e-4,
                                   msg=key)
    proc = run([sys.executable, osp.join(REPO, 'tools', 'test.py'),
                CONFIGS[3], str(workspace / 'zero3.pth'), '--work-dir',
                str(workspace / 'test')], workspace)
    assert 'every key fits' in proc.stdout + proc.stderr
    assert any(f == 'metrics.json'
               for _, _, fs in os.walk(workspace / 'test') for f in fs)


def mixed_seg_annotations(root) -> str:
    """GeoPixelD records in pairs (2k, 2k+1), which an unshuffled sampler
    gives to ranks 0 and 1: one record of each pair has its [SEG]s and
    masks removed, the one of rank 1 for even k and of rank 0 for odd k,
    so at every step one rank grounds nothing, each rank in turn."""
    path = osp.join(root, 'geopixeld', 'GeoPixelD.json')
    with open(path) as f:
        records = json.load(f)
    out = []
    for i, record in enumerate(records):
        record = copy.deepcopy(record)
        pair, rank = divmod(i, 2)
        if rank != pair % 2:
            for turn in record['conversations']:
                text = re.sub(r'\s*\[SEG\]', '', turn['value'])
                turn['value'] = text.replace('<p> ', '').replace(' </p>', '')
            record.pop('polygons')
        out.append(record)
    return out


@pytest.mark.slow
@needs_deepspeed
def test_zero3_with_a_rank_without_seg(workspace, tmp_path):
    records = mixed_seg_annotations(str(workspace / 'data' / 'synthetic'))
    assert any('polygons' not in r for r in records[:2])
    ann = tmp_path / 'mixed_seg.json'
    ann.write_text(json.dumps(records))
    config = tmp_path / 'gcg_tiny_zero3.py'
    config.write_text(
        'from mmengine.config import read_base\n\n'
        'with read_base():\n'
        '    from geopixel.configs.geopixel.gcg_tiny import *\n'
        '    from geopixel.configs.geopixel.rrsis_tiny_zero3 import (\n'
        '        optim_wrapper, runner_type, strategy)\n')
    proc = run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'),
                str(config), '2', '--work-dir', str(tmp_path / 'w'),
                '--cfg-options', *TRAIN_OPTIONS,
                'train_dataloader.batch_size=1',
                'train_dataloader.sampler.shuffle=False',
                f'train_dataloader.dataset.ann_file={ann}'],
               workspace, timeout=300, check=False)
    log = proc.stdout + proc.stderr
    errors = [line for line in log.splitlines()
              if 'Error:' in line or 'what():' in line]
    assert proc.returncode == 0, '\n'.join(errors[:6])
    assert 'Iter(train) [4/4]' in log
