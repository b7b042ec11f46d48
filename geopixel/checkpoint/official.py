"""Key tables between the official GeoPixel / IXC-2.5 / SAM2 checkpoints
and the geopixel model.

Official name (released GeoPixel-7B)          geopixel name
--------------------------------------------  ---------------------------------
vit.vision_tower.vision_model.*               vision_encoder.vit.*
vision_proj.*                                 vision_encoder.projector.*
plora_glb_GN / plora_sub_GN                   vision_encoder.glb_GN / sub_GN
model.tok_embeddings / layers / norm, output  llm.llm.model.* , llm.llm.output
model.visual_model.image_encoder.*            grounding_encoder.image_encoder.*
model.visual_model.no_mem_embed               grounding_encoder.no_mem_embed
model.visual_model.sam_prompt_encoder.*       mask_decoder.prompt_encoder.*
model.visual_model.sam_mask_decoder.*         mask_decoder.mask_decoder.*
model.text_hidden_fcs.0.*                     seg_projector.*

Dropped: IXC-2.5's unused ``lora_sft/dpo/web`` adapters (about 3B
parameters) and SAM2's video-memory modules. Un-merged training outputs
(``base_model.model.`` prefix, ``base_layer`` and ``lora_A/B.default``) are
merged first (``W += B @ A * scaling``, the scaling from the run's recorded
LoRA configuration: ``lora.py``). Where the target module carries a
peft LoRA wrapper, ``X.weight`` lands on ``X.base_layer.weight``.
"""
import re
from typing import Dict, Iterable, List, Tuple

import torch

from .lora import merge_unmerged_lora, read_lora_config

PREFIX_TABLE: List[Tuple[str, str]] = [
    ('vit.vision_tower.vision_model.', 'vision_encoder.vit.'),
    ('vision_proj.', 'vision_encoder.projector.'),
    ('plora_glb_GN', 'vision_encoder.glb_GN'),
    ('plora_sub_GN', 'vision_encoder.sub_GN'),
    ('model.visual_model.image_encoder.', 'grounding_encoder.image_encoder.'),
    ('model.visual_model.no_mem_embed', 'grounding_encoder.no_mem_embed'),
    ('model.visual_model.sam_prompt_encoder.', 'mask_decoder.prompt_encoder.'),
    ('model.visual_model.sam_mask_decoder.', 'mask_decoder.mask_decoder.'),
    ('model.text_hidden_fcs.0.', 'seg_projector.'),
    ('model.tok_embeddings.', 'llm.llm.model.tok_embeddings.'),
    ('model.layers.', 'llm.llm.model.layers.'),
    ('model.norm.', 'llm.llm.model.norm.'),
    ('output.', 'llm.llm.output.'),
]
# weights of modules GeoPixel never runs (a release still carries them)
UNUSED_PATTERNS = [
    re.compile(r'\.lora_(sft|dpo|web)_[AB]\.'),
    re.compile(r'^model\.visual_model\.(memory_attention|memory_encoder|'
               r'mask_downsample|maskmem_tpos_enc|no_mem_pos_enc|no_obj_ptr|'
               r'obj_ptr_proj|obj_ptr_tpos_proj)'),
]
# buffers transformers 4.33 does not save (a release has none)
NOT_SAVED_PATTERNS = [re.compile(r'position_ids$')]
DROP_PATTERNS = UNUSED_PATTERNS + NOT_SAVED_PATTERNS
# the layout differences _fit_to_target follows (export.py inverts them):
# a peft wrapper's module, and CLIP nested by older transformers
PEFT_BASE_LAYER = 'base_layer'
CLIP_FLAT, CLIP_NESTED = ('vision_encoder.vit.',
                          'vision_encoder.vit.vision_model.')


def is_unmerged_lora(state: Dict[str, torch.Tensor]) -> bool:
    """A peft training output whose LoRA is not merged yet."""
    return any(k.startswith('base_model.model.') for k in state)


def convert_official_state_dict(
        state: Dict[str, torch.Tensor],
        target_keys: Iterable[str],
        lora_config=None) -> Tuple[dict, List[str], List[str]]:
    """Official keys -> geopixel keys for a model with ``target_keys``.

    An un-merged training output is merged first with ``lora_config``
    (required for one). Returns ``(converted, dropped, unknown)``:
    ``dropped`` are keys the tables leave out on purpose, ``unknown`` keys
    no table knows.
    """
    targets = set(target_keys)
    if is_unmerged_lora(state):
        state = merge_unmerged_lora(state, lora_config)
    converted, dropped, unknown = {}, [], []
    for key, value in state.items():
        if any(p.search(key) for p in DROP_PATTERNS):
            dropped.append(key)
            continue
        for old, new in PREFIX_TABLE:
            if key.startswith(old):
                name = new + key[len(old):]
                break
        else:
            unknown.append(key)
            continue
        name = _fit_to_target(name, targets)
        converted[name] = value
    return converted, dropped, unknown


def _fit_to_target(name: str, targets: set) -> str:
    """Follow peft wrappers and HF layout differences of the target."""
    if name in targets:
        return name
    # a peft LoRA wrapper puts the wrapped module under `base_layer`:
    # X.weight -> X.base_layer.weight, X.Plora_A.weight ->
    # X.base_layer.Plora_A.weight
    parts = name.split('.')
    for i in range(len(parts) - 1, 0, -1):
        wrapped = '.'.join(parts[:i] + [PEFT_BASE_LAYER] + parts[i:])
        if wrapped in targets:
            return wrapped
    # older transformers nest CLIP under `vision_model.`
    nested = name.replace(CLIP_FLAT, CLIP_NESTED, 1)
    if nested in targets:
        return nested
    return name


def fit_report(ref, loaded, dropped: list, unknown: list, strict: bool,
               path: str) -> dict:
    """The load report of model keys ``ref`` filled from ``loaded`` (model
    key names); with ``strict``, anything that does not fit is a
    :class:`CheckpointError`. A merged release has no peft LoRA weights:
    those may stay missing."""
    from .io import CheckpointError, describe_fit
    missing = [k for k in ref if k not in loaded
               and '.lora_A.' not in k and '.lora_B.' not in k]
    unexpected = [k for k in loaded if k not in ref]
    report = dict(missing=missing, unexpected=unexpected, dropped=dropped,
                  unknown=unknown)
    if strict and (missing or unexpected or unknown):
        raise CheckpointError(
            f'does not fit the model: {describe_fit(report)}; unknown keys '
            f'{unknown[:8]}', path)
    return report


def load_official_checkpoint(model: torch.nn.Module,
                             path: str,
                             strict: bool = True,
                             grow_vocab: bool = False,
                             lora_config=None) -> dict:
    """Load a released GeoPixel checkpoint (file or folder) into ``model``
    (a full geopixel checkpoint, in the model's own key names, loads too).

    Returns a report with ``missing`` (model keys not in the checkpoint),
    ``unexpected``, ``dropped`` and ``unknown`` key lists. With ``strict``,
    unknown or missing keys (other than LoRA weights the checkpoint cannot
    have, since it is merged) raise a :class:`CheckpointError` before
    anything is loaded, so the model is never left half-loaded.
    ``grow_vocab`` lets a checkpoint with
    fewer token rows (IXC-2.5: 92544) fill the first rows of a model whose
    vocabulary was grown for GeoPixel's tokens (92547); the new rows keep
    their N(0, 0.02) initialisation, as in the official recipe.

    An un-merged training output is merged with the LoRA configuration it
    was trained with: ``lora_config`` if given, else the
    ``adapter_config.json`` beside it, else the ``lora`` of the config
    ``model`` was built from (``model.llm.lora_config``). Without any of
    them, or with a rank that contradicts the configuration, it is refused.
    """
    from .io import CheckpointError, read_state_dict
    from .meta import meta_keys, stream_official_checkpoint
    if meta_keys(model):  # built on the meta device: never two copies
        return stream_official_checkpoint(model, path, strict, grow_vocab)
    state = read_state_dict(path)
    ref = model.state_dict()
    if is_unmerged_lora(state) and lora_config is None:
        lora_config = read_lora_config(path) or getattr(
            getattr(model, 'llm', None), 'lora_config', None)
        if lora_config is None:
            raise CheckpointError(
                'is an un-merged LoRA training output, and no LoRA '
                'configuration says how to merge it: put its '
                'adapter_config.json beside it, or pass lora_config', path)
    try:
        if state and all(k in ref for k in state):  # geopixel's own names
            converted, dropped, unknown = dict(state), [], []
        else:
            converted, dropped, unknown = convert_official_state_dict(
                state, ref.keys(), lora_config)
    except ValueError as exc:
        raise CheckpointError(str(exc), path) from None
    partly_random = set()
    for key, value in list(converted.items()):
        if (grow_vocab and key in ref and value.dim() == 2
                and key.endswith(('tok_embeddings.weight', 'output.weight'))
                and value.shape[0] < ref[key].shape[0]
                and value.shape[1] == ref[key].shape[1]):
            grown = ref[key].detach().clone()
            grown[:value.shape[0]] = value.to(grown.dtype)
            converted[key] = value = grown
            partly_random.add(key)  # its new rows come from no file
        if key in ref and ref[key].shape != value.shape:
            raise CheckpointError(
                f'{key} has shape {tuple(value.shape)} in the checkpoint but '
                f'{tuple(ref[key].shape)} in the model', path)
        if key in ref:
            converted[key] = value.to(ref[key].dtype)
    report = fit_report(ref, converted, dropped, unknown, strict, path)
    loaded = {k: v for k, v in converted.items() if k in ref}
    model.load_state_dict(loaded, strict=False)
    from .frozen import mark_loaded, unmark
    mark_loaded(model, path, [k for k in loaded if k not in partly_random])
    tensors = model.state_dict(keep_vars=True)
    for key in partly_random:
        unmark(tensors[key])
    return report
