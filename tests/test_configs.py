"""Every config loads, dumps to text and reloads to the same values."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.utils import get_object_from_string

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'geopixel', 'configs', '**', '*.py'),
              recursive=True) +
    glob.glob(osp.join(REPO, 'projects', '*', 'configs', '*.py')))
CONFIGS = [c for c in CONFIGS if osp.basename(c) != '__init__.py']


def normalise(value):
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if callable(value) and hasattr(value, '__module__'):
        return f'{value.__module__}.{value.__qualname__}'
    return value


def string_leaves(value, path=''):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from string_leaves(v, f'{path}.{k}')
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from string_leaves(v, f'{path}[{i}]')
    elif isinstance(value, str):
        yield path, value


def test_configs_were_found():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_load_dump_reload(path, tmp_path):
    cfg = Config.fromfile(path)
    dumped = tmp_path / 'dumped.py'
    cfg.dump(str(dumped))
    again = Config.fromfile(str(dumped))
    assert normalise(cfg.to_dict()) == normalise(again.to_dict())
    # An imported constant becomes its dotted name when a lazy config is
    # dumped; configs must hold literals (and live objects never).
    for where, text in string_leaves(cfg.to_dict()):
        if text.count('.') < 1 or ' ' in text or '/' in text:
            continue
        try:
            obj = get_object_from_string(text)
        except Exception:
            obj = None
        assert obj is None or callable(obj) or isinstance(obj, type(osp)), (
            f'{where} = {text!r} is an imported constant, not a literal')


@pytest.mark.parametrize('name,sub', [('synthetic_gcg', 'geopixeld'),
                                      ('synthetic_rrsis', 'rrsisd')])
def test_synthetic_data_configs_build_from_dumped_text(
        name, sub, synthetic_root, tmp_path):
    from geopixel.engine.runner_setup import relocate_paths
    from geopixel.registry import DATASETS
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'datasets', f'{name}.py'))
    dumped = tmp_path / 'dumped.py'
    cfg.dump(str(dumped))
    cfg = Config.fromfile(str(dumped))  # every type is a dotted string now
    relocate_paths(cfg, 'data/synthetic', synthetic_root)
    for split in ('train', 'test'):
        dataset = DATASETS.build(cfg[f'{split}_dataloader'].dataset)
        assert dataset.data_root == osp.join(synthetic_root, sub)
        sample = dataset[0]
        data = sample['data_samples']
        # hd 1 at the tiny model's 224 px tiles: (1 + 1) * 64 + 1 + 8 * 2
        assert data.num_image_tokens == 145
        assert sample['inputs']['hd_image'].shape == (3, 224, 224)
        if split == 'train' or name == 'synthetic_rrsis':
            # RRSIS-D is evaluated teacher-forced: the answer is given
            assert (data.labels != -100).any()
        else:
            assert 'labels' not in data
            assert data.conversation_text.endswith('assistant\n')
