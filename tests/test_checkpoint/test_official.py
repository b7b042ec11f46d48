"""geopixel.checkpoint.official: the key table from released GeoPixel /
IXC-2.5 / SAM2 names to geopixel's, LoRA merging, and loading."""
import pytest
import torch
from torch import nn

from geopixel.checkpoint import (CheckpointError, convert_official_state_dict,
                                 load_official_checkpoint,
                                 merge_unmerged_lora)
from geopixel.checkpoint.official import DROP_PATTERNS, PREFIX_TABLE

# one released key per table row and the geopixel key it must land on
# (the table in geopixel/checkpoint/official.py's docstring)
MAPPED = [
    ('vit.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight',
     'vision_encoder.vit.encoder.layers.0.mlp.fc1.weight'),
    ('vision_proj.0.weight', 'vision_encoder.projector.0.weight'),
    ('plora_glb_GN', 'vision_encoder.glb_GN'),
    ('plora_sub_GN', 'vision_encoder.sub_GN'),
    ('model.visual_model.image_encoder.trunk.pos_embed',
     'grounding_encoder.image_encoder.trunk.pos_embed'),
    ('model.visual_model.no_mem_embed', 'grounding_encoder.no_mem_embed'),
    ('model.visual_model.sam_prompt_encoder.no_mask_embed.weight',
     'mask_decoder.prompt_encoder.no_mask_embed.weight'),
    ('model.visual_model.sam_mask_decoder.iou_token.weight',
     'mask_decoder.mask_decoder.iou_token.weight'),
    ('model.text_hidden_fcs.0.2.bias', 'seg_projector.2.bias'),
    ('model.tok_embeddings.weight', 'llm.llm.model.tok_embeddings.weight'),
    ('model.layers.3.attention.wqkv.Plora_A.weight',
     'llm.llm.model.layers.3.attention.wqkv.Plora_A.weight'),
    ('model.norm.weight', 'llm.llm.model.norm.weight'),
    ('output.weight', 'llm.llm.output.weight'),
]
# keys left out on purpose: IXC-2.5's unused adapters, SAM2's video memory
DROPPED = [
    'model.layers.0.attention.wqkv.lora_sft_A.weight',
    'model.layers.0.feed_forward.w1.lora_dpo_B.weight',
    'model.layers.1.attention.wo.lora_web_A.weight',
    'model.visual_model.memory_attention.layers.0.norm1.weight',
    'model.visual_model.memory_encoder.out_proj.weight',
    'model.visual_model.mask_downsample.weight',
    'model.visual_model.maskmem_tpos_enc',
    'model.visual_model.no_mem_pos_enc',
    'model.visual_model.no_obj_ptr',
    'model.visual_model.obj_ptr_proj.layers.0.weight',
    'model.visual_model.obj_ptr_tpos_proj.weight',
    'vit.vision_tower.vision_model.embeddings.position_ids',
]


def test_every_table_row_maps_its_released_key():
    untested = [old for old, _ in PREFIX_TABLE
                if not any(key.startswith(old) for key, _ in MAPPED)]
    assert not untested, f'table rows without an example here: {untested}'
    state = {key: torch.zeros(1) for key, _ in MAPPED}
    converted, dropped, unknown = convert_official_state_dict(
        state, [ours for _, ours in MAPPED])
    assert sorted(converted) == sorted(ours for _, ours in MAPPED)
    assert dropped == [] and unknown == []


def test_every_drop_pattern_drops_and_unknown_keys_are_reported():
    assert all(any(p.search(k) for k in DROPPED) for p in DROP_PATTERNS)
    unknown_keys = ['model.visual_model.sam_new_head.weight', 'lm_head.bias']
    state = {k: torch.zeros(1) for k in DROPPED + unknown_keys}
    converted, dropped, unknown = convert_official_state_dict(state, [])
    assert converted == {}
    assert dropped == DROPPED and unknown == unknown_keys


def test_keys_follow_wrappers_and_layouts_of_the_target():
    """A peft LoRA wrapper moves X.weight to X.base_layer.weight (and the
    partial LoRA under it); older transformers nest CLIP under
    ``vision_model.``; without such a target the name stays."""
    wqkv = 'llm.llm.model.layers.0.attention.wqkv'
    clip = 'vision_encoder.vit.vision_model.encoder.layers.0.mlp.fc1.weight'
    targets = [f'{wqkv}.base_layer.weight',
               f'{wqkv}.base_layer.Plora_A.weight', clip]
    state = {
        'model.layers.0.attention.wqkv.weight': torch.zeros(1),
        'model.layers.0.attention.wqkv.Plora_A.weight': torch.zeros(1),
        'vit.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight':
        torch.zeros(1),
        'model.norm.weight': torch.zeros(1),
    }
    converted, _, _ = convert_official_state_dict(state, targets)
    assert sorted(converted) == sorted(targets +
                                       ['llm.llm.model.norm.weight'])


def test_released_layout_uses_every_table_row(parity_dir):
    """The official tiny checkpoint (real key names) needs every row."""
    import os.path as osp

    from safetensors import safe_open
    path = osp.join(parity_dir, 'checkpoint', 'model.safetensors')
    with safe_open(path, framework='pt') as f:
        keys = list(f.keys())
    for old, _ in PREFIX_TABLE:
        assert any(k.startswith(old) for k in keys), old


def lora_state(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    prefix = 'base_model.model.model.layers.0'
    state = {}
    for module in ('attention.wqkv', 'feed_forward.w2'):
        state[f'{prefix}.{module}.base_layer.weight'] = torch.randn(
            6, 4, generator=gen).to(dtype)
        state[f'{prefix}.{module}.lora_A.default.weight'] = torch.randn(
            8, 4, generator=gen).to(dtype)
        state[f'{prefix}.{module}.lora_B.default.weight'] = torch.randn(
            6, 8, generator=gen).to(dtype)
    state[f'{prefix}.attention_norm.weight'] = torch.ones(4, dtype=dtype)
    return state


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_unmerged_training_output_is_merged(dtype):
    """W + B @ A * scale for every LoRA module, in the base weight's dtype;
    other keys lose only the peft prefix."""
    state = lora_state(dtype)
    merged = merge_unmerged_lora(state, dict(r=8, lora_alpha=16))
    layer = 'model.layers.0'
    assert sorted(merged) == sorted([
        f'{layer}.attention.wqkv.weight', f'{layer}.feed_forward.w2.weight',
        f'{layer}.attention_norm.weight'
    ])
    for module in ('attention.wqkv', 'feed_forward.w2'):
        old = f'base_model.model.{layer}.{module}'
        w, a, b = (state[f'{old}.{k}'].float()
                   for k in ('base_layer.weight', 'lora_A.default.weight',
                             'lora_B.default.weight'))
        result = merged[f'{layer}.{module}.weight']
        assert result.dtype == dtype
        torch.testing.assert_close(result, (w + b @ a * 2.0).to(dtype))
    assert torch.equal(merged[f'{layer}.attention_norm.weight'],
                       state[f'base_model.model.{layer}.attention_norm.'
                             'weight'])


def test_conversion_merges_an_unmerged_training_output_first():
    state = lora_state()
    recipe = dict(r=8, lora_alpha=16)
    converted, _, unknown = convert_official_state_dict(state, [], recipe)
    assert unknown == []
    merged = merge_unmerged_lora(state, recipe)
    for key, value in merged.items():
        assert torch.equal(converted['llm.llm.' + key], value)


class Released(nn.Module):
    """Modules at geopixel's names: a vision projector, token embeddings
    and output rows, and a [SEG] projector under a peft LoRA wrapper."""

    def __init__(self, vocab=6):
        super().__init__()
        self.vision_encoder = nn.ModuleDict(dict(projector=nn.Linear(4, 3)))
        self.llm = nn.ModuleDict(dict(llm=nn.ModuleDict(dict(
            model=nn.ModuleDict(dict(tok_embeddings=nn.Embedding(vocab, 3))),
            output=nn.Linear(3, vocab, bias=False)))))
        self.seg_projector = nn.ModuleDict(dict(
            base_layer=nn.Linear(3, 2),
            lora_A=nn.ModuleDict(dict(default=nn.Linear(3, 1, bias=False))),
            lora_B=nn.ModuleDict(dict(default=nn.Linear(1, 2, bias=False)))))


def released_checkpoint(path, vocab=6, dtype=torch.bfloat16, **extra):
    from safetensors.torch import save_file
    gen = torch.Generator().manual_seed(1)
    state = {
        'vision_proj.weight': torch.randn(3, 4, generator=gen),
        'vision_proj.bias': torch.randn(3, generator=gen),
        'model.tok_embeddings.weight': torch.randn(vocab, 3, generator=gen),
        'output.weight': torch.randn(vocab, 3, generator=gen),
        'model.text_hidden_fcs.0.weight': torch.randn(2, 3, generator=gen),
        'model.text_hidden_fcs.0.bias': torch.randn(2, generator=gen),
        'model.layers.0.attention.wqkv.lora_sft_A.weight': torch.zeros(1),
    }
    state.update(extra)
    state = {k: v.to(dtype) for k, v in state.items()}
    save_file(state, str(path))
    return str(path), state


def test_released_checkpoint_loads_strictly(tmp_path):
    path, state = released_checkpoint(tmp_path / 'model.safetensors')
    model = Released()
    report = load_official_checkpoint(model, path)
    # the merged release has no LoRA weights: not missing
    assert report == dict(
        missing=[], unexpected=[], unknown=[],
        dropped=['model.layers.0.attention.wqkv.lora_sft_A.weight'])
    loaded = model.state_dict()
    assert loaded['seg_projector.base_layer.weight'].dtype == torch.float32
    for old, ours in [('vision_proj.weight', 'vision_encoder.projector.'
                       'weight'),
                      ('model.text_hidden_fcs.0.weight',
                       'seg_projector.base_layer.weight'),
                      ('output.weight', 'llm.llm.output.weight')]:
        assert torch.equal(loaded[ours], state[old].float()), ours


def test_unknown_or_missing_keys_raise_when_strict_and_load_nothing(
        tmp_path):
    path, _ = released_checkpoint(tmp_path / 'model.safetensors',
                                  **{'lm_head.weight': torch.zeros(1)})
    model = Released()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="unknown keys "
                       "\\['lm_head.weight'\\]"):
        load_official_checkpoint(model, path)
    for key, value in model.state_dict().items():  # not half-loaded
        assert torch.equal(value, before[key]), key
    report = load_official_checkpoint(Released(), path, strict=False)
    assert report['unknown'] == ['lm_head.weight']

    model = Released()
    model.vision_encoder['extra'] = nn.Linear(1, 1)
    with pytest.raises(CheckpointError,
                       match=r'missing keys 2 \(vision_encoder.extra.weight'):
        load_official_checkpoint(model, path)


def test_shape_mismatch_names_the_key_and_loads_nothing(tmp_path):
    path, _ = released_checkpoint(tmp_path / 'model.safetensors', vocab=4)
    model = Released(vocab=6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r'tok_embeddings.weight has shape '
                       r'\(4, 3\) in the checkpoint but \(6, 3\)'):
        load_official_checkpoint(model, path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_grow_vocab_fills_the_first_rows_and_keeps_the_new_ones(tmp_path):
    """IXC-2.5 (fewer rows) into a vocabulary grown for GeoPixel's
    tokens."""
    path, state = released_checkpoint(tmp_path / 'model.safetensors',
                                      vocab=4)
    model = Released(vocab=6)
    new_rows = model.llm.llm.output.weight[4:].detach().clone()
    load_official_checkpoint(model, path, grow_vocab=True)
    for old, ours in [('model.tok_embeddings.weight',
                       model.llm.llm.model.tok_embeddings.weight),
                      ('output.weight', model.llm.llm.output.weight)]:
        assert torch.equal(ours[:4], state[old].float()), old
    assert torch.equal(model.llm.llm.output.weight[4:], new_rows)


def test_tiny_geopixel_keys_round_trip_through_the_table(synthetic_root):
    """Every key of the tiny GeoPixel written under its released name
    converts back to itself. The decoder's locator and the [SEG] words
    head are ours and have no released name, so the model is built without
    them here."""
    pytest.importorskip('sam2')
    from geopixel.testing import tiny_model, tiny_model_cfg
    cfg = tiny_model_cfg(synthetic_root)
    cfg['mask_decoder']['locator'] = False
    cfg['seg_words_head'] = None
    model = tiny_model(cfg)
    ours = {k: v for k, v in model.state_dict().items()
            if '.lora_' not in k}
    reverse = {new: old for old, new in PREFIX_TABLE}
    official = {}
    for key, value in ours.items():
        plain = key.replace('.base_layer.', '.')
        new = next(n for n in reverse if plain.startswith(n))
        official[reverse[new] + plain[len(new):]] = value
    back, dropped, unknown = convert_official_state_dict(
        official, model.state_dict().keys())
    assert not unknown and not dropped
    assert sorted(back) == sorted(ours)
