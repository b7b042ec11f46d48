"""Atomic checkpoint writes and torch>=2.6-safe loading."""
import os
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

from geopixel.checkpoint import (
    CheckpointError,
    checkpoint_problem,
    load_model_weights,
    read_checkpoint,
)
from geopixel.engine import (
    ATOMIC_BACKEND,
    AtomicLocalBackend,
    atomic_write,
    setup_mmengine,
)
from geopixel.engine.checkpoint import (
    pick_resume_checkpoint,
    resume_candidates,
)


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path,
                                                          monkeypatch):
    target = tmp_path / 'ckpt.pth'
    atomic_write(b'old', str(target))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt('killed mid-save')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(b'new' * 1000, str(target))
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['ckpt.pth']  # no temp file left behind


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_atomic_files_get_the_mode_a_plain_write_gets(tmp_path, umask):
    """mkstemp makes 0600 files; a renamed checkpoint must not stay
    private to its writer when the umask says otherwise."""
    old = os.umask(umask)
    try:
        atomic_write(b'x', str(tmp_path / 'a.pth'))
        with open(tmp_path / 'b.pth', 'wb') as f:
            f.write(b'x')
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / 'a.pth').st_mode & 0o777
    assert mode == os.stat(tmp_path / 'b.pth').st_mode & 0o777 == \
        0o666 & ~umask


def test_backend_is_registered_and_used_by_save_checkpoint(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=dict(
        backend=ATOMIC_BACKEND))
    assert isinstance(backend, AtomicLocalBackend)
    path = str(tmp_path / 'sub' / 'iter_1.pth')
    save_checkpoint({'state_dict': {'w': torch.ones(2)}}, path,
                    backend_args=dict(backend=ATOMIC_BACKEND))
    backend.put_text('iter_1.pth', str(tmp_path / 'last_checkpoint'))
    assert (tmp_path / 'last_checkpoint').read_text() == 'iter_1.pth'
    assert torch.equal(_load_checkpoint(path)['state_dict']['w'],
                       torch.ones(2))


def mmengine_like_checkpoint():
    buffer = HistoryBuffer()
    buffer.update(0.5)
    return {
        'meta': {'iter': 3, 'seed': 0, 'cfg': 'model = dict()'},
        'state_dict': OrderedDict(w=torch.randn(3)),
        'message_hub': {'log_scalars': {'train/loss': buffer},
                        'runtime_info': {'iter': 3}},
        'extra': np.arange(3, dtype=np.int64),
    }


def test_weight_files_load_with_weights_only(tmp_path):
    path = tmp_path / 'weights.pth'
    torch.save({'meta': {'iter': 3, 'ids': np.arange(3)},
                'state_dict': OrderedDict(w=torch.randn(3))}, path)
    ckpt = _load_checkpoint(str(path))
    assert ckpt['meta']['iter'] == 3 and list(ckpt['meta']['ids']) == [0, 1,
                                                                       2]


def test_training_checkpoints_load_without_unpickling_code(tmp_path):
    # MMEngine's message hub pickles HistoryBuffers (and getattr calls for
    # their statistics methods): allowed, so a run's checkpoint loads from
    # anywhere without trusting it
    path = tmp_path / 'elsewhere' / 'iter_3.pth'
    path.parent.mkdir()
    torch.save(mmengine_like_checkpoint(), path)
    ckpt = _load_checkpoint(str(path))
    assert ckpt['meta']['iter'] == 3
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.mean() == 0.5


class Arbitrary:
    def __init__(self):
        self.value = 1


class GetattrGadget:
    """Pickles as getattr(numpy.ndarray, 'tofile'): a file writer."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def test_arbitrary_objects_need_trust(tmp_path):
    untrusted = tmp_path / 'downloaded' / 'model.pth'
    untrusted.parent.mkdir()
    torch.save({'obj': Arbitrary()}, untrusted)
    with pytest.raises(CheckpointError) as err:
        _load_checkpoint(str(untrusted))
    message = str(err.value)
    assert str(untrusted) in message and '--trust-checkpoint' in message
    assert 'test_checkpoint.Arbitrary' in message
    # trusted paths are passed explicitly: a file, not its folder
    setup_mmengine(trusted_checkpoints=[str(untrusted)])
    try:
        assert _load_checkpoint(str(untrusted))['obj'].value == 1
        sibling = untrusted.parent / 'other.pth'
        torch.save({'obj': Arbitrary()}, sibling)
        with pytest.raises(CheckpointError):
            _load_checkpoint(str(sibling))
    finally:
        setup_mmengine()  # back to trusting nothing


def test_getattr_is_served_for_history_buffers_only(tmp_path):
    path = tmp_path / 'gadget.pth'
    torch.save({'w': torch.ones(1), 'x': GetattrGadget()}, path)
    with pytest.raises(CheckpointError, match='weights-only load refuses'):
        read_checkpoint(str(path))


def test_unreadable_checkpoints_are_named(tmp_path):
    path = tmp_path / 'iter_3.pth'
    torch.save(mmengine_like_checkpoint(), path)
    data = path.read_bytes()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        read_checkpoint(str(truncated))
    assert 'truncated or corrupt' in checkpoint_problem(str(truncated))
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    (tmp_path / 'flipped.pth').write_bytes(bytes(flipped))
    assert 'CRC' in checkpoint_problem(str(tmp_path / 'flipped.pth'))
    assert checkpoint_problem(str(path)) is None


def test_non_finite_weights_are_refused(tmp_path):
    path = tmp_path / 'nan.pth'
    torch.save({'state_dict': {'a': torch.ones(2),
                               'b': torch.tensor([1.0, float('nan')])}},
               path)
    with pytest.raises(CheckpointError) as err:
        _load_checkpoint(str(path))
    assert 'non-finite' in str(err.value) and '(b)' in str(err.value)


def test_resume_candidates_newest_first_and_damaged_skipped(tmp_path):
    for it in (3, 6, 12):
        save_checkpoint(mmengine_like_checkpoint(),
                        str(tmp_path / f'iter_{it}.pth'))
    (tmp_path / 'best_mIoU_iter_3.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_6.pth'))
    assert [os.path.basename(p) for p in resume_candidates(str(tmp_path))
            ] == ['iter_6.pth', 'iter_12.pth', 'iter_3.pth']
    assert pick_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'iter_6.pth')
    for it in (6, 12):  # a bad copy and an empty file
        data = (tmp_path / f'iter_{it}.pth').read_bytes()
        (tmp_path / f'iter_{it}.pth').write_bytes(data[:it * 10])
    assert pick_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'iter_3.pth')


class TwoLayers(torch.nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.a = torch.nn.Linear(2, width)
        self.b = torch.nn.Linear(width, 1)


def test_model_weights_load_strictly(tmp_path):
    model = TwoLayers()
    state = {f'module.{k}': v + 1 for k, v in model.state_dict().items()}
    full = tmp_path / 'full.pth'
    torch.save({'state_dict': state}, full)
    report = load_model_weights(TwoLayers(), str(full))
    assert report == dict(missing=[], unexpected=[], mismatched=[])

    partial = tmp_path / 'partial.pth'
    torch.save({'state_dict': {k: v for k, v in state.items()
                               if 'b.bias' not in k}}, partial)
    target = TwoLayers()
    with pytest.raises(CheckpointError) as err:
        load_model_weights(target, str(partial))
    assert 'missing keys 1 (b.bias)' in str(err.value)
    assert str(partial) in str(err.value)
    before = target.a.weight.detach().clone()
    report = load_model_weights(target, str(partial), strict=False)
    assert report['missing'] == ['b.bias']
    assert torch.equal(target.a.weight, state['module.a.weight'])
    assert not torch.equal(target.a.weight, before)

    with pytest.raises(CheckpointError) as err:
        load_model_weights(TwoLayers(width=4), str(full))
    assert 'mismatched keys' in str(err.value)
    assert 'a.weight (3, 2) vs model (4, 2)' in str(err.value)


def test_importing_geopixel_changes_no_mmengine_global():
    """Every geopixel module imports without touching MMEngine's package
    lookup, checkpoint loaders, file backends or default scope; the
    workarounds come from one explicit call."""
    import subprocess
    import sys
    code = '''
import importlib, pkgutil
import mmengine.config.config as config_module
from mmengine.fileio.backends.registry_utils import backends
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader

def state():
    return (config_module.get_installed_path, dict(CheckpointLoader._schemes),
            dict(backends), DefaultScope.get_current_instance())

before = state()
import geopixel
names = [m.name for m in pkgutil.walk_packages(geopixel.__path__,
                                               'geopixel.')
         if '.configs' not in m.name]
for name in names:
    importlib.import_module(name)
assert state() == before, 'an import changed MMEngine'
from geopixel.engine import setup_mmengine
setup_mmengine()
after = state()
assert after[0] is not before[0] and after[1][''] is not before[1]['']
assert 'geopixel_atomic_local' in after[2]
print(len(names))
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    # the last line: an installed DeepSpeed prints its accelerator first
    assert int(out.stdout.strip().splitlines()[-1]) > 50
