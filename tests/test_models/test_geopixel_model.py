"""The whole GeoPixel model at tiny size: modes, batching, swaps, training."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

pytest.importorskip('sam2')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CONFIG = osp.join(REPO, 'configs', 'geopixel', 'rrsis_tiny.py')
SAM_V1 = (
    dict(
        type='SAMGroundingEncoder',
        variant='vit_b',
        image_size=256,
        overrides=dict(hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, global_attn_indexes=[1],
                       output_channels=32, mlp_dim=64)),
    dict(
        type='SAMMaskDecoder',
        decoder_overrides=dict(mlp_dim=64, num_attention_heads=4)))


def tiny_cfg(synthetic_root):
    from geopixel.engine.runner_setup import relocate_paths
    return relocate_paths(Config.fromfile(TINY_CONFIG), 'data/synthetic',
                          synthetic_root)


def build(cfg_model, **changes):
    from geopixel.registry import MODELS
    model_cfg = copy.deepcopy(cfg_model)
    model_cfg.update(changes)
    torch.manual_seed(0)
    return MODELS.build(model_cfg)


def batch_of(cfg, model, split='train', n=2, training=True):
    from geopixel.registry import DATASETS
    dataset = DATASETS.build(cfg[f'{split}_dataloader'].dataset)
    samples = [dataset[i] for i in range(n)]
    return model.data_preprocessor(pseudo_collate(samples), training)


@pytest.fixture(scope='module')
def cfg(synthetic_root):
    return tiny_cfg(synthetic_root)


@pytest.fixture(scope='module')
def model(cfg):
    return build(cfg.model)


def test_dimensions_come_from_the_components(model):
    assert model.vision_encoder.hidden_size == model.llm.hidden_size == 128
    assert model.seg_projector[0].in_features == 128
    assert model.seg_projector[2].out_features == \
        model.grounding_encoder.hidden_dim == 64
    assert model.mask_decoder.embed_dim == 64
    assert model.llm.llm.config.vocab_size == len(model.tokenizer)


def test_loss_mode_batch_of_two_with_padding(cfg, model):
    batch = batch_of(cfg, model, n=2)
    lengths = [len(ds.input_ids) for ds in batch['data_samples']]
    model.train()
    losses = model(**batch, mode='loss')
    assert set(losses) == {'loss_ce', 'loss_mask_bce', 'loss_mask_dice'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.requires_grad}
    assert all(g is not None for g in grads.values()), [
        n for n, g in grads.items() if g is None]
    assert model.mask_decoder.mask_decoder.conv_s0.weight.grad.abs().sum() > 0
    assert model.vision_encoder.projector[0].weight.grad.abs().sum() > 0
    assert lengths  # batch built from real samples
    model.zero_grad()


def test_loss_is_the_mean_over_masks_of_the_batch(cfg, model):
    batch = batch_of(cfg, model, n=2)
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
    for key in ('loss_mask_bce', 'loss_mask_dice'):
        expected = sum(s[key] * n for s, n in zip(single, counts)) / sum(
            counts)
        assert pair[key].item() == pytest.approx(expected.item(), rel=1e-4)


def test_predict_and_tensor_modes(cfg, model):
    model.eval()
    batch = batch_of(cfg, model, split='test', n=2, training=False)
    out = model(**batch, mode='predict')
    for ds in out:
        h, w = ds.ori_shape
        assert ds.pred_masks.shape == (1, h, w)  # teacher-forced: one [SEG]
        assert ds.pred_masks.dtype == torch.float32
    model.predict_mode = 'generate'
    model.generation_cfg['max_new_tokens'] = 4
    try:
        out = model(**batch, mode='predict')
    finally:
        model.predict_mode = 'teacher_forced'
    for ds in out:
        assert isinstance(ds.pred_text, str) and len(ds.pred_ids) <= 4
        # one mask per generated [SEG]
        assert ds.pred_masks.shape[0] == int(
            (ds.pred_ids == model.seg_token_id).sum())
    tensors = model(**batch, mode='tensor')
    assert tensors['logits'].shape[0] == 2
    assert [m.shape[0] for m in tensors['masks']] == [1, 1]


def test_mask_count_mismatch_is_named(cfg, model):
    batch = batch_of(cfg, model, n=1)
    ds = batch['data_samples'][0]
    ds.gt_masks = torch.cat([ds.gt_masks, ds.gt_masks])
    with pytest.raises(ValueError, match='1 \\[SEG\\] token\\(s\\) but 2'):
        model(**batch, mode='loss')


def one_step_changes_loss(model, batch, steps=3):
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
def test_one_line_swaps_build_and_train(cfg, swap):
    from geopixel.models.llms import FullLoRAAdapter
    model_cfg = copy.deepcopy(cfg.model)
    if swap == 'full_lora':
        model_cfg.llm.type = 'FullLoRAAdapter'
        model_cfg.llm.pop('plora')  # it has no partial LoRA to configure
    else:  # the pair is assigned together, as in geopixel_7b.py
        model_cfg.grounding_encoder, model_cfg.mask_decoder = SAM_V1
    model = build(model_cfg)
    if swap == 'full_lora':
        assert isinstance(model.llm, FullLoRAAdapter)
        assert not any('Plora' in n for n, _ in model.named_parameters())
    else:
        assert type(model.grounding_encoder).__name__ == 'SAMGroundingEncoder'
    batch = batch_of(cfg, model, n=2)
    first, after = one_step_changes_loss(model, batch)
    assert after < first


def test_partial_lora_config_trains(cfg, model):
    batch = batch_of(cfg, model, n=2)
    fresh = build(cfg.model)
    first, after = one_step_changes_loss(fresh, batch)
    assert after < first


def test_official_key_export_roundtrip(model):
    from geopixel.checkpoint import convert_official_state_dict
    from geopixel.checkpoint.official import PREFIX_TABLE
    # our names -> official names (reverse table) -> back to ours
    ours = {k: v for k, v in model.state_dict().items()
            if '.lora_' not in k}
    official = {}
    for key, value in ours.items():
        for old, new in PREFIX_TABLE:
            if key.replace('.base_layer.', '.').startswith(new):
                official[old + key.replace('.base_layer.', '.')[len(new):]] = \
                    value
                break
    back, dropped, unknown = convert_official_state_dict(
        official, model.state_dict().keys())
    assert not unknown and not dropped
    assert set(back) == {k for k in ours if k in back}
    assert len(back) == len(official)


def test_unmerged_training_output_is_merged():
    from geopixel.checkpoint import merge_unmerged_lora
    a = torch.randn(8, 4)
    b = torch.randn(6, 8)
    w = torch.randn(6, 4)
    state = {
        'base_model.model.model.layers.0.attention.wqkv.base_layer.weight': w,
        'base_model.model.model.layers.0.attention.wqkv.lora_A.default.weight':
        a,
        'base_model.model.model.layers.0.attention.wqkv.lora_B.default.weight':
        b,
    }
    merged = merge_unmerged_lora(state, scaling=2.0)
    assert list(merged) == ['model.layers.0.attention.wqkv.weight']
    torch.testing.assert_close(merged['model.layers.0.attention.wqkv.weight'],
                               w + b @ a * 2.0)
