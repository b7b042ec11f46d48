"""geopixel.testing: light to import, every export resolves, configs come
fresh from the packaged tiny model, demo data from any named pipeline."""
import os.path as osp
import subprocess
import sys

import pytest

import geopixel.testing as testing

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


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


def test_get_config_moves_the_synthetic_paths(tmp_path):
    cfg = testing.get_config(testing.TOY_RRSIS_CONFIG, str(tmp_path))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.data_root == str(tmp_path / 'rrsisd')


def test_demo_data_takes_a_named_pipeline(synthetic_root):
    cfg = testing.get_config(testing.TOY_RRSIS_CONFIG, synthetic_root)
    # RRSIS-D configs evaluate teacher-forced: the split's own pipeline
    # gives the answer, the generation pipeline the question only
    own = testing.demo_data(cfg, 'test', num_samples=1)['data_samples'][0]
    prompt = testing.demo_data(
        cfg, 'test', num_samples=1,
        pipeline='test_pipeline')['data_samples'][0]
    assert own.metainfo['sent_id'] == prompt.metainfo['sent_id']
    assert len(own.input_ids) > len(prompt.input_ids)
    assert 'labels' in own and 'labels' not in prompt


def test_demo_data_refuses_more_samples_than_the_split_has(synthetic_root):
    cfg = testing.get_config(testing.TOY_RRSIS_CONFIG, synthetic_root)
    with pytest.raises(ValueError, match='fewer than the 1000 asked for'):
        testing.demo_data(cfg, 'test', num_samples=1000)
