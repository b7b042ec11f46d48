"""Training a small InternLM2-style tokenizer, and how well one covers text.

The tiny configs need a tokenizer that knows the words of their data: the
synthetic data trains one (``tokenizer/``), and
``tools/misc/train_tokenizer.py`` trains one over a user's sentences.
"""
import io
import os
import os.path as osp
import re
import string
from collections import Counter
from typing import Dict, Iterable, List

from .internlm2 import InternLM2Tokenizer

DEFAULT_VOCAB_SIZE = 1000
# sentencepiece pieces that every model holds besides the characters:
# <unk>, <s>, </s>, the two chat pieces and one piece per byte
META_PIECES = ('<unk>', '<s>', '</s>')
CHAT_PIECES = ('[UNUSED_TOKEN_145]', '[UNUSED_TOKEN_146]')
FIXED_PIECES = len(META_PIECES) + len(CHAT_PIECES) + 256


class VocabSizeError(ValueError):
    """The vocabulary asked for cannot hold the pieces a model needs."""


def min_vocab_size(texts: Iterable[str]) -> int:
    """The smallest ``vocab_size`` :func:`train_tokenizer` accepts for
    ``texts``: the fixed pieces plus one per distinct character
    (sentencepiece keeps every character outside the fixed pieces' own
    text)."""
    chars = set()
    for text in texts:
        for piece in META_PIECES + CHAT_PIECES:
            text = text.replace(piece, '')
        chars.update(text.replace('\n', ' '))
    return FIXED_PIECES + len(chars)


def template_texts() -> List[str]:
    """The chat template around the task questions and answers: text every
    tokenizer for GeoPixel is trained on besides a dataset's own."""
    from geopixel.datasets.chat import (GCG_INFERENCE_QUESTION, GCG_QUESTION,
                                        INTERNLM2_CHAT, RRSIS_ANSWER,
                                        RRSIS_QUESTION)
    return [
        INTERNLM2_CHAT.render([('user', GCG_QUESTION),
                               ('assistant', 'Sure.')]),
        INTERNLM2_CHAT.prompt(GCG_INFERENCE_QUESTION),
        INTERNLM2_CHAT.render([
            ('user', RRSIS_QUESTION.format(ref_exp='the object')),
            ('assistant', RRSIS_ANSWER)
        ])
    ]


def train_tokenizer(texts: List[str], out_dir: str,
                    vocab_size: int = DEFAULT_VOCAB_SIZE) -> str:
    """Train a byte-fallback BPE sentencepiece model with InternLM2 pieces.

    Settings mirror InternLM2's model (no dummy prefix, whitespace kept,
    digits split, byte fallback) and the chat pieces ``[UNUSED_TOKEN_145]``
    / ``[UNUSED_TOKEN_146]`` are user-defined, so the chat template
    tokenizes as it does with the real tokenizer. ``[SEG]``, ``<p>`` and
    ``</p>`` are added on top, like the official recipe does.
    ``vocab_size`` is an upper bound: a small corpus gives fewer pieces.

    Raises:
        VocabSizeError: ``vocab_size`` is below :func:`min_vocab_size`.
    """
    import sentencepiece as spm

    sentences = [t.replace('\n', ' ') for t in texts]
    needed = min_vocab_size(sentences)
    if vocab_size < needed:
        raise VocabSizeError(
            f'vocab size {vocab_size} is too small for these texts: they '
            f'need at least {needed} pieces ({FIXED_PIECES} fixed: '
            f'{", ".join(META_PIECES + CHAT_PIECES)}, 256 bytes; plus '
            f'{needed - FIXED_PIECES} distinct characters)')
    # sentencepiece skips longer sentences silently; keep every one
    longest = max((len(s.encode('utf-8')) for s in sentences), default=0)
    limits = dict(max_sentence_length=longest) if longest > 4192 else {}
    os.makedirs(out_dir, exist_ok=True)
    model = io.BytesIO()
    # Training from an iterator into memory keeps file paths out of the
    # model's trainer spec, so the file is byte-identical for a given seed.
    spm.SentencePieceTrainer.Train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type='bpe',
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        byte_fallback=True,
        split_digits=True,
        character_coverage=1.0,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name='identity',
        allow_whitespace_only_pieces=True,
        user_defined_symbols=list(CHAT_PIECES),
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
        **limits)
    with open(osp.join(out_dir, InternLM2Tokenizer.vocab_file_name),
              'wb') as f:
        f.write(model.getvalue())
    tokenizer = InternLM2Tokenizer.from_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def word_coverage(tokenizer: InternLM2Tokenizer,
                  sentences: Iterable[str],
                  examples: int = 10) -> Dict:
    """How ``tokenizer`` cuts the words of ``sentences``.

    A word is a run of letters (digits are always split, one piece each;
    punctuation is not part of a word), encoded as it stands after a space;
    no-split tokens (``[SEG]``, ``<p>``...) are not words. Returns the word
    count, the fraction that is one token (of all occurrences and of
    distinct words), the mean pieces per word, the most frequent words cut
    into pieces, and the characters (any, outside whitespace) that fall
    back to bytes or to ``<unk>``: the model sees them as bytes, or not at
    all.
    """
    sp = tokenizer.sp_model
    plain = []
    for sentence in sentences:
        for token in tokenizer.no_split_tokens:
            sentence = sentence.replace(token, ' ')
        plain.append(sentence)
    counts = Counter(word for sentence in plain
                     for word in re.findall(r'[^\W\d_]+', sentence))
    pieces = {word: len(tokenizer.tokenize(' ' + word)) for word in counts}
    total = sum(counts.values())
    whole = sum(n for word, n in counts.items() if pieces[word] == 1)
    split = sorted((w for w in counts if pieces[w] > 1),
                   key=lambda w: (-counts[w], w))

    def falls_back(char, check):
        ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(char))
        return any(check(i) for i in ids)

    chars = sorted(set(''.join(plain)) - set(string.whitespace))
    return dict(
        words=total,
        distinct_words=len(counts),
        one_token=round(whole / total, 4) if total else None,
        one_token_distinct=round(
            sum(pieces[w] == 1 for w in counts) / len(counts), 4)
        if counts else None,
        pieces_per_word=round(
            sum(n * pieces[w] for w, n in counts.items()) / total, 4)
        if total else None,
        most_frequent_split=split[:examples],
        byte_fallback_chars=[c for c in chars if falls_back(c, sp.IsByte)],
        unknown_chars=[c for c in chars if falls_back(c, sp.IsUnknown)])
