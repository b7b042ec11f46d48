"""Bad checkpoints: each is refused with an error naming the file and the
problem, runs no code from the file, and leaves the model as it was."""
import json
import os.path as osp

import pytest
import torch

from geopixel.checkpoint import (CheckpointError, load_model_weights,
                                 read_state_dict)
from geopixel.engine.checkpoint import pick_resume_checkpoint


class Net(torch.nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.a = torch.nn.Linear(2, width)
        self.b = torch.nn.Linear(width, 1)


class WritesMarker:
    """Unpickling this opens (creates) ``path``: code run from a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


class Custom:
    value = 1


def good_state():
    return {k: v + 1 for k, v in Net().state_dict().items()}


def save(obj, path):
    torch.save(obj, path)
    return path


def truncated(path, keep=0.5):
    torch.save({'state_dict': good_state()}, path)
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:int(len(data) * keep)])
    return path


def with_value(value):
    def build(path):
        state = good_state()
        state['b.weight'][0, 0] = value
        return save({'state_dict': state}, path)
    return build


def safetensors_file(mangle):
    def build(path):
        from safetensors.torch import save_file
        path = path.replace('.pth', '.safetensors')
        save_file(good_state(), path)
        data = open(path, 'rb').read()
        open(path, 'wb').write(mangle(data))
        return path
    return build


# (id, builder(path) -> path, words the message must contain)
CASES = [
    ('truncated-half', truncated, 'truncated or corrupt'),
    ('truncated-to-header', lambda p: truncated(p, 0.05),
     'truncated or corrupt'),
    ('zero-bytes', lambda p: open(p, 'wb').close() or p,
     'truncated or corrupt'),
    ('random-bytes', lambda p: open(p, 'wb').write(bytes(range(256)) * 9)
     and p, 'truncated or corrupt'),
    ('text-file', lambda p: open(p, 'w').write('not a checkpoint') and p,
     'truncated or corrupt'),
    ('pickled-code', lambda p: save(
        {'state_dict': good_state(),
         'x': WritesMarker(osp.join(osp.dirname(p), 'MARKER'))}, p),
     'weights-only load refuses'),
    ('foreign-class', lambda p: save({'state_dict': good_state(),
                                      'meta': Custom()}, p),
     'Custom'),
    ('nan-weight', with_value(float('nan')), 'non-finite'),
    ('inf-weight', with_value(float('inf')), 'non-finite'),
    ('minus-inf-weight', with_value(float('-inf')), 'non-finite'),
    ('missing-key', lambda p: save({'state_dict': {
        k: v for k, v in good_state().items() if k != 'b.bias'}}, p),
     'missing keys 1 (b.bias)'),
    ('unexpected-key', lambda p: save({'state_dict': dict(
        good_state(), extra=torch.ones(1))}, p), 'unexpected keys 1 (extra)'),
    ('wrong-shape', lambda p: save({'state_dict': Net(5).state_dict()}, p),
     'a.weight (5, 2) vs model (3, 2)'),
    ('no-state-dict', lambda p: save({'meta': {'iter': 1}}, p),
     'holds no state dict'),
    ('not-a-dict', lambda p: save([torch.ones(1)], p),
     'holds no state dict'),
    ('safetensors-truncated', safetensors_file(lambda d: d[:len(d) - 7]),
     'not a readable safetensors file'),
    ('safetensors-bad-header', safetensors_file(lambda d: b'\xff' * 8 + d[8:]),
     'not a readable safetensors file'),
]


@pytest.mark.parametrize('build,words', [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_checkpoint_is_refused_and_changes_nothing(tmp_path, build,
                                                       words):
    path = build(str(tmp_path / 'ckpt.pth'))
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_model_weights(model, path)
    message = str(err.value)
    assert path in message and words in message, message
    assert not (tmp_path / 'MARKER').exists()  # no code ran
    for key, value in model.state_dict().items():  # nothing half-loaded
        assert torch.equal(value, before[key]), key


def test_pickled_code_runs_only_when_trusted(tmp_path):
    marker = tmp_path / 'MARKER'
    state = good_state()
    path = save({'state_dict': state,
                 'x': WritesMarker(str(marker))}, str(tmp_path / 'c.pth'))
    with pytest.raises(CheckpointError, match='--trust-checkpoint'):
        load_model_weights(Net(), path)
    assert not marker.exists()
    model = Net()
    load_model_weights(model, path, trusted=True)
    assert marker.exists()  # the user vouched for it: it ran
    assert torch.equal(model.b.bias, state['b.bias'])


BAD_FOLDERS = [
    ('index-not-json', lambda d: open(osp.join(
        d, 'model.safetensors.index.json'), 'w').write('{oops') and d,
     'unreadable shard index'),
    ('index-without-weight-map', lambda d: json.dump(
        {'metadata': {}}, open(osp.join(d, 'model.safetensors.index.json'),
                               'w')) or d, 'unreadable shard index'),
    ('truncated-shard', lambda d: truncated(
        osp.join(d, 'pytorch_model.bin')) and d, 'truncated or corrupt'),
]


@pytest.mark.parametrize('build,words', [c[1:] for c in BAD_FOLDERS],
                         ids=[c[0] for c in BAD_FOLDERS])
def test_bad_weight_folder_is_named(tmp_path, build, words):
    folder = build(str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        read_state_dict(folder)
    assert str(tmp_path) in str(err.value) and words in str(err.value)


@pytest.mark.parametrize('damage', ['truncate', 'zero-bytes', 'flip-byte',
                                    'deleted'])
def test_damaged_newest_checkpoint_falls_back_to_the_next(tmp_path, damage):
    from mmengine.runner.checkpoint import save_checkpoint
    for it in (2, 4):
        save_checkpoint({'state_dict': good_state(), 'meta': {'iter': it}},
                        str(tmp_path / f'iter_{it}.pth'))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    newest = tmp_path / 'iter_4.pth'
    data = newest.read_bytes()
    if damage == 'truncate':
        newest.write_bytes(data[:len(data) - 100])
    elif damage == 'zero-bytes':
        newest.write_bytes(b'')
    elif damage == 'flip-byte':
        newest.write_bytes(data[:200] + bytes([data[200] ^ 0xFF]) +
                           data[201:])
    else:
        newest.unlink()
    assert pick_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'iter_2.pth')
    assert (tmp_path / 'iter_2.pth').read_bytes()  # the older one is intact
