"""geopixel.checkpoint.io on good input: every file and folder layout reads
to the same tensors, ``keep`` filters, and a non-strict load reports what
did not fit. (Bad input: tests/test_bad_inputs/test_bad_checkpoints.py.)"""
import json
import os.path as osp

import pytest
import torch

from geopixel.checkpoint import (CheckpointError, describe_fit,
                                 load_model_weights, read_state_dict)

STATE = {
    'a.weight': torch.arange(6.).view(2, 3),
    'a.bias': torch.tensor([1., 2.]),
    'b.weight': torch.full((1, 2), 0.5),
    'steps': torch.tensor([3]),
}


def save(state, path):
    """Write ``state`` in the format the file name says."""
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(state, path)
    else:
        torch.save(state, path)
    return path


def assert_same(state, expected=STATE):
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


@pytest.mark.parametrize('name,wrap', [
    ('model.safetensors', lambda s: s),
    ('pytorch_model.bin', lambda s: s),
    ('iter_4.pth', lambda s: {'state_dict': s, 'meta': {'iter': 4}}),
    ('sam2.pt', lambda s: {'model': s}),
    ('ddp.pth', lambda s: {'module': {f'module.{k}': v
                                      for k, v in s.items()}}),
])
def test_files_read_to_the_same_tensors(tmp_path, name, wrap):
    assert_same(read_state_dict(save(wrap(STATE), str(tmp_path / name))))


def shard(folder, index_name, shard_names):
    """Split STATE over ``shard_names`` and write the index."""
    keys = sorted(STATE)
    weight_map = {}
    for i, name in enumerate(shard_names):
        part = {k: STATE[k] for k in keys[i::len(shard_names)]}
        save(part, osp.join(folder, name))
        weight_map.update({k: name for k in part})
    with open(osp.join(folder, index_name), 'w') as f:
        json.dump({'metadata': {}, 'weight_map': weight_map}, f)


@pytest.mark.parametrize('layout', [
    'model.safetensors', 'pytorch_model.bin', 'sharded-safetensors',
    'sharded-bin'
])
def test_hugging_face_folders_read_to_the_same_tensors(tmp_path, layout):
    folder = str(tmp_path)
    if layout == 'sharded-safetensors':
        shard(folder, 'model.safetensors.index.json', [
            'model-00001-of-00002.safetensors',
            'model-00002-of-00002.safetensors'
        ])
    elif layout == 'sharded-bin':
        shard(folder, 'pytorch_model.bin.index.json', [
            'pytorch_model-00001-of-00002.bin',
            'pytorch_model-00002-of-00002.bin'
        ])
    else:
        save(STATE, osp.join(folder, layout))
    assert_same(read_state_dict(folder))


def test_a_folder_prefers_safetensors_to_bin(tmp_path):
    save(STATE, str(tmp_path / 'model.safetensors'))
    save({k: v + 1 for k, v in STATE.items()},
         str(tmp_path / 'pytorch_model.bin'))
    assert_same(read_state_dict(str(tmp_path)))


def test_keep_filters_keys_and_skips_shards_it_does_not_need(tmp_path):
    folder = str(tmp_path)
    shard(folder, 'model.safetensors.index.json',
          ['one.safetensors', 'two.safetensors'])
    with open(tmp_path / 'model.safetensors.index.json') as f:
        weight_map = json.load(f)['weight_map']
    unneeded = weight_map['a.bias']
    (tmp_path / unneeded).write_bytes(b'not read')  # would raise if read
    kept = {k for k, s in weight_map.items() if s != unneeded}
    state = read_state_dict(folder, keep=lambda k: k in kept)
    assert_same(state, {k: STATE[k] for k in kept})


def test_non_finite_shard_is_named(tmp_path):
    shard(str(tmp_path), 'model.safetensors.index.json',
          ['one.safetensors', 'two.safetensors'])
    save({'a.bias': torch.tensor([float('nan'), 1.])},
         str(tmp_path / 'one.safetensors'))
    with pytest.raises(CheckpointError) as err:
        read_state_dict(str(tmp_path))
    assert str(tmp_path / 'one.safetensors') in str(err.value)
    assert 'non-finite' in str(err.value)


def test_missing_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        read_state_dict(str(tmp_path / 'nowhere.pth'))
    with pytest.raises(FileNotFoundError,
                       match='holds none of model.safetensors.index.json'):
        read_state_dict(str(tmp_path))


class Net(torch.nn.Module):
    def __init__(self, width=2):
        super().__init__()
        self.a = torch.nn.Linear(3, width)
        self.b = torch.nn.Linear(2, 1, bias=False)


def test_non_strict_load_reports_and_loads_only_what_fits(tmp_path):
    state = {k: v for k, v in STATE.items() if k != 'steps'}
    state['a.weight'] = torch.ones(4, 3)  # the model's is (2, 3)
    state['extra'] = torch.ones(1)
    path = save({'state_dict': state}, str(tmp_path / 'c.pth'))
    model = Net()
    before = model.a.weight.detach().clone()
    report = load_model_weights(model, path, strict=False)
    assert report == dict(missing=[], unexpected=['extra'],
                          mismatched=['a.weight (4, 3) vs model (2, 3)'])
    assert torch.equal(model.a.weight, before)  # left as it was
    assert torch.equal(model.a.bias, STATE['a.bias'])
    assert torch.equal(model.b.weight, STATE['b.weight'])
    assert describe_fit(report) == (
        'unexpected keys 1 (extra); mismatched keys 1 (a.weight (4, 3) vs '
        'model (2, 3))')
    assert describe_fit(dict(missing=[], unexpected=[], mismatched=[])) == \
        'every key fits'
