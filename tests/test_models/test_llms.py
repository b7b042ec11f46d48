"""InternLM2, partial LoRA, the adapters' training policy and the cache.

The policy lives in BaseLLMAdapter; it is checked on our InternLM2 and on
the tiny Llama adapter of geopixel.testing, which implements only the LM's
build, key map, embeddings and forward pass.
"""
import os.path as osp

import pytest
import torch
from torch import nn

from geopixel.checkpoint import CheckpointError
from geopixel.models.llms import (BaseLLMAdapter, FrozenLLMAdapter,
                                  FullFineTuneAdapter, FullLoRAAdapter,
                                  InternLM2Config,
                                  InternLM2ForCausalLM, PartialLoRAAdapter,
                                  PLoRALinear, wrap_partial_lora)
from geopixel.registry import LLM_ADAPTERS
from geopixel.testing.llm_adapters import TinyLlamaAdapter

TINY = dict(vocab_size=50, hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2)
TINY_PLORA = dict(rank=8, alpha=8, dropout=0.0)
SMALL_LORA = dict(r=4, lora_alpha=8)
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def trainable(module):
    return {n for n, p in module.named_parameters() if p.requires_grad}


def internlm2(cls=PartialLoRAAdapter, **kwargs):
    if cls is not FullLoRAAdapter:
        kwargs.setdefault('plora', TINY_PLORA)
    if 'checkpoint' not in kwargs:
        kwargs['llm_config'] = dict(TINY, **kwargs.get('llm_config', {}))
    return cls(**kwargs)


def llama(**kwargs):
    return TinyLlamaAdapter(use_plora=True, lora=SMALL_LORA, **kwargs)


ADAPTERS = dict(internlm2=internlm2, llama=llama)


def randomise_deltas(adapter):
    """LoRA and partial LoRA start at zero delta; make them count."""
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            if '.lora_B.' in name or 'Plora_B' in name:
                p.normal_(std=0.1)


def with_deltas(kind):
    """A seeded adapter in eval mode whose LoRA and partial LoRA count."""
    torch.manual_seed(0)
    adapter = ADAPTERS[kind]().eval()
    randomise_deltas(adapter)
    return adapter


def image_mask(length, start, stop):
    im = torch.zeros(1, length, dtype=torch.bool)
    im[0, start:stop] = True
    return im


# -- partial LoRA -----------------------------------------------------------
def test_plora_only_touches_image_rows():
    torch.manual_seed(0)
    layer = PLoRALinear(nn.Linear(8, 6, bias=False), rank=4, alpha=4)
    torch.nn.init.normal_(layer.Plora_B.weight)
    x = torch.randn(2, 5, 8)
    im = torch.zeros(2, 5, dtype=torch.bool)
    im[:, :2] = True
    layer.im_mask = im
    out = layer(x)
    plain = torch.nn.functional.linear(x, layer.weight)
    assert torch.allclose(out[~im], plain[~im])
    delta = layer.Plora_B(layer.Plora_A(x[im])) * layer.lora_scaling
    assert torch.allclose(out[im], plain[im] + delta, atol=1e-6)
    # no image token: output unchanged, but the branch stays in the graph
    layer.im_mask = torch.zeros_like(im)
    none = layer(x)
    assert torch.allclose(none, plain)
    none.sum().backward()
    assert layer.Plora_A.weight.grad is not None


def test_wrapping_keeps_the_weights_and_their_names():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    weight, bias = model[2].weight, model[2].bias
    assert wrap_partial_lora(model, ['2'], rank=2, alpha=2) == 1
    assert isinstance(model[2], PLoRALinear) and not isinstance(
        model[0], PLoRALinear)
    assert model[2].weight is weight and model[2].bias is bias
    assert set(model.state_dict()) == {
        '0.weight', '0.bias', '2.weight', '2.bias', '2.Plora_A.weight',
        '2.Plora_B.weight'}
    with pytest.raises(ValueError, match='no nn.Linear'):
        wrap_partial_lora(model, ['attention.wqkv'], rank=2, alpha=2)


# -- InternLM2 itself ---------------------------------------------------------
def test_wqkv_layout_is_grouped_per_kv_head():
    """Rows of wqkv: per KV group, [q x (heads/kv), k, v] head blocks."""
    cfg = InternLM2Config(**TINY)
    model = InternLM2ForCausalLM(cfg)
    attn = model.model.layers[0].attention
    d, groups = cfg.head_dim, cfg.num_attention_heads // \
        cfg.num_key_value_heads
    x = torch.randn(1, 3, cfg.hidden_size)
    qkv = attn.wqkv(x).view(1, 3, cfg.num_key_value_heads, groups + 2, d)
    w = attn.wqkv.weight.view(cfg.num_key_value_heads, groups + 2, d, -1)
    k_rows = w[:, -2].reshape(-1, cfg.hidden_size)
    assert torch.allclose(qkv[..., -2, :].reshape(1, 3, -1),
                          x @ k_rows.T, atol=1e-6)


def test_dynamic_ntk_only_beyond_max_positions():
    cfg = InternLM2Config(**dict(TINY, max_position_embeddings=16))
    rope = InternLM2ForCausalLM(cfg).model.rotary
    assert torch.equal(rope.inv_freq(16, 'cpu'), rope.inv_freq(8, 'cpu'))
    assert not torch.equal(rope.inv_freq(32, 'cpu'), rope.inv_freq(8, 'cpu'))


def test_unknown_llm_config_field_is_an_error():
    # partial LoRA moved to the adapter's ``plora``: the old spelling fails
    with pytest.raises(TypeError, match='plora_rank'):
        FrozenLLMAdapter(llm_config=dict(TINY, plora_rank=8))


# -- the shared interface, on both LMs ---------------------------------------
@pytest.mark.parametrize('kind', ADAPTERS)
def test_kv_cache_matches_full_forward(kind):
    adapter = with_deltas(kind)
    width = adapter.hidden_size
    prompt = torch.randn(1, 7, width)
    im = image_mask(7, 1, 5)
    forced = [5, 9, 11, 3]
    gen = adapter.generate(prompt, im, eos_token_ids=[2], forced_ids=forced)
    assert gen['ids'][0].tolist() == forced
    full = torch.cat([prompt, adapter.embed_tokens(torch.tensor([forced]))],
                     dim=1)
    full_im = torch.cat([im, torch.zeros(1, 4, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        ref = adapter(full, im_mask=full_im)
    # the hidden state of each generated token at its own position
    torch.testing.assert_close(gen['hidden_states'][0],
                               ref['hidden_states'][0, 7:], rtol=1e-4,
                               atol=1e-5)
    torch.testing.assert_close(gen['prefill_last_logits'][0],
                               ref['logits'][0, 6], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('kind', ADAPTERS)
def test_greedy_generation_stops_at_eos(kind):
    torch.manual_seed(0)
    adapter = ADAPTERS[kind]().eval()
    head = adapter.output_embeddings()
    with torch.no_grad():
        head.weight.zero_()
    head.bias = nn.Parameter(torch.zeros(head.out_features))
    with torch.no_grad():
        head.bias[2] = 1.0  # always prefer EOS
    gen = adapter.generate(torch.randn(1, 4, adapter.hidden_size), None,
                           eos_token_ids=[2], max_new_tokens=10)
    assert gen['ids'][0].tolist() == [2]
    assert gen['hidden_states'][0].shape == (0, adapter.hidden_size)


@pytest.mark.parametrize('kind', ADAPTERS)
def test_padding_does_not_change_unpadded_rows(kind):
    torch.manual_seed(0)
    adapter = ADAPTERS[kind]().eval()
    x = torch.randn(2, 6, adapter.hidden_size)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    with torch.no_grad():
        batch = adapter(x, mask)['logits']
        alone = adapter(x[1:, :4])['logits']
    torch.testing.assert_close(batch[1, :4], alone[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('kind', ADAPTERS)
def test_partial_lora_changes_image_positions_only(kind):
    adapter = with_deltas(kind)
    x = torch.randn(1, 7, adapter.hidden_size)
    with torch.no_grad():
        with_images = adapter(x, im_mask=image_mask(7, 2, 5))['hidden_states']
        text_only = adapter(x, im_mask=None)['hidden_states']
    # causal: positions before the first image token cannot see the delta
    torch.testing.assert_close(with_images[0, :2], text_only[0, :2])
    assert (with_images[0, 2:5] - text_only[0, 2:5]).abs().amin(-1).gt(
        0).all()


@pytest.mark.parametrize('kind', ADAPTERS)
def test_merge_and_unload_keeps_outputs(kind):
    adapter = with_deltas(kind)
    x = torch.randn(1, 5, adapter.hidden_size)
    im = image_mask(5, 0, 2)
    with torch.no_grad():
        before = adapter(x, im_mask=im)['logits']
        adapter.merge_and_unload()
        after = adapter(x, im_mask=im)['logits']
    torch.testing.assert_close(before, after, rtol=1e-4, atol=1e-5)
    assert not any('.lora_' in n for n in adapter.state_dict())
    assert any('Plora_A' in n for n in adapter.state_dict())
    embeddings = {n for n, p in adapter.named_parameters()
                  if p is adapter.input_embeddings().weight
                  or p is adapter.output_embeddings().weight}
    assert trainable(adapter) == embeddings


@pytest.mark.parametrize('kind', ADAPTERS)
def test_gradient_checkpointing_same_gradients(kind):
    torch.manual_seed(0)
    a = ADAPTERS[kind]()
    b = ADAPTERS[kind]()
    b.load_state_dict(a.state_dict())
    b.enable_gradient_checkpointing()
    ids = torch.randint(0, 50, (1, 6))
    im = image_mask(6, 1, 3)
    for m in (a, b):
        m.train()
        m(m.embed_tokens(ids), im_mask=im, labels=ids)['loss'].backward()
    torch.testing.assert_close(a.output_embeddings().weight.grad,
                               b.output_embeddings().weight.grad)


# -- the training policy -----------------------------------------------------
def test_training_policies():
    partial = internlm2()
    names = trainable(partial)
    assert 'llm.model.tok_embeddings.weight' in names
    assert 'llm.output.weight' in names
    assert any('.lora_A.default' in n for n in names)
    assert not any('Plora_' in n or 'norm' in n for n in names)
    assert not any(n.endswith('wqkv.base_layer.weight') for n in names)
    assert {n for n in names if 'lora' in n} == {
        n for n, _ in partial.named_parameters()
        if '.lora_A.' in n or '.lora_B.' in n}
    plora = internlm2(train_plora=True)
    assert trainable(plora) - names == {
        n for n, _ in plora.named_parameters() if 'Plora_' in n}
    full = internlm2(FullLoRAAdapter)
    assert not any('Plora_' in n for n, _ in full.named_parameters())
    frozen = internlm2(FrozenLLMAdapter)
    assert trainable(frozen) == set()
    new_rows = internlm2(FrozenLLMAdapter, train_embeddings='new_rows')
    assert trainable(new_rows) == {'llm.model.tok_embeddings.weight',
                                   'llm.output.weight'}
    everything = internlm2(FullFineTuneAdapter)
    assert trainable(everything) == {
        n for n, _ in everything.named_parameters()}
    assert any('Plora_' in n for n in trainable(everything))
    assert not any('.lora_A.' in n for n in trainable(everything))


@pytest.mark.parametrize('build,match', [
    (lambda: internlm2(FrozenLLMAdapter, lora=SMALL_LORA), 'trains no LoRA'),
    (lambda: internlm2(FrozenLLMAdapter, train_plora=True),
     'trains no LoRA'),
    (lambda: internlm2(FrozenLLMAdapter, train_embeddings='full'),
     'new token rows'),
    (lambda: internlm2(FullLoRAAdapter, use_plora=True), 'no partial LoRA'),
    (lambda: internlm2(FullLoRAAdapter, lora=None), 'needs a LoRA'),
    (lambda: internlm2(FullLoRAAdapter, plora=TINY_PLORA),
     'need use_plora'),
    (lambda: internlm2(FullLoRAAdapter, train_plora=True), 'need use_plora'),
    (lambda: internlm2(use_plora=False), 'always uses partial LoRA'),
    (lambda: internlm2(FullFineTuneAdapter, lora=SMALL_LORA),
     'trains every weight'),
    (lambda: internlm2(FullFineTuneAdapter, train_embeddings='new_rows'),
     'embeddings in full'),
    (lambda: internlm2(train_embeddings='some'), 'train_embeddings'),
    (lambda: internlm2(plora=dict(r=8)), 'plora needs exactly'),
], ids=['frozen+lora', 'frozen+train_plora', 'frozen+full_embeddings',
        'full+use_plora', 'full-lora', 'full+plora', 'full+train_plora',
        'partial-use_plora', 'fullft+lora', 'fullft+new_rows',
        'bad_embedding_mode', 'bad_plora_field'])
def test_contradictory_arguments_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize('kind', ADAPTERS)
def test_new_rows_only_train_added_tokens(kind):
    """Rows added after construction (a bigger tokenizer) learn; the
    rows the LM came with get a zero gradient."""
    adapter = ADAPTERS[kind](train_embeddings='new_rows')
    base = adapter.num_base_tokens
    adapter.resize_token_embeddings(base + 3)
    ids = torch.tensor([[1, 10, base + 1, base + 2]])
    out = adapter(adapter.embed_tokens(ids), labels=ids)
    out['loss'].backward()
    for layer in (adapter.input_embeddings(), adapter.output_embeddings()):
        assert layer.weight.shape[0] == base + 3
        grad = layer.weight.grad
        assert grad[:base].abs().sum() == 0
        assert grad[base + 1:].abs().sum() > 0


def test_resize_keeps_old_rows_and_tied_layers():
    adapter = internlm2(FrozenLLMAdapter)
    old = adapter.input_embeddings().weight.detach().clone()
    adapter.resize_token_embeddings(53)
    assert adapter.input_embeddings().weight.shape == (53, 32)
    assert torch.equal(adapter.input_embeddings().weight[:50], old)
    assert adapter.output_embeddings().weight.shape == (53, 32)
    assert adapter.llm.config.vocab_size == 53
    tied = TinyLlamaAdapter(llm_config=dict(tie_word_embeddings=True))
    tied.resize_token_embeddings(70)
    assert tied.output_embeddings().weight is \
        tied.input_embeddings().weight
    assert tied.output_embeddings().weight.shape == (70, 64)


@pytest.mark.parametrize('train_plora', [False, True])
def test_llama_trains_one_step_with_partial_lora(train_plora):
    """The acceptance demo: another LM, partial LoRA + LoRA, one AdamW
    step; exactly the policy's parameters move."""
    torch.manual_seed(0)
    adapter = llama(train_plora=train_plora).train()
    randomise_deltas(adapter)  # so that every LoRA A gets a gradient
    policy = trainable(adapter)
    assert any('Plora_' in n for n in policy) == train_plora
    assert any('.lora_A.' in n for n in policy)
    assert 'llm.model.embed_tokens.weight' in policy
    assert not any('norm' in n or n.endswith('proj.base_layer.weight')
                   for n in policy)
    before = {n: p.detach().clone() for n, p in adapter.named_parameters()}
    optim = torch.optim.AdamW(
        [p for p in adapter.parameters() if p.requires_grad], lr=1e-2,
        weight_decay=0.0)
    ids = torch.randint(0, 64, (2, 8))
    im = torch.zeros(2, 8, dtype=torch.bool)
    im[:, 1:4] = True
    loss = adapter(adapter.embed_tokens(ids), im_mask=im, labels=ids)['loss']
    assert torch.isfinite(loss)
    loss.backward()
    optim.step()
    changed = {n for n, p in adapter.named_parameters()
               if not torch.equal(p, before[n])}
    assert changed == policy


def test_llama_adapter_implements_only_the_lm_specific_hooks():
    own = {name for name, value in vars(TinyLlamaAdapter).items()
           if callable(value) and not name.startswith('__')}
    assert own == {'build_model', 'checkpoint_state', 'input_embeddings',
                   'output_embeddings', 'lm_forward'}
    assert LLM_ADAPTERS.get('TinyLlamaAdapter') is TinyLlamaAdapter


def test_llama_checkpoint_loads_with_fresh_partial_lora(tmp_path):
    torch.manual_seed(0)
    source = TinyLlamaAdapter()
    source.llm.save_pretrained(str(tmp_path))
    loaded = llama(checkpoint=str(tmp_path), vocab_size=70)
    state = loaded.llm.state_dict()
    for name, value in source.llm.state_dict().items():
        mine = name.replace('_proj.weight', '_proj.base_layer.weight')
        if name.endswith(('embed_tokens.weight', 'lm_head.weight')):
            torch.testing.assert_close(state[mine][:64], value)
        else:
            torch.testing.assert_close(state[mine], value)
    assert loaded.num_base_tokens == 64
    with pytest.raises(CheckpointError, match='mismatched'):
        TinyLlamaAdapter(checkpoint=str(tmp_path),
                         llm_config=dict(intermediate_size=96))


def test_internlm2_folder_loads_with_its_partial_lora(tmp_path):
    """An IXC-2.5-style folder: config.json plus weights under the
    released names, Plora_A/B included; ``llm_config`` overrides the
    folder's config, and a weight the model lacks is a named error."""
    import json

    from safetensors.torch import save_file
    torch.manual_seed(0)
    source = internlm2(FrozenLLMAdapter)
    randomise_deltas(source)
    state = {k: v.contiguous() for k, v in source.llm.state_dict().items()}
    (tmp_path / 'config.json').write_text(
        json.dumps(dict(TINY, architectures=['InternLM2'])))
    save_file(state, str(tmp_path / 'model.safetensors'))
    loaded = internlm2(FrozenLLMAdapter, llm_config=dict(rms_norm_eps=1e-3),
                       checkpoint=str(tmp_path))
    for key, value in loaded.llm.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert loaded.llm.config.rms_norm_eps == 1e-3
    state['model.layers.2.attention.wo.weight'] = torch.zeros(32, 32)
    save_file(state, str(tmp_path / 'model.safetensors'))
    with pytest.raises(CheckpointError, match='unexpected keys 1 '
                       '\\(model.layers.2'):
        internlm2(FrozenLLMAdapter, checkpoint=str(tmp_path))


def test_llm_adapter_base_enforces_its_abstract_methods():

    class NoForward(TinyLlamaAdapter):
        lm_forward = BaseLLMAdapter.lm_forward

    with pytest.raises(TypeError, match='lm_forward'):
        NoForward()


def test_geopixel_builds_and_trains_with_the_llama_adapter(synthetic_root):
    """The composite talks to its LLM only through the base interface."""
    pytest.importorskip('sam2')
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from geopixel.engine.runner_setup import relocate_paths
    from geopixel.registry import DATASETS, MODELS
    cfg = relocate_paths(
        Config.fromfile(osp.join(REPO, 'configs', 'geopixel',
                                 'rrsis_tiny.py')), 'data/synthetic',
        synthetic_root)
    cfg.model.llm = dict(type=TinyLlamaAdapter, use_plora=True,
                         lora=SMALL_LORA)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert model.vision_encoder.hidden_size == model.llm.hidden_size == 64
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = model.data_preprocessor(
        pseudo_collate([dataset[0], dataset[1]]), True)
    model.train()
    losses = model(**batch, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.llm.parameters()
               if p.requires_grad)
