"""Building on the meta device and streaming the checkpoint in
(geopixel/checkpoint/meta.py) gives the model an eager build gives."""
import json
import os.path as osp

import pytest
import torch
from safetensors.torch import save_file

from geopixel.checkpoint import CheckpointError, load_model_weights
from geopixel.checkpoint.meta import meta_keys
from geopixel.testing import demo_batch, get_config, tiny_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def save_sharded(state, folder, shards=3):
    """``state`` as ``model-*.safetensors`` shards with an index."""
    folder.mkdir()
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f'model-{i + 1:05d}-of-{shards:05d}.safetensors'
        part = {k: state[k].contiguous() for k in keys[i::shards]}
        save_file(part, str(folder / name))
        weight_map.update({k: name for k in part})
    (folder / 'model.safetensors.index.json').write_text(
        json.dumps(dict(metadata={}, weight_map=weight_map)))
    return str(folder)


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, differ[:5]


def test_official_checkpoint_streams_into_a_meta_build(parity_dir):
    from geopixel.testing.official_tiny import official_tiny_model
    eager = official_tiny_model(parity_dir, build_on_meta=False)
    streamed = official_tiny_model(parity_dir)
    assert not meta_keys(streamed) and streamed.initialised_keys == []
    assert streamed.load_report == eager.load_report
    same_state(eager, streamed)


def test_lora_no_file_holds_is_initialised_as_an_eager_build_does(
        parity_dir):
    from geopixel.testing.official_tiny import official_tiny_model
    eager = official_tiny_model(parity_dir, llm_type='PartialLoRAAdapter',
                                build_on_meta=False)
    streamed = official_tiny_model(parity_dir, llm_type='PartialLoRAAdapter')
    lora = [k for k in streamed.initialised_keys if '.lora_' in k]
    assert lora and len(lora) == len(streamed.initialised_keys)
    state = streamed.state_dict()
    for key in lora:
        if '.lora_B.' in key:
            assert not state[key].any(), key  # the delta starts at zero
        else:
            assert state[key].std() > 0, key
    # the release's weights are the same, and so are the outputs
    without_lora = {k for k in state if '.lora_' not in k}
    ref = eager.state_dict()
    assert all(torch.equal(state[k], ref[k]) for k in without_lora)
    embeds = torch.randn(1, 5, streamed.llm.hidden_size)
    mask = torch.ones(1, 5, dtype=torch.bool)
    im_mask = torch.tensor([[True, True, False, False, False]])
    outs = []
    for model in (eager, streamed):
        model.eval()
        with torch.no_grad():
            outs.append(model.llm(embeds, mask, im_mask)['logits'])
    assert torch.equal(*outs)


def test_ixc_start_streams_the_llm_and_vision_parts(parity_dir):
    """Training from IXC-2.5: the LLM and CLIP parts are built empty and
    streamed; the grounding parts are built (and seeded) as before."""
    from geopixel.testing.official_tiny import official_tiny_model
    ckpt = osp.join(parity_dir, 'checkpoint')
    torch.manual_seed(0)
    eager = official_tiny_model(parity_dir, llm_type='PartialLoRAAdapter',
                                checkpoint=None, ixc_checkpoint=ckpt,
                                build_on_meta=False)
    torch.manual_seed(0)
    streamed = official_tiny_model(parity_dir, llm_type='PartialLoRAAdapter',
                                   checkpoint=None, ixc_checkpoint=ckpt)
    assert not meta_keys(streamed)
    assert streamed.load_report == eager.load_report
    state, ref = streamed.state_dict(), eager.state_dict()
    from_file = [k for k in state
                 if k.startswith(('llm.', 'vision_encoder.'))
                 and '.lora_' not in k]
    assert from_file and all(torch.equal(state[k], ref[k])
                             for k in from_file)
    # LoRA comes from no file: initialised, B at zero
    lora_b = [k for k in state if '.lora_B.' in k]
    assert lora_b and set(streamed.initialised_keys) == {
        k for k in state if '.lora_' in k}
    assert not any(state[k].any() for k in lora_b)


@pytest.fixture(scope='module')
def rrsis_cfg(synthetic_root):
    pytest.importorskip('sam2')
    return get_config(osp.join(REPO, 'configs', 'geopixel', 'rrsis_tiny.py'),
                      synthetic_root)


def test_tiny_config_meta_build_matches_the_eager_build(rrsis_cfg,
                                                        tmp_path):
    source = tiny_model(rrsis_cfg, seed=0)
    folder = save_sharded(source.state_dict(), tmp_path / 'tiny')
    eager = tiny_model(rrsis_cfg, seed=1)
    load_model_weights(eager, folder)
    streamed = tiny_model(rrsis_cfg, seed=2, checkpoint=folder)
    assert not meta_keys(streamed)
    same_state(eager, streamed)
    batch = demo_batch(rrsis_cfg, eager, split='test',
                       pipeline='teacher_forced_test_pipeline')
    outs = []
    for model in (eager, streamed):
        model.eval()
        with torch.no_grad():
            outs.append(model(**batch, mode='tensor'))
    assert torch.equal(outs[0]['logits'], outs[1]['logits'])
    assert all(torch.equal(a, b) for a, b in zip(outs[0]['masks'],
                                                 outs[1]['masks']))


def test_bad_shards_are_named(rrsis_cfg, tmp_path):
    state = tiny_model(rrsis_cfg).state_dict()
    key = 'seg_projector.0.weight'
    state[key] = state[key].clone()
    state[key][0, 0] = float('nan')
    folder = save_sharded(state, tmp_path / 'nan')
    with pytest.raises(CheckpointError) as err:
        tiny_model(rrsis_cfg, checkpoint=folder)
    assert key in str(err.value) and 'non-finite' in str(err.value)
    assert '.safetensors' in str(err.value)

    index = json.loads((tmp_path / 'nan' /
                        'model.safetensors.index.json').read_text())
    shard = index['weight_map'][key]
    (tmp_path / 'nan' / shard).unlink()
    with pytest.raises((CheckpointError, FileNotFoundError)) as err:
        tiny_model(rrsis_cfg, checkpoint=folder)
    assert shard in str(err.value)

    del state[key]
    partial = save_sharded(state, tmp_path / 'partial')
    with pytest.raises(CheckpointError) as err:
        tiny_model(rrsis_cfg, checkpoint=partial)
    assert key in str(err.value) and 'missing' in str(err.value)
