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
    assert 'model.tokenizer.path: checkpoints/' in text
    assert 'model.grounding_encoder.checkpoint:' in text
    assert 'train_dataloader.dataset.data_root: data/' in text
    # the IXC-2.5 folder is named once, not once per key that reads it
    assert text.count('internlm-xcomposer2d5-7b') == 1
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
