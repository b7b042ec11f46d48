"""Build a model without allocating its weights, then fill it from a
checkpoint one tensor at a time.

Building GeoPixel-7B eagerly initialises ~9B random fp32 parameters
(~36 GB) only to overwrite them; reading the checkpoint whole then holds a
second copy. Here, inside :func:`parameters_on_meta`, every parameter a
module registers lives on the meta device (no memory; buffers stay real,
since checkpoints do not hold the non-persistent ones such as rotary
frequencies); :func:`stream_checkpoint` then reads a file or sharded folder
tensor by tensor (safetensors without a full read, torch files memory
mapped) and puts each tensor in place of its meta parameter, so the peak is
the model plus one tensor. :func:`materialise_leftovers` gives whatever no
file held (LoRA of a merged release, grown vocabulary rows) the
initialisation an eager build gives it.

Components ask :func:`weights_deferred` before reading their own weight
files: inside the context, the composite model streams them instead.
"""
import contextlib
import contextvars
import os.path as osp
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

_DEFERRED = contextvars.ContextVar('geopixel_weights_deferred', default=False)


def weights_deferred() -> bool:
    """True while a model is built on the meta device: components skip
    loading their weight files (the caller streams a checkpoint)."""
    return _DEFERRED.get()


@contextlib.contextmanager
def parameters_on_meta(enabled: bool = True):
    """Parameters registered inside live on the meta device."""
    if not enabled:
        yield
        return
    original = nn.Module.register_parameter

    def register_parameter(module, name, param):
        if param is not None and not param.is_meta:
            param = nn.Parameter(param.to('meta'),
                                 requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register_parameter
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        nn.Module.register_parameter = original
        _DEFERRED.reset(token)


# -- reading tensor by tensor ----------------------------------------------
def checkpoint_files(path: str) -> List[str]:
    """The weight files of a checkpoint file or (sharded) folder."""
    from .io import FOLDER_FILES, CheckpointError
    from geopixel.utils.files import read_json
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    for name in FOLDER_FILES:
        file = osp.join(path, name)
        if not osp.isfile(file):
            continue
        if not name.endswith('.index.json'):
            return [file]
        try:
            shards = sorted(set(read_json(file, 'shard index')['weight_map']
                                .values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f'unreadable shard index ({exc})',
                                  file) from None
        missing = [s for s in shards if not osp.isfile(osp.join(path, s))]
        if missing:
            raise CheckpointError(f'shard(s) {missing} are missing', file)
        return [osp.join(path, s) for s in shards]
    raise FileNotFoundError(
        f'{path} holds none of {", ".join(FOLDER_FILES)}')


_SAFETENSORS_DTYPES = {
    'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16,
    'BF16': torch.bfloat16, 'I64': torch.int64, 'I32': torch.int32,
    'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8,
    'BOOL': torch.bool, 'F8_E4M3': torch.float8_e4m3fn,
    'F8_E5M2': torch.float8_e5m2
}


def safetensors_header(file: str) -> Tuple[int, dict]:
    """``(data start, {key: entry})`` of a safetensors file: its length
    prefix and JSON header (the format's spec), checked against the file
    size."""
    import json
    import struct
    from .io import CheckpointError
    size = osp.getsize(file)
    try:
        with open(file, 'rb') as f:
            (length, ) = struct.unpack('<Q', f.read(8))
            if length > size - 8:
                raise ValueError(f'header length {length} past the end')
            header = json.loads(f.read(length))
        header.pop('__metadata__', None)
        start = 8 + length
        for key, entry in header.items():
            begin, end = entry['data_offsets']
            if entry['dtype'] not in _SAFETENSORS_DTYPES:
                raise ValueError(f'{key}: unknown dtype {entry["dtype"]}')
            if not 0 <= begin <= end <= size - start:
                raise ValueError(f'{key}: data past the end of the file')
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise CheckpointError(
            f'not a readable safetensors file (truncated or corrupt?): '
            f'{exc}', file) from None
    return start, header


def file_shapes(file: str) -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of one weight file, reading only its header (a torch
    file is memory mapped, so its tensors are not read either)."""
    if file.endswith('.safetensors'):
        _, header = safetensors_header(file)
        return {k: tuple(e['shape']) for k, e in header.items()}
    return {k: tuple(v.shape) for k, v in _mapped_state(file).items()}


def _mapped_state(file: str) -> Dict[str, torch.Tensor]:
    from .io import CheckpointError, _safe_globals, model_state_of
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            checkpoint = torch.load(file, map_location='cpu', mmap=True,
                                    weights_only=True)
    except Exception as exc:  # any failure: name the file
        raise CheckpointError(
            f'not streamable ({type(exc).__name__}: '
            f'{str(exc).splitlines()[0][:200]}); a weights-only torch file '
            'or safetensors is needed', file) from None
    return model_state_of(checkpoint, file)


def iter_tensors(file: str) -> Iterator[Tuple[str, torch.Tensor]]:
    """``(key, tensor)`` of one weight file, one tensor in memory at a time.

    A safetensors tensor is read with plain file reads straight into its
    own (aligned) memory: a memory map would leave the touched pages of the
    whole shard counted in the process's memory until it closes. Torch
    files are memory mapped (their pages are the kernel's cache, counted
    as resident while mapped, but reclaimable).
    """
    if file.endswith('.safetensors'):
        start, header = safetensors_header(file)
        order = sorted(header, key=lambda k: header[k]['data_offsets'][0])
        with open(file, 'rb', buffering=0) as f:
            for key in order:
                entry = header[key]
                begin, end = entry['data_offsets']
                tensor = torch.empty(entry['shape'],
                                     dtype=_SAFETENSORS_DTYPES[entry['dtype']])
                if tensor.numel() * tensor.element_size() != end - begin:
                    from .io import CheckpointError
                    raise CheckpointError(
                        f'{key}: {end - begin} bytes for shape '
                        f'{entry["shape"]} {entry["dtype"]}', file)
                if end > begin:
                    view = memoryview(tensor.reshape(-1).view(
                        torch.uint8).numpy())
                    f.seek(start + begin)
                    done = 0
                    while done < len(view):  # one read stops at 2 GiB
                        read = f.readinto(view[done:])
                        if not read:
                            from .io import CheckpointError
                            raise CheckpointError(
                                f'{key}: file ends early', file)
                        done += read
                yield key, tensor
        return
    for key, value in _mapped_state(file).items():
        yield key, value.clone()  # own memory: the map closes with the file


# -- putting tensors in place ---------------------------------------------
def _aliases(model: nn.Module) -> Dict[str, List[str]]:
    """Every name of each parameter (tied weights have several)."""
    names: Dict[int, List[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    return {n: group for group in names.values() for n in group}


def _put(model: nn.Module, key: str, value: torch.Tensor,
         aliases: Dict[str, List[str]]) -> torch.Tensor:
    """Replace ``key`` (and its tied names) by ``value``; returns the new
    parameter or buffer."""
    new = value
    for name in aliases.get(key, [key]):
        owner, _, attr = name.rpartition('.')
        module = model.get_submodule(owner)
        if attr in module._parameters:
            if not isinstance(new, nn.Parameter):
                trains = module._parameters[attr].requires_grad
                new = nn.Parameter(value, requires_grad=trains)
            module._parameters[attr] = new
        else:
            module._buffers[attr] = new
    return new


def stream_checkpoint(model: nn.Module,
                      path: str,
                      convert: Optional[Callable] = None,
                      fit: Optional[Callable] = None) -> Dict[str, str]:
    """Fill ``model``'s meta parameters from ``path``, one tensor at a time.

    Args:
        convert: maps a checkpoint key to the model's key (None: drop it).
        fit: ``fit(key, tensor, target) -> tensor`` adapts a tensor whose
            shape differs from the target (e.g. grows vocabulary rows);
            without it a shape difference is an error.

    Returns ``{model key: checkpoint file}`` for what was loaded. Non-finite
    tensors are refused; :func:`stream_official_checkpoint` checks the keys
    and shapes before anything is read.
    """
    from .frozen import SOURCE_ATTR
    from .io import _finite
    targets = dict(model.state_dict(keep_vars=True))
    aliases = _aliases(model)
    loaded = {}
    source = osp.abspath(path)
    for file in checkpoint_files(path):
        for key, tensor in iter_tensors(file):
            name = convert(key) if convert else key
            if name is None or name not in targets:
                continue
            target = targets[name]
            whole = tuple(tensor.shape) == tuple(target.shape)
            if not whole:  # fit, or the error below
                tensor = fit(name, tensor, target) if fit else tensor
            if tuple(tensor.shape) != tuple(target.shape):
                from .io import CheckpointError
                raise CheckpointError(
                    f'{key} has shape {tuple(tensor.shape)} but the model\'s '
                    f'{name} has {tuple(target.shape)}', file)
            if not _finite(tensor):
                from .io import CheckpointError
                raise CheckpointError(
                    f'non-finite values (NaN or inf) in {key}', file)
            if tensor.is_floating_point():
                tensor = tensor.to(target.dtype)
            new = _put(model, name, tensor, aliases)
            if whole:  # grown rows come from no file
                setattr(new, SOURCE_ATTR, source)
            loaded[name] = file
    return loaded


def meta_keys(model: nn.Module) -> List[str]:
    """State-dict keys still on the meta device."""
    return [k for k, v in model.state_dict(keep_vars=True).items()
            if v.is_meta]


def materialise_leftovers(model: nn.Module,
                          device='cpu') -> List[str]:
    """Allocate and initialise what no checkpoint filled, as an eager build
    would: each module's ``reset_parameters`` (all of its own parameters
    must be left over, or initialising would overwrite loaded ones), then
    LoRA's own rules (peft's ``lora_B`` and partial LoRA's ``Plora_B``
    start at zero). Returns the keys initialised."""
    from .io import CheckpointError, _named
    leftovers = meta_keys(model)
    if not leftovers:
        return []
    left = set(leftovers)
    partial = []
    for name, module in model.named_modules():
        own = [(n, p) for n, p in module._parameters.items()
               if p is not None]
        if not any(p.is_meta for _, p in own):
            continue
        loaded = [n for n, p in own if not p.is_meta]
        if loaded or not hasattr(module, 'reset_parameters'):
            partial += [f'{name}.{n}' if name else n for n, p in own
                        if p.is_meta]
            continue
        module.to_empty(device=device, recurse=False)
        module.reset_parameters()
    if partial:
        raise CheckpointError(
            f'{_named(partial)} weight(s) are in no checkpoint and have no '
            'initialisation of their own', 'being loaded')
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        if hasattr(module, 'reset_lora_parameters') and hasattr(
                module, 'lora_A'):
            for adapter in module.lora_A:
                if f'{prefix}lora_A.{adapter}.weight' in left:
                    module.reset_lora_parameters(adapter, True)
        elif hasattr(module, 'reset_partial_lora') and \
                f'{prefix}Plora_A.weight' in left:
            module.reset_partial_lora()
    return leftovers


def streamable(path: str) -> bool:
    """Whether :func:`stream_official_checkpoint` can read ``path`` (read
    from the headers only): an un-merged LoRA training output cannot be
    streamed, since merging needs both factors and the base at once."""
    from .official import is_unmerged_lora
    try:
        keys = [k for file in checkpoint_files(path)
                for k in file_shapes(file)]
    except (OSError, ValueError):
        return False  # the eager loader names the problem
    return not is_unmerged_lora(dict.fromkeys(keys))


def stream_official_checkpoint(model: nn.Module, path: str,
                               strict: bool = True,
                               grow_vocab: bool = False) -> dict:
    """:func:`~geopixel.checkpoint.load_official_checkpoint` for a model
    built by :func:`parameters_on_meta`: the same key tables, checks and
    report, read tensor by tensor. Accepts released (official-name)
    checkpoints and geopixel's own full checkpoints (model key names).
    """
    from .io import CheckpointError
    from .official import (convert_official_state_dict, fit_report,
                           is_unmerged_lora)
    shapes = {}
    for file in checkpoint_files(path):
        shapes.update(file_shapes(file))
    shapes = {(k[len('module.'):] if k.startswith('module.') else k): v
              for k, v in shapes.items()}
    ref = model.state_dict(keep_vars=True)
    if is_unmerged_lora(shapes):
        raise CheckpointError(
            'is an un-merged LoRA training output: it cannot be streamed '
            'into a model built on the meta device (merging needs both '
            'factors at once); build with build_on_meta=False, or merge it '
            'first (tools/model_converters/export_official.py)', path)
    if all(k in ref for k in shapes):  # geopixel's own names
        names, dropped, unknown = {k: k for k in shapes}, [], []
    else:  # the key tables map names only: pass the names as values
        names, dropped, unknown = convert_official_state_dict(
            {k: k for k in shapes}, ref.keys())
    problems = []
    for name, key in names.items():
        if name in ref and shapes[key] != tuple(ref[name].shape) and not (
                grow_vocab and _growable(name, shapes[key], ref[name])):
            problems.append(f'{key} {shapes[key]} vs model '
                            f'{tuple(ref[name].shape)}')
    if problems:
        raise CheckpointError(
            f'shapes do not fit the model: {problems[:8]}', path)
    report = fit_report(ref, names, dropped, unknown, strict, path)
    key_to_name = {key: name for name, key in names.items() if name in ref}

    def grow(name, tensor, target):
        if not (grow_vocab and _growable(name, tuple(tensor.shape), target)):
            return tensor
        grown = torch.empty(target.shape, dtype=target.dtype)
        nn.init.normal_(grown, std=0.02)  # the recipe's new rows
        grown[:tensor.shape[0]] = tensor.to(target.dtype)
        return grown

    stream_checkpoint(model, path,
                      convert=lambda k: key_to_name.get(
                          k[len('module.'):] if k.startswith('module.')
                          else k),
                      fit=grow)
    return report


def _growable(name: str, shape: tuple, target: torch.Tensor) -> bool:
    return (name.endswith(('tok_embeddings.weight', 'output.weight'))
            and len(shape) == 2 and shape[0] < target.shape[0]
            and shape[1] == target.shape[1])
