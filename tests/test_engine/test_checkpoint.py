"""Atomic checkpoint writes and torch>=2.6-safe loading."""
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

from geopixel.engine import (
    ATOMIC_BACKEND,
    AtomicLocalBackend,
    atomic_write,
    trust_checkpoint_dir,
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


def test_training_checkpoints_load_from_the_runs_own_folder(tmp_path):
    # torch>=2.6's default (weights_only) refuses MMEngine's message hub
    run = tmp_path / 'work_dir'
    run.mkdir()
    path = run / 'iter_3.pth'
    torch.save(mmengine_like_checkpoint(), path)
    with pytest.raises(pickle.UnpicklingError, match='trust_checkpoint_dir'):
        _load_checkpoint(str(path))
    trust_checkpoint_dir(str(run))
    ckpt = _load_checkpoint(str(path))
    assert ckpt['meta']['iter'] == 3
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)


class Arbitrary:
    def __init__(self):
        self.value = 1


def test_arbitrary_objects_need_a_trusted_folder(tmp_path):
    untrusted = tmp_path / 'downloaded' / 'model.pth'
    untrusted.parent.mkdir()
    torch.save({'obj': Arbitrary()}, untrusted)
    with pytest.raises(pickle.UnpicklingError, match='trust_checkpoint_dir'):
        _load_checkpoint(str(untrusted))
    trust_checkpoint_dir(str(untrusted.parent))
    assert _load_checkpoint(str(untrusted))['obj'].value == 1
