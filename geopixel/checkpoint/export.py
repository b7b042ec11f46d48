"""Export a geopixel model as a released GeoPixel-7B folder.

The folder has the layout the official merge script leaves
(``save_pretrained`` of a merged ``GeoPixelForCausalLM``, in safetensors):
``model-0000i-of-0000n.safetensors`` shards and their
``model.safetensors.index.json``, ``config.json`` and
``generation_config.json`` in the official format, and the tokenizer files
(``tokenizer.model``, ``tokenizer_config.json``, ``added_tokens.json``,
``special_tokens_map.json``).

* **LoRA is merged** with the model's configured scaling, by the one merge
  routine (:func:`~geopixel.checkpoint.lora.merge_unmerged_lora`, i.e.
  ``lora_delta``), one module at a time while its shard is written, so at
  most one shard is held in memory. The scaling is checked against the
  one peft applies in the forward pass.
* **Key names** are the inverse of the loader's tables
  (:data:`~geopixel.checkpoint.official.PREFIX_TABLE` and the layout
  constants beside it), and every export checks that the loader maps each
  written name back to the key it came from.
* **Weights the model does not hold**: a release also carries IXC-2.5's
  ``lora_sft/dpo/web`` adapters and SAM2's video-memory modules, which
  GeoPixel never runs and the loader drops. ``unused_from`` copies them
  verbatim from the files they came from (the released GeoPixel or IXC-2.5
  folder, the SAM2 ``.pt``); without it they are left out and the report
  says so.
* Keys with **no released name** are an error naming them (e.g. the mask
  decoder's locator: the release could not reproduce the masks), except
  training-only heads (``seg_words_head``), which are left out and listed.
* **Atomic**: everything is written into a hidden folder beside ``out_dir``
  and renamed onto it at the end; a failed export removes it, so
  ``out_dir`` is never half-written.

``config.json`` has the official field set (that of the official tiny
checkpoint); the sizes come from the model. The official ``.py`` files that
``auto_map`` names are not written (the official tiny checkpoint lacks them
too): a loader that needs them takes them from the official release.
"""
import json
import os
import os.path as osp
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import torch
from safetensors.torch import save_file

from .io import check_finite, read_state_dict
from .lora import as_lora_config, lora_scaling, merge_unmerged_lora
from .official import (CLIP_FLAT, CLIP_NESTED, NOT_SAVED_PATTERNS,
                       PEFT_BASE_LAYER, PREFIX_TABLE, UNUSED_PATTERNS,
                       convert_official_state_dict)

DEFAULT_SHARD_SIZE = '5GB'
INDEX_FILE = 'model.safetensors.index.json'
#: heads that only add a training loss: left out (and listed), since the
#: release has no place for them and inference does not use them
TRAINING_ONLY_PREFIXES = ('seg_words_head.',)
#: where the loaded LM lives in a GeoPixel model, and where peft put LoRA
LM_PREFIX = 'llm.llm.'
#: a SAM2 ``.pt`` holds SAM2Base's keys; the release nests them here and
#: renames ``gamma`` to ``weight`` (as transformers 4.33 does on load)
SAM2_RELEASE_PREFIX = 'model.visual_model.'
#: what the official files record (the versions the release was made with)
RELEASE_TRANSFORMERS_VERSION = '4.33.2'
RELEASE_MAX_LENGTH = 16384
RELEASE_AUTO_MAP = {
    'AutoConfig': 'configuration_internlm_xcomposer2.InternLMXcomposer2Config',
    'AutoModelForCausalLM': 'geopixel.GeoPixelForCausalLM'
}
TOKENIZER_AUTO_MAP = {
    'AutoTokenizer': ['tokenization_internlm2.InternLM2Tokenizer', None]
}
_UNITS = {'': 1, 'B': 1, 'KB': 10**3, 'MB': 10**6, 'GB': 10**9,
          'KIB': 2**10, 'MIB': 2**20, 'GIB': 2**30}


class ExportError(ValueError):
    """A model or an option that cannot give a released-format folder."""


def parse_size(size: Union[int, str]) -> int:
    """``5GB`` (10^9), ``500MiB`` (2^20) or a number of bytes."""
    if isinstance(size, int):
        value = size
    else:
        match = re.fullmatch(r'\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*', size)
        unit = match.group(2).upper() if match else None
        if unit not in _UNITS:
            raise ExportError(f'shard size {size!r}: expected bytes or a '
                              'number with KB, MB, GB, KiB, MiB or GiB')
        value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ExportError(f'shard size must be positive, got {size!r}')
    return value


# -- names ---------------------------------------------------------------
def official_key_name(key: str) -> Optional[str]:
    """The released name of the geopixel key ``key``, or None when the
    release has none: the inverse of the loader's renaming
    (``convert_official_state_dict``)."""
    name = key.replace(f'.{PEFT_BASE_LAYER}.', '.')
    if name.startswith(CLIP_NESTED):
        name = CLIP_FLAT + name[len(CLIP_NESTED):]
    for released, ours in PREFIX_TABLE:
        if name.startswith(ours):
            return released + name[len(ours):]
    return None


def _is_lora(key: str) -> bool:
    return '.lora_A.' in key or '.lora_B.' in key


def _natural(name: str):
    """Sort key putting ``layers.2`` before ``layers.10``."""
    return [int(p) if p.isdigit() else p for p in re.split(r'(\d+)', name)]


@dataclass
class ExportTensor:
    """One tensor of the export: its shape and dtype are known before its
    value is made (a merge happens only when its shard is written)."""
    shape: tuple
    dtype: torch.dtype
    make: Callable[[], torch.Tensor]
    source: str  # the geopixel key, or the file it is copied from

    def nbytes(self, dtype: Optional[torch.dtype] = None) -> int:
        dtype = self.out_dtype(dtype)
        numel = 1
        for size in self.shape:
            numel *= size
        return numel * dtype.itemsize

    def out_dtype(self, dtype: Optional[torch.dtype]) -> torch.dtype:
        return dtype if dtype is not None and self.dtype.is_floating_point \
            else self.dtype


# -- what the model holds ------------------------------------------------
def official_tensors(model: torch.nn.Module):
    """The model's weights under their released names, LoRA merged.

    Returns ``(tensors, report)``: ``{released name: ExportTensor}`` and a
    report with ``merged`` (the LoRA modules folded in) and ``left_out``
    (training-only keys not exported). Works on the meta device (shapes
    only, nothing is computed until ``make()``).

    Raises:
        ExportError: keys with no released name, LoRA the model's
            configuration does not describe, or names the loader would not
            map back to their key.
    """
    state = model.state_dict()
    lora_keys = [k for k in state if _is_lora(k)]
    merges = _lora_merges(model, state, lora_keys)
    tensors, origin, left_out, nameless = {}, {}, [], []
    for key, value in state.items():
        if _is_lora(key):
            continue
        if any(p.search(key) for p in NOT_SAVED_PATTERNS):
            left_out.append(key)
            continue
        name = official_key_name(key)
        if name is None:
            (left_out if key.startswith(TRAINING_ONLY_PREFIXES)
             else nameless).append(key)
            continue
        if name in tensors:
            raise ExportError(f'{origin[name]} and {key} would both be '
                              f'written as {name}')
        make = merges.get(key) or _plain(value)
        tensors[name] = ExportTensor(tuple(value.shape), value.dtype, make,
                                     key)
        origin[name] = key
    if nameless:
        raise ExportError(
            f'{len(nameless)} weight(s) have no name in the released GeoPixel '
            f'format, so an export would lose them: {_shown(nameless)}. A '
            'model with the mask decoder\'s locator (locator=True, the tiny '
            'configs) gives masks the released format cannot reproduce.')
    _check_names_map_back(origin, state.keys())
    suffix = f'.{PEFT_BASE_LAYER}.weight'
    merged = sorted(key[:-len(suffix)] for key in merges)
    return tensors, dict(merged=merged, left_out=left_out)


def _shown(keys: Sequence[str], limit: int = 8) -> str:
    more = ', ...' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def _plain(value: torch.Tensor):
    return lambda: value.detach().cpu()


def _lora_merges(model, state, lora_keys) -> Dict[str, Callable]:
    """``{base weight key: make merged weight}`` for every peft LoRA
    module, through ``merge_unmerged_lora`` with the adapter's recorded
    configuration."""
    if not lora_keys:
        return {}
    outside = [k for k in lora_keys if not k.startswith(LM_PREFIX)]
    if outside:
        raise ExportError(f'LoRA weights outside the LLM ({LM_PREFIX}*) '
                          f'cannot be merged: {_shown(outside)}')
    adapter = getattr(model, 'llm', None)
    config = getattr(adapter, 'lora_config', None)
    if config is None:
        raise ExportError(
            'the model has LoRA weights but its LLM adapter records no LoRA '
            f'configuration to merge them with ({_shown(lora_keys)})')
    config = as_lora_config(config)
    merges = {}
    for key in [k for k in lora_keys if '.lora_A.' in k]:
        module, adapter_and_param = key.split('.lora_A.')
        adapter_name = adapter_and_param.split('.')[0]
        if adapter_name != 'default' or not key.endswith('.weight'):
            raise ExportError(f'{key}: only the peft adapter "default" is '
                              'merged (one LoRA per module)')
        a_key, b_key = key, key.replace('.lora_A.', '.lora_B.')
        base_key = f'{module}.{PEFT_BASE_LAYER}.weight'
        if b_key not in state or base_key not in state:
            raise ExportError(f'{module}: LoRA without its '
                              f'{b_key if b_key not in state else base_key}')
        relative = module[len(LM_PREFIX):]  # peft's name for the module
        _check_scaling(model, module, relative, config, state[a_key])
        merges[base_key] = _merged(relative, state[base_key], state[a_key],
                                   state[b_key], config)
    unused = [k for k in lora_keys if '.lora_B.' in k and
              k.replace('.lora_B.', '.lora_A.') not in state]
    if unused:
        raise ExportError(f'lora_B without lora_A: {_shown(unused)}')
    return merges


def _check_scaling(model, module: str, relative: str, config,
                   lora_a: torch.Tensor) -> None:
    """The recorded configuration must give the scaling peft applies in
    the forward pass: otherwise the export would not be the model."""
    layer = model.get_submodule(module)
    applied = getattr(layer, 'scaling', {}).get('default')
    recorded = lora_scaling(config, relative, lora_a.shape[0])
    if applied is not None and abs(applied - recorded) > 1e-12 * max(
            1.0, abs(recorded)):
        raise ExportError(
            f'{module}: the LoRA configuration gives scaling {recorded} but '
            f'the model applies {applied}; the adapter\'s lora_config does '
            'not describe this model')


def _merged(relative: str, weight, lora_a, lora_b, config):
    def make():
        part = {f'{relative}.{PEFT_BASE_LAYER}.weight': weight.detach().cpu(),
                f'{relative}.lora_A.default.weight': lora_a.detach().cpu(),
                f'{relative}.lora_B.default.weight': lora_b.detach().cpu()}
        return merge_unmerged_lora(part, config)[f'{relative}.weight']
    return make


def _check_names_map_back(origin: Dict[str, str], model_keys) -> None:
    """The loader's tables must read every written name back as the key it
    came from (the tables and their inverse cannot disagree)."""
    back, dropped, unknown = convert_official_state_dict(origin, model_keys)
    wrong = [f'{name} (dropped on load)' for name in dropped]
    wrong += [f'{name} (unknown to the loader)' for name in unknown]
    wrong += [f'{ours} -> {key}' for key, ours in back.items()
              if key != ours]
    if wrong:
        raise ExportError('the loader would not read these exported names '
                          f'back as their keys: {_shown(wrong)}')


# -- weights the model does not hold -------------------------------------
def _release_name(key: str) -> Optional[str]:
    """The released name of an unused-module key of a release / IXC-2.5
    file (kept) or of a SAM2 ``.pt`` (nested, ``gamma`` renamed); None for
    any other key."""
    if any(p.search(key) for p in UNUSED_PATTERNS):
        return key
    if key.startswith(tuple(released for released, _ in PREFIX_TABLE)):
        return None  # a used weight of a release
    name = SAM2_RELEASE_PREFIX + re.sub(r'\.gamma$', '.weight', key)
    return name if any(p.search(name) for p in UNUSED_PATTERNS) else None


def unused_tensors(sources: Iterable[str],
                   exported: Dict[str, ExportTensor],
                   sam2_dim: Optional[int] = None
                   ) -> Dict[str, ExportTensor]:
    """The unused-module weights of ``sources`` (released GeoPixel or
    IXC-2.5 folders and files, SAM2 ``.pt`` files) under their released
    names; the first source holding a name wins.

    They must fit the exported weights: each LLM layer's adapters match
    its projection's width and every exported partial-LoRA module gets all
    six (``lora_{sft,dpo,web}_{A,B}``); SAM2 modules match the SAM2 width
    ``sam2_dim`` (when given).
    """
    found: Dict[str, ExportTensor] = {}
    for source in sources:
        state = read_state_dict(source,
                                keep=lambda k: _release_name(k) is not None)
        if not state:
            raise ExportError(f'{source} holds none of the unused-module '
                              'weights (IXC-2.5 lora_sft/dpo/web adapters, '
                              'SAM2 video memory)')
        for key, value in state.items():
            found.setdefault(
                _release_name(key),
                ExportTensor(tuple(value.shape), value.dtype,
                             _plain(value), source))
    _check_unused_fit(found, exported, sam2_dim)
    return found


def _check_unused_fit(found, exported, sam2_dim) -> None:
    problems = []
    adapters = [k for k in found if not k.startswith(SAM2_RELEASE_PREFIX)]
    if adapters:
        modules = sorted({n[:-len('.Plora_A.weight')] for n in exported
                          if n.endswith('.Plora_A.weight')})
        for module in modules:
            out_features, in_features = exported[f'{module}.weight'].shape
            for kind in ('sft', 'dpo', 'web'):
                a = found.get(f'{module}.lora_{kind}_A.weight')
                b = found.get(f'{module}.lora_{kind}_B.weight')
                if a is None or b is None:
                    problems.append(f'{module}.lora_{kind}_A/B missing')
                elif a.shape[1] != in_features or b.shape[0] != out_features:
                    problems.append(
                        f'{module}.lora_{kind}: A {a.shape}, B {b.shape} for '
                        f'a [{out_features}, {in_features}] projection')
        wanted = {f'{m}.lora_{k}_{ab}.weight' for m in modules
                  for k in ('sft', 'dpo', 'web') for ab in 'AB'}
        extra = sorted(set(adapters) - wanted)
        if extra:
            problems.append(f'adapters of modules this model does not have '
                            f'({_shown(extra, 3)})')
    if sam2_dim is not None:
        for name, dim in (('no_obj_ptr', -1), ('memory_attention.norm.weight',
                                              0)):
            entry = found.get(SAM2_RELEASE_PREFIX + name)
            if entry is not None and entry.shape[dim] != sam2_dim:
                problems.append(f'SAM2 {name} has width {entry.shape[dim]} '
                                f'but the model\'s SAM2 has {sam2_dim}')
    if problems:
        raise ExportError('the unused-module weights do not fit this model '
                          f'(are they from another model size?): '
                          f'{_shown(problems, 6)}')


# -- files ---------------------------------------------------------------
def plan_shards(tensors: Dict[str, ExportTensor], max_bytes: int,
                dtype: Optional[torch.dtype] = None) -> List[List[str]]:
    """Names in natural order, cut into shards of at most ``max_bytes`` (a
    larger tensor gets a shard of its own)."""
    shards, current, size = [], [], 0
    for name in sorted(tensors, key=_natural):
        nbytes = tensors[name].nbytes(dtype)
        if current and size + nbytes > max_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(name)
        size += nbytes
    if current:
        shards.append(current)
    return shards


def shard_name(index: int, count: int) -> str:
    return f'model-{index:05d}-of-{count:05d}.safetensors'


def _write_shards(tensors, shards, dtype, folder) -> dict:
    weight_map, total = {}, 0
    for i, names in enumerate(shards, 1):
        file = shard_name(i, len(shards))
        part = {}
        for name in names:
            entry = tensors[name]
            value = entry.make().to(entry.out_dtype(dtype))
            # safetensors refuses views and storage shared between tensors
            part[name] = value.contiguous().clone() if (
                value.untyped_storage().nbytes() != value.nbytes
                or not value.is_contiguous()) else value
            total += part[name].nbytes
            weight_map[name] = file
        check_finite(part, file)
        path = osp.join(folder, file)
        save_file(part, path, metadata={'format': 'pt'})
        os.chmod(path, 0o666 & ~_umask())  # as a plain open would
        del part
    index = dict(metadata=dict(total_size=total),
                 weight_map=dict(sorted(weight_map.items())))
    _write_json(index, osp.join(folder, INDEX_FILE))
    return dict(total_size=total)


def _write_json(content: dict, path: str) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(content, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write('\n')


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace('torch.', '')


def official_config(model, torch_dtype: torch.dtype,
                    attn_implementation: str = 'eager') -> dict:
    """``config.json`` with the official field set, sizes from ``model``."""
    config = model.llm.llm.config
    tok = model.tokenizer
    vocab = model.llm.input_embeddings().num_embeddings
    if vocab != len(tok):
        raise ExportError(f'the model has {vocab} token rows but its '
                          f'tokenizer {len(tok)} tokens')
    if model.llm.output_embeddings().weight is \
            model.llm.input_embeddings().weight:
        raise ExportError('the released format has an untied output layer; '
                          'this model ties it to the token embeddings')
    rope_theta = config.rope_theta
    if float(rope_theta).is_integer():
        rope_theta = int(rope_theta)
    return {
        'architectures': ['GeoPixelForCausalLM'],
        'attn_implementation': attn_implementation,
        'auto_map': dict(RELEASE_AUTO_MAP),
        'bias': bool(config.bias),
        'bos_token_id': tok.bos_token_id,
        'eos_token_id': tok.eos_token_id,
        'hidden_act': 'silu',
        'hidden_size': config.hidden_size,
        'initializer_range': 0.02,
        'intermediate_size': config.intermediate_size,
        'max_length': RELEASE_MAX_LENGTH,
        'max_position_embeddings': config.max_position_embeddings,
        'model_type': 'internlm2',
        'num_attention_heads': config.num_attention_heads,
        'num_hidden_layers': config.num_hidden_layers,
        'num_key_value_heads': config.num_key_value_heads,
        'out_dim': model.grounding_encoder.hidden_dim,
        'pad_token_id': tok.pad_token_id,
        'rms_norm_eps': config.rms_norm_eps,
        'rope_scaling': config.rope_scaling,
        'rope_theta': rope_theta,
        'tie_word_embeddings': False,
        'torch_dtype': _dtype_name(torch_dtype),
        'train_mask_decoder': True,
        'transformers_version': RELEASE_TRANSFORMERS_VERSION,
        'use_cache': False,
        'vocab_size': vocab,
    }


def generation_config(model) -> dict:
    tok = model.tokenizer
    return {
        '_from_model_config': True,
        'bos_token_id': tok.bos_token_id,
        'eos_token_id': tok.eos_token_id,
        'max_length': RELEASE_MAX_LENGTH,
        'pad_token_id': tok.pad_token_id,
        'transformers_version': RELEASE_TRANSFORMERS_VERSION,
        'use_cache': False,
    }


def write_tokenizer(tokenizer, folder: str,
                    source: Optional[str] = None) -> None:
    """The tokenizer folder ``tokenizer`` was read from (``tokenizer.model``
    and ``tokenizer_config.json``, copied), plus ``added_tokens.json`` and
    ``special_tokens_map.json`` as the model uses them (GeoPixel's added
    tokens, pad = unk as the official scripts set it). The written folder
    must load back to the same tokens."""
    from geopixel.tokenizers import InternLM2Tokenizer
    source = source or osp.dirname(tokenizer.vocab_file)
    shutil.copyfile(tokenizer.vocab_file,
                    osp.join(folder, InternLM2Tokenizer.vocab_file_name))
    config = osp.join(source, 'tokenizer_config.json')
    if osp.isfile(config):
        shutil.copyfile(config, osp.join(folder, 'tokenizer_config.json'))
    else:  # the official fields (the official tiny checkpoint's file)
        _write_json(dict(
            auto_map=TOKENIZER_AUTO_MAP, bos_token=tokenizer.bos_token,
            clean_up_tokenization_spaces=False,
            eos_token=tokenizer.eos_token,
            model_max_length=tokenizer.model_max_length,
            pad_token=tokenizer.pad_token,
            padding_side=tokenizer.padding_side,
            tokenizer_class='InternLM2Tokenizer',
            unk_token=tokenizer.unk_token),
            osp.join(folder, 'tokenizer_config.json'))
    _write_json(dict(sorted(tokenizer.added_tokens_encoder.items(),
                            key=lambda kv: kv[1])),
                osp.join(folder, 'added_tokens.json'))
    _write_json(dict(bos_token=tokenizer.bos_token,
                     eos_token=tokenizer.eos_token,
                     pad_token=tokenizer.pad_token,
                     unk_token=tokenizer.unk_token),
                osp.join(folder, 'special_tokens_map.json'))
    back = InternLM2Tokenizer.from_pretrained(folder, extra_tokens=())
    if (len(back) != len(tokenizer) or back.added_tokens_encoder !=
            tokenizer.added_tokens_encoder or
            back.pad_token_id != tokenizer.pad_token_id):
        raise ExportError('the written tokenizer does not read back as the '
                          f'model\'s ({len(back)} vs {len(tokenizer)} tokens)')


# -- the export ----------------------------------------------------------
def _check_target(out_dir: str, overwrite: bool) -> None:
    if osp.lexists(out_dir) and not osp.isdir(out_dir):
        raise ExportError(f'{out_dir} exists and is not a folder')
    if osp.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise ExportError(f'{out_dir} exists and is not empty; choose a new '
                          'folder or pass overwrite=True (--overwrite) to '
                          'replace it')


def _move_into_place(tmp: str, out_dir: str) -> None:
    """Rename the finished folder onto ``out_dir``; an existing
    ``out_dir`` is replaced only once the new one is complete."""
    if not osp.lexists(out_dir):
        os.rename(tmp, out_dir)
        return
    old = tempfile.mkdtemp(prefix=f'.{osp.basename(out_dir)}.old-',
                           dir=osp.dirname(out_dir))
    os.rmdir(old)
    os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old)


def export_official(model: torch.nn.Module,
                    out_dir: str,
                    shard_size: Union[int, str] = DEFAULT_SHARD_SIZE,
                    dtype: Optional[torch.dtype] = None,
                    unused_from: Sequence[str] = (),
                    overwrite: bool = False,
                    tokenizer_dir: Optional[str] = None,
                    attn_implementation: str = 'eager') -> dict:
    """Write ``model`` (a GeoPixel) as a released GeoPixel-7B folder.

    Args:
        model: the model, LoRA merged or not (it is not modified).
        out_dir: the folder to write; it must not exist or be empty unless
            ``overwrite``.
        shard_size: the largest shard (``'5GB'``, ``'500MB'``, bytes).
        dtype: cast floating tensors to this (the release: bf16); None
            keeps the model's.
        unused_from: files or folders to copy the unused-module weights
            from (module docstring); none leaves them out.
        overwrite: replace a non-empty ``out_dir`` (only once the new
            folder is complete).
        tokenizer_dir: the tokenizer folder to copy (default: the one the
            model's tokenizer was read from).
        attn_implementation: ``config.json``'s attention ('eager' runs
            anywhere; the release names 'flash_attention_2').

    Returns:
        A report: ``out_dir``, ``shards``, ``tensors``, ``total_size``
        (bytes), ``dtype``, ``merged`` (LoRA modules), ``left_out``
        (training-only keys), ``unused`` (how many unused-module weights
        were copied, and from where) and ``unused_missing`` (True when
        none were given, so the folder lacks them).
    """
    out_dir = osp.abspath(out_dir)
    max_bytes = parse_size(shard_size)
    _check_target(out_dir, overwrite)
    tensors, report = official_tensors(model)
    floating = Counter()
    for entry in tensors.values():
        if entry.dtype.is_floating_point:
            floating[entry.dtype] += entry.nbytes() // entry.dtype.itemsize
    main_dtype = dtype or floating.most_common(1)[0][0]
    unused = {}
    if unused_from:
        unused = unused_tensors(unused_from, tensors,
                                model.grounding_encoder.hidden_dim)
    for name, entry in unused.items():
        # one dtype with the model's weights, as a release has
        entry.dtype, make = main_dtype, entry.make
        entry.make = (lambda make=make: make().to(main_dtype))
    config = official_config(model, main_dtype, attn_implementation)
    all_tensors = dict(tensors, **unused)
    shards = plan_shards(all_tensors, max_bytes, dtype)
    parent = osp.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(out_dir)}.partial-',
                           dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        written = _write_shards(all_tensors, shards, dtype, tmp)
        _write_json(config, osp.join(tmp, 'config.json'))
        _write_json(generation_config(model),
                    osp.join(tmp, 'generation_config.json'))
        write_tokenizer(model.tokenizer, tmp, tokenizer_dir)
        _check_target(out_dir, overwrite)  # nothing appeared meanwhile
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    sources = Counter(e.source for e in unused.values())
    report.update(
        out_dir=out_dir,
        shards=[shard_name(i, len(shards)) for i in range(1,
                                                           len(shards) + 1)],
        tensors=len(all_tensors),
        total_size=written['total_size'],
        dtype=_dtype_name(main_dtype),
        unused=dict(sources),
        unused_missing=not unused)
    return report


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = [
    'DEFAULT_SHARD_SIZE', 'ExportError', 'ExportTensor', 'export_official',
    'official_key_name', 'official_tensors', 'unused_tensors',
    'plan_shards', 'parse_size', 'official_config', 'write_tokenizer'
]
