"""Chat template, tokenization and label masking against the fixtures."""
import json
import os.path as osp

import pytest
from safetensors.torch import load_file

from geopixel.datasets.chat import (
    INTERNLM2_CHAT,
    exact_labels,
    normalise_turns,
    official_labels,
)
from geopixel.structures import IGNORE_INDEX
from geopixel.utils import BadRecordError


@pytest.fixture(scope='module')
def train_fixture(parity_dir):
    with open(osp.join(parity_dir, 'train.json')) as f:
        meta = json.load(f)
    return meta, load_file(osp.join(parity_dir, 'train_outputs.safetensors'))


@pytest.fixture(scope='module')
def sample_record(geopixeld_sample_dir):
    with open(osp.join(geopixeld_sample_dir, 'GeoPixelD.json')) as f:
        return json.load(f)[0]


def test_render_matches_official_conversation_text(train_fixture,
                                                   sample_record):
    meta, _ = train_fixture
    turns = normalise_turns(sample_record['conversations'])
    assert INTERNLM2_CHAT.render(turns) == meta['conversation_text']


def test_ids_and_official_labels_match(train_fixture, sample_record,
                                       parity_tokenizer):
    meta, tensors = train_fixture
    tok = parity_tokenizer
    text = INTERNLM2_CHAT.render(normalise_turns(
        sample_record['conversations']))
    ids = tok.encode(text)
    n_image = meta['num_image_tokens']
    # training puts the image first, then BOS and the text
    assert ids == tensors['wrap_tokens'][n_image:].tolist()
    assert len(ids) + n_image == meta['sequence_length']
    labels = official_labels(ids, tok.token_id('[UNUSED_TOKEN_145]'),
                             tok.eos_token_id)
    assert labels == tensors['labels'][n_image:].tolist()
    assert sum(label != IGNORE_INDEX for label in labels) == \
        meta['num_supervised_labels']
    seg_id = tok.token_id('[SEG]')
    seg = [i + n_image for i, t in enumerate(ids) if t == seg_id]
    assert seg == meta['seg_positions']


def test_exact_labels_supervise_the_first_answer_token(sample_record,
                                                       parity_tokenizer):
    tok = parity_tokenizer
    text = INTERNLM2_CHAT.render(normalise_turns(
        sample_record['conversations']))
    ids = tok.encode(text)
    official = official_labels(ids, tok.token_id('[UNUSED_TOKEN_145]'),
                               tok.eos_token_id)
    exact = exact_labels(ids, tok.token_id('[UNUSED_TOKEN_146]'),
                         tok.token_id('[UNUSED_TOKEN_145]'), tok.eos_token_id,
                         tok.encode(INTERNLM2_CHAT.assistant_prefix, False))
    differing = [i for i, (a, b) in enumerate(zip(official, exact)) if a != b]
    assert len(differing) == 1
    assert exact[differing[0]] == ids[differing[0]]  # "The"
    assert official[differing[0]] == IGNORE_INDEX


def test_multi_turn_and_truncated_labels(parity_tokenizer):
    tok = parity_tokenizer
    turns = [('user', 'Q one?'), ('assistant', 'A one.'),
             ('user', 'Q two?'), ('assistant', 'A two.')]
    ids = tok.encode(INTERNLM2_CHAT.render(turns))
    eot, eos = tok.token_id('[UNUSED_TOKEN_145]'), tok.eos_token_id
    labels = official_labels(ids, eot, eos)
    supervised = tok.decode([t for t in labels if t != IGNORE_INDEX])
    assert 'Q' not in supervised
    assert 'one' in supervised and 'two' in supervised
    assert labels[-1] == eos
    # cut inside the second answer: nothing after the first answer is kept
    cut = ids[:-4]
    cut_labels = official_labels(cut, eot, eos)
    assert tok.decode([t for t in cut_labels if t != IGNORE_INDEX]).count(
        'two') == 0


def test_prompt_for_generation():
    prompt = INTERNLM2_CHAT.prompt('  Describe.  ')
    assert prompt == ('[UNUSED_TOKEN_146]user\nDescribe.[UNUSED_TOKEN_145]\n'
                      '[UNUSED_TOKEN_146]assistant\n')


@pytest.mark.parametrize('bad', [
    None, [], [{'from': 'human'}],
    [{'from': 'human', 'value': 'only a question'}],
    [{'from': 'bot', 'value': 3}]
])
def test_bad_conversations_are_named(bad):
    with pytest.raises(BadRecordError, match='file a.json, record #7'):
        normalise_turns(bad, 'a.json', '#7')


def test_tokenizer_failure_is_a_named_bad_record(synthetic_root):
    from geopixel.datasets import FormatChat
    from geopixel.tokenizers import InternLM2Tokenizer
    tokenizer = InternLM2Tokenizer.from_pretrained(
        osp.join(synthetic_root, 'tokenizer'))
    fmt = FormatChat(tokenizer=tokenizer)
    # text that bypassed the load-time check (built in code, not read)
    results = dict(conversations=[('user', 'Q?'), ('assistant', 'x \ud800')],
                   record_id='#7', ann_file='a.json')
    with pytest.raises(BadRecordError) as err:
        fmt(results)
    assert str(err.value).startswith('file a.json, record #7: cannot '
                                     'tokenize the conversation (ValueError')
    assert 'position' in str(err.value)


def test_lone_surrogate_is_refused_when_turns_are_read():
    turns = [{'from': 'human', 'value': 'Q?'},
             {'from': 'gpt', 'value': 'ok \ud83d'}]
    with pytest.raises(BadRecordError) as err:
        normalise_turns(turns, 'a.json', '#1')
    assert 'conversation turn 1' in str(err.value)
    assert "position 3 (from 0) is '\\ud83d'" in str(err.value)
