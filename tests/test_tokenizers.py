"""The InternLM2 tokenizer against cases recorded from the official one."""
import json
import os.path as osp
import pickle
import shutil

import pytest

from geopixel.tokenizers import InternLM2Tokenizer


@pytest.fixture(scope='module')
def cases(parity_dir):
    with open(osp.join(parity_dir, 'tokenizer_cases.json')) as f:
        return json.load(f)


def test_special_ids(parity_tokenizer, cases):
    tok = parity_tokenizer
    assert len(tok) == cases['len_tokenizer']
    assert tok.vocab_size == cases['sp_vocab_size']
    assert (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id,
            tok.pad_token_id) == (cases['bos_token_id'],
                                  cases['eos_token_id'],
                                  cases['unk_token_id'],
                                  cases['pad_token_id'])
    assert [tok.token_id(t) for t in ('[SEG]', '<p>', '</p>')] == [
        cases['seg_token_idx'], cases['bop_token_idx'], cases['eop_token_idx']
    ]
    assert tok.token_id('[UNUSED_TOKEN_145]') == cases['UNUSED_TOKEN_145_id']
    assert tok.token_id('[UNUSED_TOKEN_146]') == cases['UNUSED_TOKEN_146_id']
    assert tok.all_special_ids == cases['all_special_ids']
    assert tok.no_split_tokens == sorted(cases['unique_no_split_tokens'])


def test_every_recorded_case(parity_tokenizer, cases):
    tok = parity_tokenizer
    assert len(cases['cases']) >= 9
    for case in cases['cases']:
        ids = tok.encode(case['text'], case['add_special_tokens'])
        assert ids == case['input_ids'], case['name']
        assert tok.convert_ids_to_tokens(ids) == case['tokens'], case['name']
        assert tok.decode(ids, skip_special_tokens=True) == \
            case['decode_skip_special'], case['name']
        assert tok.decode(ids, skip_special_tokens=False) == \
            case['decode_keep_special'], case['name']


def test_whitespace_around_added_tokens_is_stripped(parity_tokenizer):
    tok = parity_tokenizer
    assert tok.encode('a <p> b', False) == tok.encode('a<p>b', False)
    # but not around the chat pieces, which sentencepiece keeps whole
    assert tok.encode('[UNUSED_TOKEN_145]\nx', False) != tok.encode(
        '[UNUSED_TOKEN_145]x', False)


def test_save_load_and_pickle_roundtrip(parity_tokenizer, tmp_path):
    tok = parity_tokenizer
    tok.save_pretrained(str(tmp_path))
    again = InternLM2Tokenizer.from_pretrained(str(tmp_path))
    text = 'The <p> tennis court-1 </p> [SEG] at right'
    assert again.encode(text) == tok.encode(text)
    assert len(again) == len(tok)
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.encode(text) == tok.encode(text)
    assert json.load(open(tmp_path / 'tokenizer_config.json'))[
        'tokenizer_class'] == 'InternLM2Tokenizer'


def test_folder_without_geopixel_tokens_gets_them_appended(parity_dir,
                                                           tmp_path):
    """An IXC-2.5 folder has no [SEG]/<p>/</p>: they take the next ids."""
    shutil.copy(
        osp.join(parity_dir, 'checkpoint', 'tokenizer.model'), tmp_path)
    tok = InternLM2Tokenizer.from_pretrained(str(tmp_path))
    assert tok.added_tokens_encoder == {'[SEG]': 1000, '<p>': 1001,
                                        '</p>': 1002}
    assert tok.add_tokens(['[SEG]', '<new>']) == 1
    assert tok.token_id('<new>') == 1003


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='tokenizer folder not found'):
        InternLM2Tokenizer.from_pretrained(str(tmp_path / 'nope'))
    with pytest.raises(FileNotFoundError, match='tokenizer.model'):
        InternLM2Tokenizer.from_pretrained(str(tmp_path))


def test_unencodable_text_is_a_clear_error(parity_tokenizer):
    with pytest.raises(ValueError, match=r"position 4 .* '\\ud800'"):
        parity_tokenizer.encode('the \ud800 pool')


@pytest.mark.parametrize('default_scope', [None, 'geopixel', 'mmengine'])
def test_tokenizers_registry_loads_from_a_folder(parity_dir, parity_tokenizer,
                                                 default_scope):
    from mmengine.registry import DefaultScope

    from geopixel.registry import TOKENIZERS
    folder = osp.join(parity_dir, 'checkpoint')
    text = 'The <p> tennis court-1 </p> [SEG] at right'
    with DefaultScope.overwrite_default_scope(default_scope):
        for type_ in (InternLM2Tokenizer, 'InternLM2Tokenizer',
                      'geopixel.InternLM2Tokenizer'):
            tok = TOKENIZERS.build(dict(type=type_, path=folder))
            assert tok.encode(text) == parity_tokenizer.encode(text)
    assert TOKENIZERS.build(parity_tokenizer) is parity_tokenizer
    with pytest.raises(TypeError, match='path='):
        TOKENIZERS.build(dict(type=InternLM2Tokenizer))
    with pytest.raises(KeyError, match='NoSuchTokenizer'):
        TOKENIZERS.build(dict(type='NoSuchTokenizer', path=folder))
