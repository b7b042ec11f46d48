"""The whole GeoPixel model at tiny size: modes, batching, swaps, training.

Model-level tests run on every tiny config and on the example project's
config, with one model built per config and shared by the module.
"""
import copy
import os.path as osp

import pytest
import torch

from geopixel.testing import (demo_batch, demo_data, get_config,
                              tiny_model, tiny_sam_cfgs)

pytest.importorskip('sam2')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
EXAMPLE = osp.join(REPO, 'projects', 'example_project')
RRSIS_TINY = osp.join(REPO, 'configs', 'geopixel', 'rrsis_tiny.py')
CONFIGS = {
    'rrsis_tiny': RRSIS_TINY,
    'gcg_tiny': osp.join(REPO, 'configs', 'geopixel', 'gcg_tiny.py'),
    'example_fixed_grid': osp.join(EXAMPLE, 'configs',
                                   'synthetic_rrsis_fixed_grid.py'),
}


@pytest.fixture(scope='module')
def example_on_path():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(EXAMPLE)
        yield


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def cfg(request, synthetic_root, example_on_path):
    return get_config(CONFIGS[request.param], synthetic_root)


@pytest.fixture(scope='module')
def model(cfg):
    return tiny_model(cfg)


@pytest.fixture(scope='module')
def rrsis_cfg(synthetic_root):
    return get_config(RRSIS_TINY, synthetic_root)


def seg_count(model, ids):
    return int((ids == model.seg_token_id).sum())


def test_dimensions_come_from_the_components(cfg, model):
    width = cfg.model.llm.llm_config.hidden_size
    assert model.vision_encoder.hidden_size == model.llm.hidden_size == width
    assert model.seg_projector[0].in_features == width
    assert model.seg_projector[2].out_features == \
        model.grounding_encoder.hidden_dim == model.mask_decoder.embed_dim
    assert model.llm.llm.config.vocab_size == len(model.tokenizer)


def test_loss_mode_batch_of_two_with_padding(cfg, model):
    batch = demo_batch(cfg, model)
    lengths = {len(ds.input_ids) for ds in batch['data_samples']}
    model.train()
    losses = model(**batch, mode='loss')
    # the tiny configs' decoder has a locator, which adds its pointing
    # loss, and a [SEG] words head
    assert set(losses) == {'loss_ce', 'loss_mask_bce', 'loss_mask_dice',
                           'loss_mask_aux', 'loss_seg_words'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.requires_grad}
    assert all(g is not None for g in grads.values()), [
        n for n, g in grads.items() if g is None]
    for part in ('vision_encoder', 'llm', 'seg_projector', 'mask_decoder',
                 'seg_words_head'):
        assert any(g.abs().sum() > 0 for n, g in grads.items()
                   if n.startswith(part + '.')), part
    assert len(lengths) == 2, 'two lengths: the batch is padded'
    model.zero_grad()


def test_loss_is_the_mean_over_masks_of_the_batch(cfg, model):
    batch = demo_batch(cfg, model)
    model.eval()  # no dropout
    with torch.no_grad():
        pair = model(**batch, mode='loss')
        single = [
            model(inputs=dict(canvases=[c], images=[i]), data_samples=[d],
                  mode='loss')
            for c, i, d in zip(batch['inputs']['canvases'],
                               batch['inputs']['images'],
                               batch['data_samples'])
        ]
    counts = [len(d.gt_masks) for d in batch['data_samples']]
    for key in ('loss_mask_bce', 'loss_mask_dice', 'loss_mask_aux'):
        expected = sum(s[key] * n for s, n in zip(single, counts)) / sum(
            counts)
        assert pair[key].item() == pytest.approx(expected.item(), rel=1e-4)


def test_predict_in_the_configs_mode_is_scored_by_its_metric(cfg, model):
    """Teacher-forced configs (RRSIS) give one mask per [SEG] of the given
    answer; generating configs (GCG, the example) one per generated [SEG].
    The config's metric accepts what the model predicts."""
    from mmengine.evaluator import Evaluator
    batch = demo_batch(cfg, model, split='test')
    model.eval()
    saved = dict(model.generation_cfg)
    model.generation_cfg['max_new_tokens'] = 4
    try:
        with torch.no_grad():
            out = model(**batch, mode='predict')
    finally:
        model.generation_cfg = saved
    assert model.predict_mode == cfg.model.get('predict_mode', 'generate')
    for ds in out:
        h, w = ds.ori_shape
        if model.predict_mode == 'teacher_forced':
            expected = seg_count(model, ds.input_ids)
            assert expected >= 1
        else:
            assert isinstance(ds.pred_text, str) and len(ds.pred_ids) <= 4
            expected = seg_count(model, ds.pred_ids)
        assert ds.pred_masks.shape == (expected, h, w)
        assert ds.pred_masks.dtype == torch.float32
    if cfg.get('test_evaluator') is None:
        return
    metric = copy.deepcopy(cfg.test_evaluator)
    if 'GCGMetric' in str(metric['type']):
        metric['with_captions'] = False  # caption scores need Java
    evaluator = Evaluator(metric)
    evaluator.process(data_samples=out, data_batch=batch)
    scores = evaluator.evaluate(len(out))
    assert scores and all(0 <= v <= 100 for k, v in scores.items()
                          if 'samples' not in k)


def test_predict_mode_and_pipeline_must_agree(cfg, model):
    """A generation prompt is a teacher-forced error, and a given answer a
    generation error, whichever mode the config predicts in."""
    prompts = demo_batch(cfg, model, split='test',
                         pipeline='test_pipeline')
    answers = demo_batch(cfg, model, split='test',
                         pipeline='teacher_forced_test_pipeline')
    mode = model.predict_mode
    model.eval()
    try:
        model.predict_mode = 'teacher_forced'
        with pytest.raises(ValueError, match='teacher_forced_test_pipeline'):
            model(**prompts, mode='predict')
        model.predict_mode = 'generate'
        with pytest.raises(ValueError, match='needs the question only'):
            model(**answers, mode='predict')
    finally:
        model.predict_mode = mode


def test_tensor_mode(cfg, model):
    batch = demo_batch(cfg, model)
    model.eval()
    with torch.no_grad():
        tensors = model(**batch, mode='tensor')
    assert tensors['logits'].shape[0] == 2
    assert [m.shape[0] for m in tensors['masks']] == [
        seg_count(model, ds.input_ids) for ds in batch['data_samples']]


def test_mask_count_mismatch_is_named(cfg, model):
    batch = demo_batch(cfg, model, num_samples=1)
    ds = batch['data_samples'][0]
    segs = seg_count(model, ds.input_ids)
    ds.gt_masks = torch.cat([ds.gt_masks, ds.gt_masks[:1]])
    with pytest.raises(ValueError,
                       match=rf'{segs} \[SEG\] token\(s\) but {segs + 1}'):
        model(**batch, mode='loss')


def test_train_step_updates_trainable_weights_only(cfg, model):
    from mmengine.optim import OptimWrapper
    params = [p for p in model.parameters() if p.requires_grad]
    wrapper = OptimWrapper(torch.optim.AdamW(params, lr=1e-3))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    log_vars = model.train_step(demo_data(cfg), wrapper)
    assert torch.isfinite(log_vars['loss'])
    changed = {n for n, p in model.named_parameters()
               if not torch.equal(p, before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable
    assert any(n.startswith('mask_decoder.') for n in changed)
    assert not any(n.startswith('vision_encoder.vit.') for n in changed)


def test_seg_words_loss_reaches_the_llm(cfg, model):
    """The tiny configs' words head: its loss alone trains the head and
    the LLM's LoRA (the route that brings the words into [SEG])."""
    if model.seg_words_head is None:
        pytest.skip('this config has no [SEG] words head')
    batch = demo_batch(cfg, model)
    model.train()
    model.zero_grad()
    losses = model(**batch, mode='loss')
    assert losses['loss_seg_words'] > 0
    losses['loss_seg_words'].backward()
    grads = {n for n, p in model.named_parameters()
             if p.grad is not None and p.grad.abs().sum() > 0}
    model.zero_grad()
    assert 'seg_words_head.proj.weight' in grads
    assert any('lora_' in n for n in grads)
    assert not any(n.startswith('mask_decoder.') for n in grads)


def train_steps(model, batch, steps=3):
    """Loss before and after ``steps`` AdamW steps on one batch."""
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-3)
    model.train()
    first = None
    for _ in range(steps):
        losses = model(**batch, mode='loss')
        loss = sum(losses.values())
        first = loss.item() if first is None else first
        optim.zero_grad()
        loss.backward()
        optim.step()
    with torch.no_grad():
        model.eval()
        after = sum(model(**batch, mode='loss').values()).item()
    return first, after


@pytest.mark.parametrize('swap', ['full_lora', 'sam_v1'])
def test_one_line_swaps_build_and_train(rrsis_cfg, swap):
    from geopixel.models.llms import FullLoRAAdapter
    model_cfg = copy.deepcopy(rrsis_cfg.model)
    if swap == 'full_lora':
        model_cfg.llm.type = 'FullLoRAAdapter'
        model_cfg.llm.pop('plora')  # it has no partial LoRA to configure
    else:  # the pair is assigned together, as in geopixel_7b.py
        model_cfg.grounding_encoder, model_cfg.mask_decoder = tiny_sam_cfgs()
    swapped = tiny_model(model_cfg)
    if swap == 'full_lora':
        assert isinstance(swapped.llm, FullLoRAAdapter)
        assert not any('Plora' in n for n, _ in swapped.named_parameters())
    else:
        assert type(swapped.grounding_encoder).__name__ == \
            'SAMGroundingEncoder'
    first, after = train_steps(swapped, demo_batch(rrsis_cfg, swapped))
    assert after < first


def test_partial_lora_config_trains(rrsis_cfg):
    fresh = tiny_model(rrsis_cfg)
    first, after = train_steps(fresh, demo_batch(rrsis_cfg, fresh))
    assert after < first


def test_a_bf16_model_trains_and_predicts(cfg):
    """DeepSpeed bf16 casts every weight and buffer: each part must run in
    the model's own dtype (SAM2's fp32 grid and neck used to break it)."""
    model = tiny_model(cfg).to(torch.bfloat16)
    batch = demo_batch(cfg, model)
    losses = model(**batch, mode='loss')
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.mask_decoder.mask_decoder.iou_token.weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model(**batch, mode='tensor')
    assert all(torch.isfinite(m).all() for m in out['masks'])
