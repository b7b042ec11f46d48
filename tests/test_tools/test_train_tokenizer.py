"""tools/misc/train_tokenizer.py: a tokenizer over a user's sentences."""
import collections
import os
import os.path as osp
import pickle
import runpy
import shlex
import subprocess
import sys

import pytest

from geopixel.testing import tiny_model
from geopixel.tokenizers import InternLM2Tokenizer
from geopixel.tokenizers.training import (VocabSizeError, min_vocab_size,
                                          template_texts, train_tokenizer)
from geopixel.utils import BadRecordError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'misc', 'train_tokenizer.py')
TINY_CONFIG = osp.join(REPO, 'configs', 'geopixel', 'rrsis_tiny.py')
NEW_WORDS = ('photovoltaic', 'greenhouse', 'windmill', 'reservoir', 'café')
SENTENCES = """the photovoltaic array beside the greenhouse
the greenhouse north of the photovoltaic array

the windmill next to the reservoir
the reservoir below the windmill
the café by the greenhouse
"""


@pytest.fixture(scope='module')
def main():
    """The tool's ``main``, run in-process."""
    return runpy.run_path(TOOL)['main']


@pytest.fixture(scope='module')
def data(synthetic_root, tmp_path_factory):
    """The toy dataset and a text file of sentences with new words."""
    text = tmp_path_factory.mktemp('mine') / 'mine.txt'
    text.write_text(SENTENCES, encoding='utf-8')
    return dict(root=synthetic_root, text=str(text),
                synthetic=osp.join(synthetic_root, 'tokenizer'))


def data_args(data):
    return [osp.join(data['root'], 'rrsisd'),
            osp.join(data['root'], 'geopixeld', 'GeoPixelD.json'),
            data['text']]


@pytest.fixture(scope='module')
def trained(main, data, tmp_path_factory):
    out = tmp_path_factory.mktemp('tok')
    summary = main(['--data', *data_args(data), '--out', str(out),
                    '--vocab-size', '800', '--compare', data['synthetic'],
                    '--config', TINY_CONFIG])
    return summary, InternLM2Tokenizer.from_pretrained(str(out))


def test_new_words_take_fewer_pieces_than_with_the_synthetic_one(
        trained, data):
    summary, tokenizer = trained
    synthetic = InternLM2Tokenizer.from_pretrained(data['synthetic'])

    def pieces(tok):
        return [len(tok.tokenize(' ' + word)) for word in NEW_WORDS]

    assert all(n == 1 for n in pieces(tokenizer))
    assert all(n > 1 for n in pieces(synthetic))
    assert [s['sentences'] for s in summary['sources']][2] == 5
    ours, theirs = summary['coverage'], summary['compare']['coverage']
    assert ours['words'] == theirs['words'] > 0
    assert ours['one_token'] > theirs['one_token']
    assert ours['pieces_per_word'] < theirs['pieces_per_word']
    # 'é' is in no synthetic sentence: the synthetic tokenizer has bytes
    assert 'é' in theirs['byte_fallback_chars']
    assert ours['byte_fallback_chars'] == ours['unknown_chars'] == []
    assert set(NEW_WORDS) & set(theirs['most_frequent_split'])
    assert not set(NEW_WORDS) & set(ours['most_frequent_split'])


def test_special_tokens_and_template_as_the_synthetic_tokenizer(
        trained, data):
    _, tokenizer = trained
    synthetic = InternLM2Tokenizer.from_pretrained(data['synthetic'])
    for tok in (tokenizer, synthetic):
        sp = tok.sp_model
        assert [sp.IdToPiece(i) for i in range(5)] == [
            '<unk>', '<s>', '</s>', '[UNUSED_TOKEN_145]',
            '[UNUSED_TOKEN_146]'
        ]
        base = tok.vocab_size
        assert tok.added_tokens_encoder == {
            '[SEG]': base, '<p>': base + 1, '</p>': base + 2}
    # as in InternLM2's own vocabulary, a newline is the byte <0x0A>
    for tok in (tokenizer, synthetic):
        for text in template_texts():
            ids = tok.encode(text, add_special_tokens=False)
            assert {tok.sp_model.IdToPiece(i) for i in ids
                    if i < tok.vocab_size and tok.sp_model.IsByte(i)
                    } == {'<0x0A>'}


def test_same_input_gives_the_same_files(trained, main, data, tmp_path):
    summary, _ = trained
    main(['--data', *data_args(data), '--out', str(tmp_path),
          '--vocab-size', '800'])
    names = sorted(os.listdir(summary['out']))
    assert names == sorted(os.listdir(tmp_path))
    for name in names:
        with open(osp.join(summary['out'], name), 'rb') as a, \
                open(tmp_path / name, 'rb') as b:
            assert a.read() == b.read(), name


def test_tiny_config_builds_with_it(trained, data):
    from geopixel.engine.runner_setup import load_config
    summary, tokenizer = trained
    assert summary['tokens'] == len(tokenizer) == tokenizer.vocab_size + 3
    assert tokenizer.vocab_size <= 800
    options = shlex.split(summary['cfg_options'])
    assert options[0] == '--cfg-options'
    cfg = load_config(TINY_CONFIG,
                      dict(option.split('=', 1) for option in options[1:]))
    assert 'data/synthetic/tokenizer' not in cfg.pretty_text
    model = tiny_model(cfg)
    assert model.llm.input_embeddings().num_embeddings == len(tokenizer)
    # the model's vocabulary follows the tokenizer, not the synthetic one
    synthetic = InternLM2Tokenizer.from_pretrained(data['synthetic'])
    assert len(synthetic) != len(tokenizer)


def test_vocab_size_too_small_names_the_minimum(tmp_path):
    texts = template_texts() + SENTENCES.splitlines()
    needed = min_vocab_size(texts)
    with pytest.raises(VocabSizeError, match=f'at least {needed} pieces'):
        train_tokenizer(texts, str(tmp_path / 'a'), needed - 1)
    train_tokenizer(texts, str(tmp_path / 'b'), needed)
    sp = InternLM2Tokenizer.from_pretrained(str(tmp_path / 'b')).sp_model
    # every piece is one sentencepiece needs: no merge fits in
    assert sp.GetPieceSize() == needed
    assert all(
        sp.IsControl(i) or sp.IsUnknown(i) or sp.IsByte(i)
        or sp.IdToPiece(i) in ('[UNUSED_TOKEN_145]', '[UNUSED_TOKEN_146]')
        or len(sp.IdToPiece(i)) == 1 for i in range(needed))


def test_bad_inputs_are_named(main, tmp_path):
    def fails(path, match):
        with pytest.raises(BadRecordError, match=match) as info:
            main(['--data', str(path), '--out', str(tmp_path / 'o')])
        assert info.value.file == str(path)
        return info.value

    blank = tmp_path / 'blank.txt'
    blank.write_text('\n  \n\n')
    fails(blank, 'no sentences found')
    latin = tmp_path / 'latin.txt'
    latin.write_bytes(b'a good line\nthe caf\xe9\n')
    assert fails(latin, 'not UTF-8 text').record == 'line 2'
    fails(tmp_path / 'absent.txt', 'no such file or folder')
    fails(tmp_path, 'neither an RRSIS-D root')
    refs = tmp_path / 'root' / 'rrsisd' / 'refs(unc).p'
    refs.parent.mkdir(parents=True)
    refs.write_bytes(pickle.dumps([collections.OrderedDict()]))
    with pytest.raises(BadRecordError, match='refusing to load'):
        main(['--data', str(tmp_path / 'root'), '--out',
              str(tmp_path / 'o')])
    records = tmp_path / 'geo.json'
    records.write_text('[{"id": 7, "image": "x.png"}]')
    with pytest.raises(BadRecordError, match='record #0'):
        main(['--data', str(records), '--out', str(tmp_path / 'o')])


def test_command_line_error_has_no_traceback(tmp_path):
    blank = tmp_path / 'blank.txt'
    blank.write_text('\n')
    proc = subprocess.run(
        [sys.executable, TOOL, '--data', str(blank), '--out',
         str(tmp_path / 'o')], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f'error: file {blank}: no sentences found (text lines)')


def test_a_sentence_over_sentencepiece_length_limit_is_kept(tmp_path):
    """sentencepiece skips sentences over 4192 bytes unless told."""
    texts = template_texts() + ['qzjv ' * 1000]
    train_tokenizer(texts, str(tmp_path), 400)
    tokenizer = InternLM2Tokenizer.from_pretrained(str(tmp_path))
    assert tokenizer.tokenize(' qzjv') == ['▁qzjv']
