"""Batched decoding and the reuse of an image's cached prefix.

Batched answers must equal one-at-a-time answers (ids exactly, masks to
float rounding with the same binary masks), and an answer built on a
cached prefix must equal a fresh one.
"""
import os.path as osp

import pytest
import torch

from geopixel.testing import demo_batch, get_config, tiny_model
from geopixel.testing.llm_adapters import TinyLlamaAdapter
from geopixel.models.llms import InternLM2Adapter

pytest.importorskip('sam2')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RRSIS_TINY = osp.join(REPO, 'configs', 'geopixel', 'rrsis_tiny.py')
TINY_LM = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2)


@pytest.fixture(scope='module')
def cfg(synthetic_root):
    return get_config(RRSIS_TINY, synthetic_root)


@pytest.fixture(scope='module')
def model(cfg):
    model = tiny_model(cfg, predict_mode='generate').eval()
    model.generation_cfg['max_new_tokens'] = 6
    return model


def prompts(cfg, model, n=4):
    """Generation prompts of different lengths (different expressions)."""
    return demo_batch(cfg, model, split='test', num_samples=n,
                      pipeline='test_pipeline')


def one_by_one(model, batch):
    out = []
    for i in range(len(batch['data_samples'])):
        single = dict(
            inputs={k: v[i:i + 1] for k, v in batch['inputs'].items()},
            data_samples=[batch['data_samples'][i]])
        contexts = model.image_contexts(**single)
        out.append(model.respond(contexts, [single['data_samples'][0]
                                            .input_ids], 1)[0])
    return out


def assert_same_masks(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    assert torch.equal(a > 0, b > 0)


@pytest.mark.parametrize('adapter_type', [InternLM2Adapter, TinyLlamaAdapter])
def test_padded_batch_decodes_like_single_sequences(adapter_type):
    torch.manual_seed(0)
    adapter = adapter_type(llm_config=TINY_LM, vocab_size=96).eval()
    lengths = [7, 4, 9]
    seqs = [torch.randn(1, n, adapter.hidden_size) for n in lengths]
    singles = [adapter.generate(s, None, [2], max_new_tokens=5) for s in seqs]
    longest = max(lengths)
    embeds = torch.zeros(len(seqs), longest, adapter.hidden_size)
    mask = torch.zeros(len(seqs), longest, dtype=torch.bool)
    pos = torch.zeros(len(seqs), longest, dtype=torch.long)
    for i, s in enumerate(seqs):  # left padding, own positions
        embeds[i, longest - s.shape[1]:] = s[0]
        mask[i, longest - s.shape[1]:] = True
        pos[i, longest - s.shape[1]:] = torch.arange(s.shape[1])
    batched = adapter.generate(embeds, None, [2], max_new_tokens=5,
                               attention_mask=mask, position_ids=pos)
    for i, single in enumerate(singles):
        assert batched['ids'][i].tolist() == single['ids'][0].tolist()
        torch.testing.assert_close(batched['hidden_states'][i],
                                   single['hidden_states'][0], rtol=1e-4,
                                   atol=1e-5)


def test_batched_generation_equals_one_at_a_time(cfg, model):
    batch = prompts(cfg, model)
    lengths = {len(ds.input_ids) for ds in batch['data_samples']}
    assert len(lengths) > 1, 'the prompts should need padding'
    batched = model.respond(model.image_contexts(**batch),
                            [ds.input_ids for ds in batch['data_samples']],
                            1)
    for b, s in zip(batched, one_by_one(model, batch)):
        assert b.ids.tolist() == s.ids.tolist()
        assert b.text == s.text
        assert_same_masks(b.masks, s.masks)
    # and predict (what tools/test.py runs) is the batched path
    out = model(**batch, mode='predict')
    assert [ds.pred_ids.tolist() for ds in out] == \
        [r.ids.tolist() for r in batched]


def test_batched_masks_equal_one_at_a_time(cfg, model):
    """Answers of different lengths, [SEG] at different steps: samples
    that finish early feed padding while the others decode."""
    batch = prompts(cfg, model)
    seg = model.seg_token_id
    forced = [[5, seg, 7, 2], [seg, 2], [9, 9, seg, 11, seg, 13, 2],
              [4, 2]]
    contexts = model.image_contexts(**batch)
    ids = [ds.input_ids for ds in batch['data_samples']]
    batched = model.respond(contexts, ids, 1,
                            generation_cfg=dict(forced_ids=forced))
    for i, b in enumerate(batched):
        single = model.respond(model.image_contexts(
            inputs={k: v[i:i + 1] for k, v in batch['inputs'].items()},
            data_samples=[batch['data_samples'][i]]), [ids[i]], 1,
            generation_cfg=dict(forced_ids=[forced[i]]))[0]
        assert b.ids.tolist() == forced[i]
        assert b.masks.shape[0] == forced[i].count(seg)
        assert_same_masks(b.masks, single.masks)


def test_teacher_forced_batch_equals_a_full_forward(cfg, model):
    batch = demo_batch(cfg, model, split='test', num_samples=3,
                       pipeline='teacher_forced_test_pipeline')
    responses = model.respond(
        model.image_contexts(**batch),
        [ds.input_ids for ds in batch['data_samples']], 0,
        teacher_forced=True)
    full = model(**batch, mode='tensor')['masks']  # no cache, right padded
    for r, f in zip(responses, full):
        assert r.ids.numel() == 0 and r.masks.shape[0] == f.shape[0] >= 1
        assert_same_masks(r.masks, f)


def test_a_cached_image_prefix_gives_the_fresh_answer(cfg, model):
    batch = prompts(cfg, model, n=2)
    first = dict(inputs={k: v[:1] for k, v in batch['inputs'].items()},
                 data_samples=batch['data_samples'][:1])
    q1 = batch['data_samples'][0].input_ids
    q2 = batch['data_samples'][1].input_ids  # another expression
    context = model.image_contexts(**first)[0]
    n_image = context.visual.shape[0]
    a1 = model.respond([context], [q1], 1)[0]
    assert a1.reused_tokens == 0
    a2 = model.respond([context], [q2], 1)[0]
    fresh = model.respond(model.image_contexts(**first), [q2], 1)[0]
    # BOS, the image and the common start of the user turn came from cache
    assert a2.reused_tokens > 1 + n_image
    assert a2.ids.tolist() == fresh.ids.tolist()
    assert_same_masks(a2.masks, fresh.masks)
    # the same question again: everything but the last prompt token reused
    again = model.respond([context], [q2], 1)[0]
    assert again.reused_tokens == 1 + n_image + len(q2) - 2
    assert again.ids.tolist() == fresh.ids.tolist()


def test_a_chat_turn_runs_only_its_new_tokens(cfg, model):
    batch = prompts(cfg, model, n=1)
    q1 = batch['data_samples'][0].input_ids
    context = model.image_contexts(**batch)[0]
    a1 = model.respond([context], [q1], 1)[0]
    # no EOS within max_new_tokens: every generated token was fed back
    assert len(a1.ids) == model.generation_cfg['max_new_tokens']
    cached = len(context.cached_ids)
    assert cached == 1 + context.visual.shape[0] + len(q1) - 1 + len(a1.ids)
    turn2 = torch.cat([q1, a1.ids, torch.tensor([5, 6, 7])])
    a2 = model.respond([context], [turn2], 1)[0]
    fresh = model.respond(model.image_contexts(**batch), [turn2], 1)[0]
    assert a2.reused_tokens == cached  # only the 3 new tokens ran
    assert a2.ids.tolist() == fresh.ids.tolist()
    assert_same_masks(a2.masks, fresh.masks)
