"""A run reports everything it lacks before anything is built."""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config

from geopixel.engine.preflight import check_run_prerequisites, run_problems

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_paper_recipe_on_a_bare_machine_lists_every_problem(tmp_path,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ or data/ here
    cfg = Config.fromfile(osp.join(REPO, 'configs/geopixel/gcg_9p.py'))
    problems = run_problems(cfg)
    text = '\n'.join(problems)
    if importlib.util.find_spec('deepspeed') is None:
        assert 'DeepSpeed is not installed' in text
        assert 'requirements/deepspeed.txt' in text
    assert ('checkpoints/internlm-xcomposer2d5-7b (model.tokenizer.path, '
            'model.ixc_checkpoint) does not exist: the IXC-2.5 folder') \
        in text
    assert ('checkpoints/sam2_hiera_large.pt (model.grounding_encoder.'
            'checkpoint, model.mask_decoder.checkpoint) does not exist: the '
            'SAM2 checkpoint') in text
    assert 'train_dataloader.dataset.data_root: data/' in text
    # each path is one line, not one per key that reads it
    assert len([p for p in problems if 'internlm-xcomposer2d5-7b' in p]) == 1
    assert 'docs/en/user_guides/checkpoints.md' in text
    with pytest.raises(SystemExit, match='cannot start the run'):
        check_run_prerequisites(cfg)


def test_a_runnable_config_passes(synthetic_root):
    from geopixel.testing import get_config
    cfg = get_config(osp.join(REPO, 'configs/geopixel/rrsis_tiny.py'),
                     synthetic_root)
    assert run_problems(cfg, ('train_dataloader', 'test_dataloader')) == []
    check_run_prerequisites(cfg)


def test_deepspeed_missing_is_named(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, 'find_spec',
        lambda name, *a: None if name == 'deepspeed' else real(name, *a))
    cfg = Config(dict(strategy=dict(type='DeepSpeedStrategy'), model={}))
    assert run_problems(cfg) == [run_problems(cfg)[0]]
    assert 'DeepSpeedStrategy' in run_problems(cfg)[0]
    assert run_problems(Config(dict(model={}))) == []


def _bare_machine(monkeypatch):
    """No optional package and no caption tools."""
    from geopixel.engine import preflight
    from geopixel.evaluation.functional import gcg
    monkeypatch.setattr(preflight, 'is_installed', lambda name: False)
    monkeypatch.setattr(gcg, 'caption_tools_problem',
                        lambda: 'pycocoevalcap is not installed')


@pytest.mark.parametrize('config,loaders,expected', [
    ('gcg_9p.py', ('train_dataloader', ),
     ['DeepSpeed is not installed', 'sam2 is not installed',
      'checkpoints/internlm-xcomposer2d5-7b', 'checkpoints/sam2_hiera_large',
      'data_root']),
    ('gcg_9p.py', ('test_dataloader', ),
     ['DeepSpeed is not installed', 'sam2 is not installed',
      'GCGMetric scores captions: pycocoevalcap',
      'checkpoints/internlm-xcomposer2d5-7b', 'checkpoints/sam2_hiera_large',
      'data_root']),
    ('rrsisd_ft.py', ('train_dataloader', ),
     ['DeepSpeed is not installed', 'sam2 is not installed',
      'checkpoints/GeoPixel-7B (model.tokenizer.path, model.checkpoint) '
      'does not exist: a GeoPixel folder', 'data_root']),
])
def test_paper_configs_without_extras_or_weights_list_everything(
        tmp_path, monkeypatch, config, loaders, expected):
    """One message, every problem, before anything is built."""
    monkeypatch.chdir(tmp_path)
    _bare_machine(monkeypatch)
    cfg = Config.fromfile(osp.join(REPO, 'configs/geopixel', config))
    problems = run_problems(cfg, loaders)
    assert len(problems) == len(expected), problems
    for problem, words in zip(problems, expected):
        assert words in problem, (words, problem)
