"""Trainable-only checkpoints (geopixel/checkpoint/frozen.py): frozen weights
loaded from a file are referenced by file and SHA-256, restored from the
model built from the config, and refused when they would differ."""
import os.path as osp
import shutil

import pytest
import torch

from geopixel.checkpoint import CheckpointError, load_model_weights
from geopixel.checkpoint.frozen import (META_KEY, drop_frozen_sourced,
                                        sourced_frozen_keys)


@pytest.fixture(scope='module')
def parity(parity_dir):
    return parity_dir


def sourced_model(parity, checkpoint_dir=None, seed=0):
    """The official tiny checkpoint with trainable LoRA, whose trainable
    weights then move away from the file (as after training)."""
    from geopixel.testing.official_tiny import official_tiny_model
    model = official_tiny_model(parity, llm_type='PartialLoRAAdapter')
    if checkpoint_dir is not None:
        from geopixel.checkpoint import load_official_checkpoint
        load_official_checkpoint(model, checkpoint_dir)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.01)
    return model


def save_trainable(model, path):
    kept, record = drop_frozen_sourced(model, model.state_dict())
    torch.save(dict(meta={META_KEY: record}, state_dict=kept), path)
    return kept, record


def llm_logits(model):
    gen = torch.Generator().manual_seed(1)
    embeds = torch.randn(1, 6, model.llm.hidden_size, generator=gen)
    im_mask = torch.tensor([[True, True, True, False, False, False]])
    model.eval()  # LoRA dropout
    with torch.no_grad():
        return model.llm(embeds, torch.ones(1, 6, dtype=torch.bool),
                         im_mask)['logits']


@pytest.fixture(scope='module')
def trained(parity, tmp_path_factory):
    model = sourced_model(parity)
    path = str(tmp_path_factory.mktemp('trainable') / 'iter_1.pth')
    kept, record = save_trainable(model, path)
    return model, path, kept, record


def test_only_trainable_and_unsourced_weights_are_saved(parity, trained):
    model, path, kept, record = trained
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable <= set(kept)
    # every left-out key is frozen and came from the checkpoint folder
    dropped = set(model.state_dict()) - set(kept)
    assert dropped == set(record['digests'])
    assert dropped and not dropped & trainable
    assert set(sourced_frozen_keys(model)) == dropped
    assert list(record['sources']) == [osp.abspath(
        osp.join(parity, 'checkpoint'))]
    assert any(k.startswith('grounding_encoder.') for k in dropped)
    assert any(k.startswith('vision_encoder.vit.') for k in dropped)
    assert 'llm.llm.model.layers.0.attention.wqkv.base_layer.weight' \
        in dropped
    full = sum(v.numel() for v in model.state_dict().values())
    assert sum(v.numel() for v in kept.values()) < 0.5 * full


def test_trainable_only_checkpoint_loads_back_bit_identically(
        parity, trained):
    model, path, _, _ = trained
    fresh = sourced_model(parity, seed=5)  # other trainable values
    assert not torch.equal(llm_logits(fresh), llm_logits(model))
    report = load_model_weights(fresh, path)
    assert not any(report.values())
    ours, theirs = model.state_dict(), fresh.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert torch.equal(llm_logits(fresh), llm_logits(model))


def test_a_changed_source_file_is_refused(parity, trained, tmp_path):
    from safetensors.torch import load_file, save_file
    _, path, _, _ = trained
    changed = tmp_path / 'checkpoint'
    shutil.copytree(osp.join(parity, 'checkpoint'), changed)
    weights = load_file(str(changed / 'model.safetensors'))
    key = 'model.visual_model.image_encoder.trunk.pos_embed'
    weights[key] = weights[key] + 1e-3
    save_file(weights, str(changed / 'model.safetensors'))
    fresh = sourced_model(parity, checkpoint_dir=str(changed))
    with pytest.raises(CheckpointError) as err:
        load_model_weights(fresh, path)
    message = str(err.value)
    assert path in message and 'differ' in message
    assert 'grounding_encoder.image_encoder.trunk.pos_embed' in message


def test_a_model_built_without_the_source_is_refused(parity, trained):
    _, path, _, record = trained
    fresh = sourced_model(parity)
    # as if the config had no checkpoint: nothing came from a file
    for tensor in fresh.state_dict(keep_vars=True).values():
        tensor.__dict__.pop('_geopixel_weight_source', None)
    with pytest.raises(CheckpointError) as err:
        load_model_weights(fresh, path)
    assert 'built without loading them' in str(err.value)
    assert next(iter(record['sources'])) in str(err.value)


def test_missing_and_extra_keys_are_named(parity, trained, tmp_path):
    model, _, kept, record = trained
    broken = dict(kept)
    lost = 'seg_projector.0.weight'
    del broken[lost]
    broken['llm.extra.weight'] = torch.zeros(2)
    path = str(tmp_path / 'broken.pth')
    torch.save(dict(meta={META_KEY: record}, state_dict=broken), path)
    fresh = sourced_model(parity)
    with pytest.raises(CheckpointError) as err:
        load_model_weights(fresh, path)
    assert lost in str(err.value) and 'llm.extra.weight' in str(err.value)
    report = load_model_weights(fresh, path, strict=False)
    assert report['missing'] == [lost]
    assert report['unexpected'] == ['llm.extra.weight']
