"""geopixel.testing: light to import, every export resolves, configs come
fresh from the packaged tiny model, project configs get the tiny model."""
import os.path as osp
import subprocess
import sys

import pytest

import geopixel.testing as testing

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
EXAMPLE_CONFIG = osp.join(REPO, 'projects', 'example_project', 'configs',
                          'synthetic_rrsis_fixed_grid.py')


def test_import_is_light():
    code = ('import sys, geopixel.testing; '
            "print([m for m in ('torch', 'mmengine') if m in sys.modules])")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == '[]'


def test_every_export_resolves():
    assert set(testing.__all__) <= set(dir(testing))
    for name in testing.__all__:
        assert getattr(testing, name) is not None, name
    with pytest.raises(AttributeError, match='no attribute'):
        testing.no_such_helper


def test_component_configs_are_fresh_copies_of_the_tiny_model():
    model = testing.tiny_model_cfg()
    for kind in testing.COMPONENT_KINDS:
        cfg = testing.tiny_component_cfg(kind)
        assert cfg == model[kind]
        cfg['changed'] = True
        assert 'changed' not in testing.tiny_component_cfg(kind)
    with pytest.raises(ValueError, match="unknown component kind 'tiler'"):
        testing.tiny_component_cfg('tiler')


def test_data_root_moves_the_tokenizer_folder(tmp_path):
    cfg = testing.tiny_component_cfg('tokenizer', data_root=str(tmp_path))
    assert cfg['path'] == str(tmp_path / 'tokenizer')


def tilers(cfg):
    return [t['tiler'] for key in ('train_dataloader', 'test_dataloader')
            for t in cfg[key]['dataset']['pipeline'] if 'tiler' in t]


def test_dataset_config_gets_the_tiny_model_and_its_tile_size(
        monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(osp.dirname(osp.dirname(EXAMPLE_CONFIG)))
    cfg = testing.get_config(EXAMPLE_CONFIG, str(tmp_path))
    tile = testing.tiny_component_cfg('vision_encoder')['tile_size']
    assert cfg.model == testing.tiny_model_cfg(str(tmp_path))
    assert tilers(cfg) and all(t['tile_size'] == tile for t in tilers(cfg))
    assert cfg.train_dataloader.dataset.data_root.startswith(str(tmp_path))


def test_config_with_a_model_keeps_its_tilers():
    path = osp.join(REPO, 'configs', 'geopixel', 'gcg_9p.py')
    from mmengine.config import Config
    assert tilers(testing.get_config(path)) == tilers(Config.fromfile(path))


def test_demo_data_refuses_more_samples_than_the_split_has(synthetic_root):
    cfg = testing.get_config(testing.TOY_RRSIS_CONFIG, synthetic_root)
    with pytest.raises(ValueError, match='fewer than the 1000 asked for'):
        testing.demo_data(cfg, 'test', num_samples=1000)
