"""InternLM2 tokenizer with the exact semantics of the official GeoPixel run.

The released GeoPixel model was trained with IXC-2.5's ``InternLM2Tokenizer``
under transformers 4.33.2. Two behaviours of that pairing decide every token
id the model has seen, and newer transformers versions change both:

* text is first split on the "no-split" tokens (the added ``[SEG]``, ``<p>``,
  ``</p>`` and the special ``<s>``, ``</s>``, ``<unk>``), and whitespace on
  both sides of each such token is stripped before sentencepiece runs;
* decoding joins added tokens and the text between them with single spaces,
  and added tokens are not "special", so ``skip_special_tokens=True`` keeps
  them.

This class reimplements those rules on top of sentencepiece alone (so the
data pipeline never imports transformers), reads the official tokenizer
folder layout, and is checked id-for-id against cases recorded from the
official tokenizer.
"""
import json
import os
import os.path as osp
import re
import shutil
from typing import Dict, Iterable, List, Optional, Sequence, Union

from geopixel.registry import TOKENIZERS
from geopixel.structures.vocabulary import GEOPIXEL_TOKENS
from geopixel.utils.errors import unencodable_text
from geopixel.utils.files import read_json


@TOKENIZERS.register_module()
class InternLM2Tokenizer:
    """Sentencepiece InternLM2 tokenizer plus GeoPixel's added tokens.

    Args:
        vocab_file: the sentencepiece ``tokenizer.model``.
        added_tokens: ``{token: id}`` of tokens added after the sentencepiece
            vocabulary (``added_tokens.json``).
        add_bos_token / add_eos_token: what ``add_special_tokens=True`` adds.
    """

    vocab_file_name = 'tokenizer.model'

    def __init__(self,
                 vocab_file: str,
                 added_tokens: Optional[Dict[str, int]] = None,
                 bos_token: str = '<s>',
                 eos_token: str = '</s>',
                 unk_token: str = '<unk>',
                 pad_token: Optional[str] = '<unk>',
                 add_bos_token: bool = True,
                 add_eos_token: bool = False,
                 padding_side: str = 'right',
                 model_max_length: int = 16384):
        import sentencepiece as spm
        if not osp.isfile(vocab_file):
            raise FileNotFoundError(
                f'sentencepiece model not found: {vocab_file}. Point the '
                'tokenizer at the folder of an IXC-2.5 / GeoPixel checkpoint '
                '(it holds tokenizer.model).')
        self.vocab_file = vocab_file
        self.sp_model = spm.SentencePieceProcessor()
        self.sp_model.Load(vocab_file)
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.unk_token = unk_token
        self.pad_token = pad_token if pad_token is not None else unk_token
        self.add_bos_token = add_bos_token
        self.add_eos_token = add_eos_token
        self.padding_side = padding_side
        self.model_max_length = model_max_length
        self.added_tokens_encoder: Dict[str, int] = {}
        self.added_tokens_decoder: Dict[int, str] = {}
        for token, idx in sorted((added_tokens or {}).items(),
                                 key=lambda kv: kv[1]):
            self._register_added(token, int(idx))
        self._rebuild_splitter()

    # -- construction -----------------------------------------------------
    @classmethod
    def from_pretrained(cls,
                        path: str,
                        extra_tokens: Sequence[str] = GEOPIXEL_TOKENS,
                        **overrides) -> 'InternLM2Tokenizer':
        """Load a tokenizer folder and make sure ``extra_tokens`` exist.

        The folder is the official layout: ``tokenizer.model`` plus optional
        ``added_tokens.json``, ``special_tokens_map.json`` and
        ``tokenizer_config.json``. The pad token is ``<unk>``, as the official
        training script sets it. Missing ``extra_tokens`` (an IXC-2.5 folder
        has none of GeoPixel's) are appended in order, giving the ids the
        official ``add_tokens`` call gives.
        """
        if not osp.isdir(path):
            raise FileNotFoundError(
                f'tokenizer folder not found: {path}. It must contain '
                'tokenizer.model (from the IXC-2.5 or GeoPixel-7B release, '
                'or written by tools/dataset_converters/make_synthetic.py).')
        vocab_file = osp.join(path, cls.vocab_file_name)

        def read_optional(name):
            file = osp.join(path, name)
            return (read_json(file, 'tokenizer file')
                    if osp.isfile(file) else {})

        config = read_optional('tokenizer_config.json')
        special = read_optional('special_tokens_map.json')
        added = read_optional('added_tokens.json')

        def token_str(value, default):
            if isinstance(value, dict):  # serialised AddedToken
                return value.get('content', default)
            return value if value is not None else default

        kwargs = dict(
            bos_token=token_str(
                special.get('bos_token', config.get('bos_token')), '<s>'),
            eos_token=token_str(
                special.get('eos_token', config.get('eos_token')), '</s>'),
            unk_token=token_str(
                special.get('unk_token', config.get('unk_token')), '<unk>'),
            add_bos_token=config.get('add_bos_token', True),
            add_eos_token=config.get('add_eos_token', False),
            padding_side=config.get('padding_side', 'right'))
        # The official scripts always set pad = unk.
        kwargs['pad_token'] = kwargs['unk_token']
        kwargs.update(overrides)
        tokenizer = cls(vocab_file, added_tokens=added, **kwargs)
        tokenizer.add_tokens(extra_tokens)
        return tokenizer

    def save_pretrained(self, path: str) -> None:
        """Write the official folder layout (no remote-code ``auto_map``)."""
        os.makedirs(path, exist_ok=True)
        target = osp.join(path, self.vocab_file_name)
        if osp.abspath(target) != osp.abspath(self.vocab_file):
            shutil.copyfile(self.vocab_file, target)
        files = {
            'added_tokens.json':
            dict(self.added_tokens_encoder),
            'special_tokens_map.json':
            dict(
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                unk_token=self.unk_token,
                pad_token=self.pad_token),
            'tokenizer_config.json':
            dict(
                tokenizer_class='InternLM2Tokenizer',
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                unk_token=self.unk_token,
                pad_token=self.pad_token,
                add_bos_token=self.add_bos_token,
                add_eos_token=self.add_eos_token,
                padding_side=self.padding_side,
                clean_up_tokenization_spaces=False,
                model_max_length=self.model_max_length),
        }
        for name, content in files.items():
            with open(osp.join(path, name), 'w', encoding='utf-8') as f:
                json.dump(content, f, indent=2, ensure_ascii=False)

    def add_tokens(self, tokens: Iterable[str]) -> int:
        """Append tokens that are neither sentencepiece pieces nor added yet.

        Returns how many were added (the official ``add_tokens`` contract).
        """
        added = 0
        for token in tokens:
            if token in self.added_tokens_encoder or self._sp_has(token):
                continue
            self._register_added(token, len(self))
            added += 1
        if added:
            self._rebuild_splitter()
        return added

    def _register_added(self, token: str, idx: int) -> None:
        if idx < self.sp_model.GetPieceSize():
            raise ValueError(
                f'added token {token!r} has id {idx}, inside the '
                f'sentencepiece vocabulary of {self.sp_model.GetPieceSize()}')
        self.added_tokens_encoder[token] = idx
        self.added_tokens_decoder[idx] = token

    def _sp_has(self, piece: str) -> bool:
        idx = self.sp_model.PieceToId(piece)
        return idx != self.sp_model.unk_id() or piece == self.unk_token

    def _rebuild_splitter(self) -> None:
        no_split = set(self.added_tokens_encoder) | set(
            self.all_special_tokens)
        self.no_split_tokens = sorted(no_split)
        pattern = '|'.join(
            re.escape(t) for t in sorted(no_split, key=len, reverse=True))
        self._splitter = re.compile(f'({pattern})')

    # -- vocabulary -------------------------------------------------------
    def __len__(self) -> int:
        return self.sp_model.GetPieceSize() + len(self.added_tokens_encoder)

    @property
    def vocab_size(self) -> int:
        """Size of the sentencepiece vocabulary (without added tokens)."""
        return self.sp_model.GetPieceSize()

    @property
    def all_special_tokens(self) -> List[str]:
        tokens = [self.bos_token, self.eos_token, self.unk_token]
        if self.pad_token not in tokens:
            tokens.append(self.pad_token)
        return tokens

    @property
    def all_special_ids(self) -> List[int]:
        return [self.convert_tokens_to_ids(t) for t in self.all_special_tokens]

    @property
    def bos_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.bos_token)

    @property
    def eos_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.eos_token)

    @property
    def unk_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.unk_token)

    @property
    def pad_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.pad_token)

    def token_id(self, token: str) -> int:
        """Id of one whole token; an error rather than ``<unk>`` if absent."""
        if token in self.added_tokens_encoder:
            return self.added_tokens_encoder[token]
        if self._sp_has(token):
            return self.sp_model.PieceToId(token)
        raise KeyError(f'{token!r} is not a token of this tokenizer')

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]):
        if isinstance(tokens, str):
            if tokens in self.added_tokens_encoder:
                return self.added_tokens_encoder[tokens]
            return self.sp_model.PieceToId(tokens)
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self,
                              ids: Union[int, Sequence[int]],
                              skip_special_tokens: bool = False):
        if isinstance(ids, int):
            if ids in self.added_tokens_decoder:
                return self.added_tokens_decoder[ids]
            return self.sp_model.IdToPiece(ids)
        special = set(self.all_special_ids) if skip_special_tokens else ()
        return [
            self.convert_ids_to_tokens(int(i)) for i in ids
            if int(i) not in special
        ]

    # -- encoding ---------------------------------------------------------
    def tokenize(self, text: str) -> List[str]:
        """Pieces of ``text`` (no BOS/EOS), with 4.33's whitespace rule.

        Raises:
            ValueError: ``text`` cannot be encoded as UTF-8 (a lone
                surrogate), where sentencepiece would raise a bare
                RuntimeError.
        """
        problem = unencodable_text(text)
        if problem is not None:
            raise ValueError(f'cannot tokenize this text: {problem}')
        chunks = self._splitter.split(text)
        no_split = set(self.no_split_tokens)
        # re.split with one capture group alternates text, token, text...
        for i in range(1, len(chunks), 2):
            if chunks[i - 1]:
                chunks[i - 1] = chunks[i - 1].rstrip()
            if i + 1 < len(chunks) and chunks[i + 1]:
                chunks[i + 1] = chunks[i + 1].lstrip()
        pieces: List[str] = []
        for i, chunk in enumerate(chunks):
            if not chunk:
                continue
            if i % 2 == 1 and chunk in no_split:
                pieces.append(chunk)
            else:
                pieces.extend(self.sp_model.EncodeAsPieces(chunk))
        return pieces

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        if add_special_tokens:
            if self.add_bos_token:
                ids = [self.bos_token_id] + ids
            if self.add_eos_token:
                ids = ids + [self.eos_token_id]
        return ids

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        """``tokenizer(text).input_ids``-style access, as HF code expects."""
        return _Encoding(self.encode(text, add_special_tokens))

    # -- decoding ---------------------------------------------------------
    def _pieces_to_string(self, pieces: List[str]) -> str:
        special = set(self.all_special_tokens)
        out = ''
        buffer: List[str] = []
        prev_special = False
        for piece in pieces:
            if piece in special:
                if not prev_special:
                    out += ' '
                out += self.sp_model.DecodePieces(buffer) + piece
                buffer = []
                prev_special = True
            else:
                buffer.append(piece)
                prev_special = False
        return out + self.sp_model.DecodePieces(buffer)

    def decode(self,
               ids: Sequence[int],
               skip_special_tokens: bool = False) -> str:
        """Text of ``ids``; added tokens are joined by single spaces."""
        if hasattr(ids, 'tolist'):
            ids = ids.tolist()
        pieces = self.convert_ids_to_tokens(
            list(ids), skip_special_tokens=skip_special_tokens)
        parts: List[str] = []
        buffer: List[str] = []
        for piece in pieces:
            if piece in self.added_tokens_encoder:
                if buffer:
                    parts.append(self._pieces_to_string(buffer))
                    buffer = []
                parts.append(piece)
            else:
                buffer.append(piece)
        if buffer:
            parts.append(self._pieces_to_string(buffer))
        return ' '.join(parts)

    # -- pickling (DataLoader workers) --------------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop('sp_model')
        state.pop('_splitter')
        return state

    def __setstate__(self, state):
        import sentencepiece as spm
        self.__dict__.update(state)
        self.sp_model = spm.SentencePieceProcessor()
        self.sp_model.Load(self.vocab_file)
        self._rebuild_splitter()

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(vocab_file={self.vocab_file!r}, '
                f'len={len(self)}, added={self.added_tokens_encoder})')


class _Encoding(dict):
    """Minimal BatchEncoding stand-in: ``enc.input_ids`` and
    ``enc['input_ids']``."""

    def __init__(self, input_ids: List[int]):
        super().__init__(input_ids=input_ids)

    @property
    def input_ids(self) -> List[int]:
        return self['input_ids']
