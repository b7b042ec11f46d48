"""InternLM2, partial LoRA, the adapters' training policies and the cache."""
import pytest
import torch

from geopixel.models.llms import (FrozenLLMAdapter, FullLoRAAdapter,
                                  InternLM2Config, InternLM2ForCausalLM,
                                  PartialLoRAAdapter, PLoRALinear)

TINY = dict(vocab_size=50, hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, plora_rank=8, plora_alpha=8,
            plora_dropout=0.0)


def trainable(module):
    return {n for n, p in module.named_parameters() if p.requires_grad}


def test_plora_only_touches_image_rows():
    torch.manual_seed(0)
    layer = PLoRALinear(8, 6, rank=4, alpha=4, dropout=0.0)
    torch.nn.init.normal_(layer.Plora_B.weight)
    x = torch.randn(2, 5, 8)
    im = torch.zeros(2, 5, dtype=torch.bool)
    im[:, :2] = True
    out = layer(x, im)
    plain = torch.nn.functional.linear(x, layer.weight)
    assert torch.allclose(out[~im], plain[~im])
    delta = layer.Plora_B(layer.Plora_A(x[im])) * layer.lora_scaling
    assert torch.allclose(out[im], plain[im] + delta, atol=1e-6)
    # no image token: output unchanged, but the branch stays in the graph
    none = layer(x, torch.zeros_like(im))
    assert torch.allclose(none, plain)
    none.sum().backward()
    assert layer.Plora_A.weight.grad is not None


def test_wqkv_layout_is_grouped_per_kv_head():
    """Rows of wqkv: per KV group, [q x (heads/kv), k, v] head blocks."""
    cfg = InternLM2Config(**dict(TINY, use_plora=False))
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


def test_kv_cache_matches_full_forward():
    torch.manual_seed(0)
    adapter = FrozenLLMAdapter(llm_config=TINY).eval()
    prompt = torch.randn(1, 7, 32)
    im = torch.zeros(1, 7, dtype=torch.bool)
    im[0, 1:5] = True
    forced = [5, 9, 11, 3]
    gen = adapter.generate(prompt, im, eos_token_ids=[2], forced_ids=forced)
    assert gen['ids'].tolist() == forced
    full = torch.cat([prompt, adapter.embed_tokens(torch.tensor([forced]))],
                     dim=1)
    full_im = torch.cat([im, torch.zeros(1, 4, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        ref = adapter(full, im_mask=full_im)
    # the hidden state of each generated token at its own position
    torch.testing.assert_close(gen['hidden_states'],
                               ref['hidden_states'][0, 7:], rtol=1e-4,
                               atol=1e-5)
    torch.testing.assert_close(gen['prefill_last_logits'],
                               ref['logits'][0, 6], rtol=1e-4, atol=1e-5)


def test_greedy_generation_stops_at_eos():
    torch.manual_seed(0)
    adapter = FrozenLLMAdapter(llm_config=TINY).eval()
    with torch.no_grad():
        adapter.llm.output.weight.zero_()
        adapter.llm.output.weight[2] = 1.0  # always prefer EOS
    gen = adapter.generate(torch.randn(1, 4, 32), None, eos_token_ids=[2],
                           max_new_tokens=10)
    assert gen['ids'].tolist() == [2]
    assert gen['hidden_states'].shape == (0, 32)


def test_padding_does_not_change_unpadded_rows():
    torch.manual_seed(0)
    adapter = FrozenLLMAdapter(llm_config=TINY).eval()
    x = torch.randn(2, 6, 32)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    with torch.no_grad():
        batch = adapter(x, mask)['logits']
        alone = adapter(x[1:, :4])['logits']
    torch.testing.assert_close(batch[1, :4], alone[0], rtol=1e-4, atol=1e-5)


def test_training_policies():
    partial = PartialLoRAAdapter(llm_config=TINY)
    names = trainable(partial)
    assert 'llm.model.tok_embeddings.weight' in names
    assert 'llm.output.weight' in names
    assert any('.lora_A.default' in n for n in names)
    assert not any('Plora_' in n or 'norm' in n for n in names)
    assert not any(n.endswith('wqkv.base_layer.weight') for n in names)
    full = FullLoRAAdapter(llm_config=TINY)
    assert not any('Plora_' in n for n, _ in full.named_parameters())
    frozen = FrozenLLMAdapter(llm_config=TINY)
    assert trainable(frozen) == set()
    new_rows = FrozenLLMAdapter(llm_config=TINY, train_embeddings='new_rows',
                                vocab_size=50)
    assert trainable(new_rows) == {'llm.model.tok_embeddings.weight',
                                   'llm.output.weight'}


def test_new_rows_only_train_added_tokens(tmp_path):
    adapter = FrozenLLMAdapter(llm_config=TINY, train_embeddings='new_rows')
    adapter.num_base_tokens = 47  # pretend 3 tokens were added
    adapter._hook_new_rows()
    ids = torch.tensor([[1, 10, 48, 49]])
    out = adapter(adapter.embed_tokens(ids), labels=ids)
    out['loss'].backward()
    grad = adapter.llm.model.tok_embeddings.weight.grad
    assert grad[:47].abs().sum() == 0 and grad[48:].abs().sum() > 0
    assert adapter.llm.output.weight.grad[:47].abs().sum() == 0


def test_merge_and_unload_keeps_outputs():
    torch.manual_seed(0)
    adapter = PartialLoRAAdapter(llm_config=TINY).eval()
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            if '.lora_B.' in name or 'Plora_B' in name:
                p.normal_()
    x = torch.randn(1, 5, 32)
    im = torch.tensor([[True, True, False, False, False]])
    with torch.no_grad():
        before = adapter(x, im_mask=im)['logits']
        adapter.merge_and_unload()
        after = adapter(x, im_mask=im)['logits']
    torch.testing.assert_close(before, after, rtol=1e-4, atol=1e-5)
    assert not any('.lora_A.' in n for n in adapter.state_dict())


def test_resize_keeps_old_rows():
    model = InternLM2ForCausalLM(InternLM2Config(**TINY))
    old = model.model.tok_embeddings.weight.detach().clone()
    model.resize_token_embeddings(53)
    assert model.model.tok_embeddings.weight.shape == (53, 32)
    assert torch.equal(model.model.tok_embeddings.weight[:50], old)
    assert model.output.weight.shape == (53, 32)


def test_dynamic_ntk_only_beyond_max_positions():
    cfg = InternLM2Config(**dict(TINY, max_position_embeddings=16))
    rope = InternLM2ForCausalLM(cfg).model.rotary
    assert torch.equal(rope.inv_freq(16, 'cpu'), rope.inv_freq(8, 'cpu'))
    assert not torch.equal(rope.inv_freq(32, 'cpu'), rope.inv_freq(8, 'cpu'))


def test_gradient_checkpointing_same_gradients():
    torch.manual_seed(0)
    a = PartialLoRAAdapter(llm_config=dict(TINY), lora=None)
    b = PartialLoRAAdapter(llm_config=dict(TINY), lora=None)
    b.load_state_dict(a.state_dict())
    b.enable_gradient_checkpointing()
    ids = torch.randint(0, 50, (1, 6))
    for m in (a, b):
        m.train()
        m(m.embed_tokens(ids), labels=ids)['loss'].backward()
    torch.testing.assert_close(a.llm.output.weight.grad,
                               b.llm.output.weight.grad)


def test_bad_embedding_mode():
    with pytest.raises(ValueError):
        FrozenLLMAdapter(llm_config=TINY, train_embeddings='some')
