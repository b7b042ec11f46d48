"""LoRA merges use the scaling the run recorded (r, lora_alpha, rslora,
per-module patterns), for state dicts and modules alike; nothing assumes
the recipe's alpha 16 / r 8."""
import json

import pytest
import torch

from geopixel.checkpoint import (CheckpointError, load_official_checkpoint,
                                 lora_scaling, merge_unmerged_lora)
from geopixel.models.llms import FrozenLLMAdapter, FullLoRAAdapter
from tests.test_models.test_llms import TINY, randomise_deltas

# r != alpha / 2: the fixed scaling of 2.0 used before merged this wrongly
LORA_4_32 = dict(r=4, lora_alpha=32)


def adapter(lora):
    """Our InternLM2 with LoRA ``lora``, or without LoRA for None."""
    if lora is None:
        return FrozenLLMAdapter(llm_config=dict(TINY), use_plora=False).eval()
    return FullLoRAAdapter(llm_config=dict(TINY), lora=lora).eval()


def training_output(trained) -> dict:
    """The adapter's LM weights as a peft training output stores them."""
    return {f'base_model.model.{k}': v.clone()
            for k, v in trained.llm.state_dict().items()}


def logits(model, x):
    with torch.no_grad():
        return model(x)['logits']


@pytest.fixture
def trained():
    torch.manual_seed(0)
    model = adapter(LORA_4_32)
    randomise_deltas(model)
    return model


def test_state_dict_merge_with_r4_alpha32_equals_the_unmerged_forward(
        trained):
    x = torch.randn(1, 5, trained.hidden_size)
    merged = merge_unmerged_lora(training_output(trained), LORA_4_32)
    plain = adapter(None)
    plain.llm.load_state_dict(merged)
    torch.testing.assert_close(logits(plain, x), logits(trained, x),
                               rtol=1e-4, atol=1e-5)
    # the recipe's scaling (alpha 16 / r 8 = 2) would not: this is the bug
    wrong = merge_unmerged_lora(training_output(trained),
                                dict(r=4, lora_alpha=8))
    plain.llm.load_state_dict(wrong)
    assert not torch.allclose(logits(plain, x), logits(trained, x),
                              atol=1e-3)


def test_module_merge_uses_the_same_scaling(trained):
    x = torch.randn(1, 5, trained.hidden_size)
    before = logits(trained, x)
    merged = merge_unmerged_lora(training_output(trained), LORA_4_32)
    trained.merge_and_unload()
    torch.testing.assert_close(logits(trained, x), before, rtol=1e-4,
                               atol=1e-5)
    for key, value in trained.llm.state_dict().items():
        torch.testing.assert_close(value, merged[key], rtol=0, atol=1e-6)


def test_scaling_follows_the_configuration():
    assert lora_scaling(LORA_4_32, 'model.layers.0.attention.wqkv') == 8.0
    # peft's defaults where the configuration is silent (r 8, alpha 8)
    assert lora_scaling({}, 'x.wqkv') == 1.0
    rs = dict(r=16, lora_alpha=8, use_rslora=True)
    assert lora_scaling(rs, 'x.wqkv') == pytest.approx(2.0)
    patterns = dict(r=4, lora_alpha=8, rank_pattern={'wo': 2},
                    alpha_pattern={'layers.1.attention.wqkv': 32})
    assert lora_scaling(patterns, 'model.layers.0.attention.wo', 2) == 4.0
    assert lora_scaling(patterns, 'model.layers.1.attention.wqkv') == 8.0
    assert lora_scaling(patterns, 'model.layers.0.attention.wqkv') == 2.0
    with pytest.raises(ValueError, match='rank 8 but .* r=4'):
        lora_scaling(LORA_4_32, 'model.layers.0.attention.wqkv', 8)


def test_merge_refuses_without_or_against_the_configuration(trained):
    state = training_output(trained)
    with pytest.raises(ValueError, match='needs the LoRA configuration'):
        merge_unmerged_lora(state, None)
    with pytest.raises(ValueError, match='rank 4 but the LoRA configuration '
                       'says r=8'):
        merge_unmerged_lora(state, dict(r=8, lora_alpha=16))


class Released(torch.nn.Module):
    """The LM at geopixel's names (``llm.llm.*``), without LoRA."""

    def __init__(self, lora=None):
        super().__init__()
        self.llm = adapter(lora)


def test_loading_reads_adapter_config_beside_the_output(trained, tmp_path):
    x = torch.randn(1, 5, trained.hidden_size)
    path = tmp_path / 'pytorch_model.bin'
    torch.save(training_output(trained), path)
    with pytest.raises(CheckpointError, match='no LoRA configuration'):
        load_official_checkpoint(Released(), str(path))
    (tmp_path / 'adapter_config.json').write_text(json.dumps(
        dict(peft_type='LORA', r=4, lora_alpha=32,
             target_modules=['wqkv'])))
    model = Released()
    load_official_checkpoint(model, str(path))
    torch.testing.assert_close(logits(model.llm, x), logits(trained, x),
                               rtol=1e-4, atol=1e-5)
    # an explicit configuration wins; a contradicting one is refused
    with pytest.raises(CheckpointError, match='rank 4 but'):
        load_official_checkpoint(Released(), str(path),
                                 lora_config=dict(r=8, lora_alpha=16))
