"""Parameters, memory per GPU and FLOPs per step of a GeoPixel config.

Everything is read from the real component classes, built on the meta
device with the config's own sizes (no weight file is read, no memory is
allocated): the parameter table, what trains (``requires_grad`` after each
component's own freezing rules), the image tokens (the config's tiler at the
asked ``hd_num``) and the activations of the image-side parts. The LLM's
activations and FLOPs follow a formula (``llm_activation_bytes``,
``llm_flops``; derivation in docs/en/notes/memory_and_cost.md), checked
byte for byte against what autograd keeps on CPU.

Memory per GPU, for ``N`` GPUs, ``P`` parameters of which ``T`` train, and
the precision's bytes per value (weights ``w``, gradients ``g``, optimizer
``k`` = fp32 master copy + optimizer states):

=========  ============  ==========  ==========
strategy   weights       gradients   optimizer
=========  ============  ==========  ==========
ddp        P w           T g         T k
zero2      P w           T g / N     T k / N
zero3      P w / N (*)   T g / N     T k / N
=========  ============  ==========  ==========

(*) plus the parameters below DeepSpeed's persistence threshold, which every
rank keeps whole. Buffers (DDP's gradient buckets, ZeRO's communication
buckets, ZeRO-3's gathered parameters) and activations come on top.

Nothing here imports an MMEngine runner: a config is read as data (an
MMEngine ``Config``) and components are built through the geopixel
registries.
"""
import copy
import math
import os.path as osp
import re
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

STRATEGIES = ('ddp', 'zero2', 'zero3')
GiB = 2**30

# -- building on the meta device -------------------------------------------
# Factories that create parameters and buffers go to the meta device; the
# others (arange, linspace, tensor) stay on CPU because construction code
# reads their values (SAM2's Hiera calls .item() on a linspace).
_META_FACTORIES = (torch.empty, torch.zeros, torch.ones, torch.full,
                   torch.rand, torch.randn, torch.randint, torch.empty_strided,
                   torch.eye)


class _MetaFactories(TorchFunctionMode):
    """Tensors from ``_META_FACTORIES`` without a device are meta tensors."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _META_FACTORIES and kwargs.get('device') is None:
            kwargs['device'] = 'meta'
        return func(*args, **kwargs)


def _strip_weight_paths(cfg: dict, where: str, dropped: List[str]) -> dict:
    """``cfg`` without the keys that name weight files (recorded)."""
    cfg = dict(cfg)
    for key in ('checkpoint', 'ixc_checkpoint'):
        if cfg.get(key) is not None:
            dropped.append(f'{where}.{key}={cfg[key]}')
        cfg.pop(key, None)
    return cfg


def vocabulary_size(model_cfg: dict) -> Tuple[int, str]:
    """The tokenizer's length and where it came from.

    The configured tokenizer folder when it exists; otherwise a stand-in:
    the LM's base vocabulary (``llm_config.vocab_size``, else InternLM2's
    92,544) plus the tokens the tokenizer appends (GeoPixel's three).
    """
    from geopixel.registry import TOKENIZERS
    from geopixel.structures import GEOPIXEL_TOKENS
    tok_cfg = model_cfg['tokenizer']
    path = tok_cfg.get('path') if isinstance(tok_cfg, dict) else None
    if not isinstance(tok_cfg, dict) or (path and osp.isdir(path)):
        tokenizer = TOKENIZERS.build(tok_cfg)
        return len(tokenizer), f'tokenizer {path or type(tokenizer)}'
    extra = tuple(tok_cfg.get('extra_tokens', GEOPIXEL_TOKENS))
    llm_config = dict(model_cfg['llm'].get('llm_config') or {})
    base = llm_config.get('vocab_size')
    if base is None:
        from geopixel.models.llms import InternLM2Adapter, InternLM2Config
        from geopixel.registry import LLM_ADAPTERS
        adapter = model_cfg['llm']['type']
        adapter = (LLM_ADAPTERS.get(adapter)
                   if isinstance(adapter, str) else adapter)
        if not (isinstance(adapter, type)
                and issubclass(adapter, InternLM2Adapter)):
            raise ValueError(
                f'tokenizer folder {path} not found and {adapter} has no '
                'known base vocabulary: give the vocabulary size '
                '(vocab_size=, --vocab-size)')
        base = InternLM2Config().vocab_size
    return (base + len(extra),
            f'stand-in: tokenizer folder {path} not found; the LM\'s '
            f'{base:,} pieces + {len(extra)} added tokens')


def build_parts(model_cfg: dict,
                vocab_size: Optional[int] = None) -> Tuple[dict, dict]:
    """The components of a GeoPixel ``model`` config, on the meta device.

    Wired as ``GeoPixel.__init__`` wires them (the tokenizer's length sizes
    the LLM, the LLM width the vision projector and the [SEG] projector,
    the grounding encoder the decoder); weight paths are dropped, so the
    architecture is the config's plus each class's defaults. Returns
    ``(parts, info)``: ``parts`` maps attribute names of the composite model
    to modules, ``info`` says what was dropped and where the vocabulary
    came from.
    """
    from geopixel.models.architectures.geopixel import _build
    from geopixel.registry import (GROUNDING_ENCODERS, LLM_ADAPTERS,
                                   MASK_DECODERS, MODELS, VISION_ENCODERS)
    model_cfg = copy.deepcopy(dict(model_cfg))
    dropped: List[str] = []
    top = _strip_weight_paths(model_cfg, 'model', dropped)
    if vocab_size is None:
        vocab_size, vocab_source = vocabulary_size(top)
    else:
        vocab_source = 'given'
    comps = {
        name: _strip_weight_paths(top[name], f'model.{name}', dropped)
        for name in ('llm', 'vision_encoder', 'grounding_encoder',
                     'mask_decoder')
    }
    with _MetaFactories():
        llm = _build(LLM_ADAPTERS, comps['llm'], vocab_size=vocab_size)
        hidden = llm.hidden_size
        vision = _build(VISION_ENCODERS, comps['vision_encoder'],
                        out_channels=hidden)
        grounding = _build(GROUNDING_ENCODERS, comps['grounding_encoder'])
        dim = grounding.hidden_dim
        decoder = _build(MASK_DECODERS, comps['mask_decoder'],
                         embed_dim=dim, image_size=grounding.input_size)
        projector = _build(MODELS,
                           top.get('seg_projector',
                                   dict(type='SegProjector')),
                           in_channels=hidden, out_channels=dim)
        parts = dict(llm=llm, vision_encoder=vision,
                     grounding_encoder=grounding, mask_decoder=decoder,
                     seg_projector=projector)
        if top.get('seg_words_head') is not None:
            parts['seg_words_head'] = _build(MODELS, top['seg_words_head'],
                                             in_channels=hidden,
                                             vocab_size=vocab_size)
    real = [f'{n}.{k}' for n, m in parts.items()
            for k, p in m.named_parameters() if not p.is_meta]
    if real:
        raise RuntimeError(f'parameters left off the meta device: {real[:5]}')
    return parts, dict(vocab_size=vocab_size, vocab_source=vocab_source,
                       weight_paths_not_read=dropped)


# -- parameters by part -----------------------------------------------------
PART_NAMES = {
    'vision_encoder': 'vision encoder (CLIP tower)',
    'vision_projector': 'vision projector + separators',
    'llm_embeddings': 'LLM token embeddings',
    'llm_output': 'LLM output layer',
    'llm_base': 'LLM base (layers, norms)',
    'llm_partial_lora': 'LLM partial LoRA (image tokens)',
    'llm_lora': 'LLM LoRA',
    'grounding_encoder': 'grounding encoder (SAM2 image encoder)',
    'mask_decoder': 'mask decoder (+ prompt encoder)',
    'seg_projector': '[SEG] projector',
    'other': 'other (e.g. seg_words_head)',
}
EMBEDDING_KEYS = {
    'llm.llm.model.tok_embeddings.weight': 'llm_embeddings',
    'llm.llm.output.weight': 'llm_output',
}


def part_of(name: str, special: Optional[Dict[str, str]] = None) -> str:
    """The part a parameter (composite-model key) belongs to.

    ``special`` maps exact keys to parts (the LLM's embedding and output
    weights, whose names depend on the LM).
    """
    special = EMBEDDING_KEYS if special is None else special
    if name in special:
        return special[name]
    if name.startswith('vision_encoder.'):
        return ('vision_encoder' if name.startswith('vision_encoder.vit.')
                else 'vision_projector')
    if name.startswith('llm.'):
        if re.search(r'\.lora_[AB]\.', name):
            return 'llm_lora'
        if re.search(r'\.Plora_[AB]\.', name):
            return 'llm_partial_lora'
        return 'llm_base'
    for part in ('grounding_encoder', 'mask_decoder', 'seg_projector'):
        if name.startswith(part + '.'):
            return part
    return 'other'


def embedding_keys(parts: dict) -> Dict[str, str]:
    """Keys of the LLM's input and output embedding weights."""
    llm = parts['llm']
    ids = {id(llm.input_embeddings().weight): 'llm_embeddings',
           id(llm.output_embeddings().weight): 'llm_output'}
    return {f'llm.{k}': ids[id(p)] for k, p in llm.named_parameters()
            if id(p) in ids}


def named_parameters(parts: dict):
    """``(composite key, parameter)`` of every part, each once."""
    seen = set()
    for prefix, module in parts.items():
        for name, param in module.named_parameters():
            if id(param) not in seen:
                seen.add(id(param))
                yield f'{prefix}.{name}', param


def parameter_table(parts: dict) -> Dict[str, dict]:
    """Per part: total, trainable and tensor counts."""
    special = embedding_keys(parts)
    table = {p: dict(total=0, trainable=0, tensors=0, trainable_tensors=0)
             for p in PART_NAMES}
    for name, param in named_parameters(parts):
        row = table[part_of(name, special)]
        row['total'] += param.numel()
        row['tensors'] += 1
        if param.requires_grad:
            row['trainable'] += param.numel()
            row['trainable_tensors'] += 1
    return table


def manifest_part_totals(shapes: Dict[str, Sequence[int]]
                         ) -> Tuple[Dict[str, int], Dict[str, int]]:
    """Per-part totals of an official GeoPixel key -> shape manifest.

    Keys are mapped with the checkpoint loader's tables
    (``geopixel.checkpoint.official``). Returns ``(totals, dropped)``:
    ``dropped`` sums what the loader drops on purpose, by group.
    """
    from geopixel.checkpoint.official import DROP_PATTERNS, PREFIX_TABLE
    totals = {p: 0 for p in PART_NAMES}
    dropped: Dict[str, int] = {}
    for key, shape in shapes.items():
        count = math.prod(shape)
        if any(p.search(key) for p in DROP_PATTERNS):
            group = ('IXC-2.5 lora_sft/dpo/web adapters'
                     if re.search(r'\.lora_(sft|dpo|web)_', key) else
                     'SAM2 video-memory modules'
                     if key.startswith('model.visual_model.') else key)
            dropped[group] = dropped.get(group, 0) + count
            continue
        for old, new in PREFIX_TABLE:
            if key.startswith(old):
                totals[part_of(new + key[len(old):])] += count
                break
        else:
            dropped[f'unmapped: {key}'] = count
    return totals, dropped


# -- precision, optimizer, strategy ----------------------------------------
@dataclass
class Precision:
    """Bytes per value of one training setup.

    ``optimizer`` counts the fp32 master copy (mixed precision) plus the
    optimizer states, per trainable parameter; ``step_bytes`` is torch's
    per-tensor step counter (0 under DeepSpeed, which keeps one per group).
    """
    name: str
    weights: int
    gradients: int
    optimizer: int
    activations: int
    step_bytes: int
    optimizer_name: str

    @property
    def activation_dtype(self):
        return {2: torch.bfloat16, 4: torch.float32}[self.activations]


def _type_name(obj) -> str:
    return obj if isinstance(obj, str) else getattr(obj, '__name__',
                                                    str(obj))


def optimizer_states(optimizer_cfg: dict) -> Tuple[str, int]:
    """Name and fp32 states per parameter of the config's optimizer."""
    name = _type_name(optimizer_cfg.get('type'))
    if name in ('Adam', 'AdamW', 'FusedAdam', 'DeepSpeedCPUAdam'):
        return name, 2
    if name == 'SGD':
        return name, 1 if optimizer_cfg.get('momentum', 0) else 0
    raise ValueError(f'optimizer {name}: the estimator knows Adam, AdamW '
                     'and SGD (give their states per parameter to add one)')


def is_deepspeed(cfg) -> bool:
    strategy = cfg.get('strategy') or {}
    return 'zero_optimization' in strategy or 'DeepSpeed' in _type_name(
        strategy.get('type', ''))


def training_precision(cfg) -> Precision:
    """What the config trains in.

    DeepSpeed with bf16 or fp16: 2-byte weights and gradients, an fp32
    master copy (4) and fp32 optimizer states; MMEngine's AmpOptimWrapper:
    fp32 weights and states, half-precision activations (approximately:
    autocast keeps some ops in fp32); otherwise fp32 throughout.
    """
    wrapper = cfg.get('optim_wrapper') or {}
    opt_name, states = optimizer_states(wrapper.get('optimizer') or {})
    if is_deepspeed(cfg):
        strategy = cfg.strategy
        for half in ('bf16', 'fp16'):
            if (strategy.get(half) or {}).get('enabled'):
                return Precision(f'{half} mixed precision (DeepSpeed)', 2, 2,
                                 4 + 4 * states, 2, 0, opt_name)
        return Precision('fp32 (DeepSpeed)', 4, 4, 4 * states, 4, 0,
                         opt_name)
    if 'Amp' in _type_name(wrapper.get('type', '')):
        return Precision('AMP (fp32 weights, half activations)', 4, 4,
                         4 * states, 2, 4, opt_name)
    return Precision('fp32', 4, 4, 4 * states, 4, 4, opt_name)


# DeepSpeed's documented defaults for the keys a config may leave out
ZERO_DEFAULTS = dict(
    reduce_bucket_size=int(5e8),
    allgather_bucket_size=int(5e8),
    stage3_prefetch_bucket_size=int(5e7),
    stage3_param_persistence_threshold=int(1e5))


def zero_settings(cfg) -> dict:
    """The config's ZeRO stage and bucket sizes (DeepSpeed's defaults for
    what it leaves out) and gradient accumulation."""
    settings = dict(ZERO_DEFAULTS, stage=None, accumulation=1)
    strategy = cfg.get('strategy') or {}
    zero = strategy.get('zero_optimization') or {}
    for key in ZERO_DEFAULTS:
        if zero.get(key) is not None:
            settings[key] = int(zero[key])
    if is_deepspeed(cfg):
        settings['stage'] = int(zero.get('stage', 0))
        settings['accumulation'] = int(
            strategy.get('gradient_accumulation_steps', 1) or 1)
    else:
        wrapper = cfg.get('optim_wrapper') or {}
        settings['accumulation'] = int(wrapper.get('accumulative_counts', 1))
    return settings


def model_state_bytes(table: Dict[str, dict], precision: Precision,
                      strategy: str, gpus: int, zero: dict,
                      small_params: int = 0,
                      largest_module: int = 0) -> dict:
    """Weights, gradients, optimizer and buffer bytes on one GPU.

    ``small_params``: parameters below ZeRO-3's persistence threshold (kept
    whole on every rank); ``largest_module``: parameters of the largest
    module ZeRO-3 gathers at once.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f'strategy must be one of {STRATEGIES}')
    total = sum(r['total'] for r in table.values())
    trainable = sum(r['trainable'] for r in table.values())
    tensors = sum(r['trainable_tensors'] for r in table.values())
    n = max(int(gpus), 1)
    weights = total * precision.weights
    grads = trainable * precision.gradients
    optim = trainable * precision.optimizer + tensors * precision.step_bytes
    buffers = 0
    if strategy == 'ddp':
        # PyTorch DDP's gradient buckets hold a copy of every gradient
        buffers = grads if n > 1 else 0
        return dict(weights=weights, gradients=grads, optimizer=optim,
                    buffers=buffers)
    grads //= n
    optim = math.ceil(optim / n)
    # a bucket holds at most what there is to reduce or gather
    buffers = min(zero['reduce_bucket_size'], trainable) * precision.gradients
    if strategy == 'zero2':
        buffers += min(zero['allgather_bucket_size'],
                       trainable) * precision.weights
    else:
        weights = (math.ceil((total - small_params) / n) + small_params) * \
            precision.weights
        buffers += (largest_module + min(zero['stage3_prefetch_bucket_size'],
                                         total)) * precision.weights
    return dict(weights=weights, gradients=grads, optimizer=optim,
                buffers=buffers)


# -- tokens -----------------------------------------------------------------
def _find_tiler(node):
    """The first ``tiler`` config inside a (dataloader) config."""
    if isinstance(node, dict):
        if isinstance(node.get('tiler'), dict):
            return node['tiler']
        children = node.values()
    elif isinstance(node, (list, tuple)):
        children = node
    else:
        return None
    for child in children:
        found = _find_tiler(child)
        if found is not None:
            return found
    return None


def train_tiler(cfg, hd_num: Optional[int] = None):
    """The training pipeline's tiler, with ``hd_num`` if given."""
    from geopixel.registry import TILERS
    tiler_cfg = _find_tiler(cfg.get('train_dataloader'))
    if tiler_cfg is None:
        tiler_cfg = cfg.get('train_tiler')
    if tiler_cfg is None:
        raise ValueError('the config has no tiler in its training pipeline '
                         '(a TileImage step) and no train_tiler')
    tiler_cfg = dict(tiler_cfg)
    if hd_num is not None:
        tiler_cfg['hd_num'] = int(hd_num)
    return TILERS.build(tiler_cfg)


def sequence_tokens(tiler, image_size: Tuple[int, int],
                    text_tokens: int) -> dict:
    """Grid, image tokens and the LLM sequence length of one sample."""
    plan = tiler.plan(*image_size)
    image = tiler.num_tokens(*plan['grid'])
    return dict(image_size=list(image_size), hd_num=tiler.hd_num,
                grid=list(plan['grid']), tile_size=tiler.tile_size,
                image_tokens=image, text_tokens=int(text_tokens),
                sequence=image + int(text_tokens))


# -- the LLM: activations and FLOPs by formula ------------------------------
@dataclass
class LLMShape:
    """What the formulas need of an InternLM2 adapter."""
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    lora_rank: int
    lora_dropout: float
    lora_targets: Tuple[str, ...]
    plora_rank: int
    plora_dropout: float
    train_plora: bool
    base_trains: bool
    output_trains: bool
    checkpointing: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def in_features(self, target: str) -> int:
        """Input width of one wrapped projection."""
        return self.intermediate if target.endswith('w2') else self.hidden

    def out_features(self, target: str) -> int:
        if target.endswith('wqkv'):
            return (self.heads + 2 * self.kv_heads) * self.head_dim
        if target.endswith(('w1', 'w3')):
            return self.intermediate
        return self.hidden

    @property
    def targets(self) -> Tuple[str, ...]:
        """The projections partial LoRA wraps (all five)."""
        from geopixel.models.llms.adapters import LORA_TARGETS
        return LORA_TARGETS

    @property
    def lora_wrapped(self) -> Tuple[str, ...]:
        """The projections peft's LoRA wraps (its target-name rule)."""
        if not self.lora_rank:
            return ()
        return tuple(t for t in self.targets if any(
            t == x or t.endswith('.' + x) for x in self.lora_targets))


def llm_shape(adapter) -> LLMShape:
    """Sizes and training policy of a built InternLM2 adapter."""
    from geopixel.models.llms import InternLM2Adapter
    if not isinstance(adapter, InternLM2Adapter):
        raise NotImplementedError(
            f'the activation and FLOP formulas are written for InternLM2 '
            f'adapters, not {type(adapter).__name__}')
    config = adapter.llm.config
    lora = adapter.lora_config or {}
    plora = adapter.plora_config or {}
    base = adapter.llm.model.layers[0].feed_forward.w2
    base_weight = getattr(base, 'base_layer', base).weight
    return LLMShape(
        hidden=config.hidden_size,
        intermediate=config.intermediate_size,
        layers=config.num_hidden_layers,
        heads=config.num_attention_heads,
        kv_heads=config.num_key_value_heads,
        vocab=adapter.output_embeddings().out_features,
        lora_rank=int(lora.get('r', 0)),
        lora_dropout=float(lora.get('lora_dropout', 0.0)),
        lora_targets=tuple(lora.get('target_modules', ())),
        plora_rank=int(plora.get('rank', 0)),
        plora_dropout=float(plora.get('dropout', 0.0)),
        train_plora=bool(adapter.train_plora and plora),
        base_trains=bool(base_weight.requires_grad),
        output_trains=adapter.output_embeddings().weight.requires_grad,
        checkpointing=bool(adapter.llm.model.gradient_checkpointing))


def llm_activation_bytes(shape: LLMShape, tokens: int, image_tokens: int,
                         batch: int, act_bytes: int, mask_bytes: int,
                         checkpointing: Optional[bool] = None) -> dict:
    """Bytes the LLM keeps for backward, and its transients, for a batch of
    ``batch`` sequences of ``tokens`` (``image_tokens`` of them image).

    ``act_bytes``: activation bytes (2 bf16/fp16, 4 fp32); ``mask_bytes``:
    bytes per element of a dropout mask (1 on CUDA's fused dropout, the
    activation size on CPU). Per layer and token (b = act_bytes, h hidden,
    f intermediate, a heads, g KV heads, d head size, r LoRA rank)::

        2 (4h + 4)                 two RMSNorms: fp32 input + 1/rms
        b (3h + 3 g d) + 4a        attention: rotated q and k, the packed
                                   qkv (v is a view of it), the output,
                                   fp32 log-sum-exp
        3 b f                      SiLU-gated MLP: w1 out, SiLU out, w3 out
        b (2h + f)                 LoRA inputs (w1/w3 share theirs; wo's is
                                   the attention output); with LoRA
                                   dropout instead (b + m)(in) for each of
                                   the five projections
        5 b r                      LoRA's rank-r intermediates

    plus, per layer and sample, the attention mask as an additive bias
    (``L^2 b``), and per image token the partial-LoRA dropout masks
    (``m (4h + f)``). Once per sample: the rotary tables (``2 b d L``),
    the final norm and the output layer's input (``L (4h + 4 + b h)``),
    the fp32 log-softmax over the vocabulary and the targets
    (``(L - 1)(4V + 8)``) and the image-token mask (``L``). With gradient
    checkpointing only each layer's input (``b h L``) and the boolean
    attention mask (``L^2``) stay; one layer is recomputed at a time
    (``recompute``). ``head_transient``: the logits and their fp32 copy
    while the loss is computed (``(b + 4) V L``).
    """
    s = shape
    b, m, h, f = act_bytes, mask_bytes, s.hidden, s.intermediate
    L, n_img = int(tokens), int(image_tokens)
    if checkpointing is None:
        checkpointing = s.checkpointing
    targets, wrapped = s.targets, s.lora_wrapped
    per_token = 2 * (4 * h + 4) + b * (3 * h + 3 * s.kv_heads * s.head_dim)
    per_token += 4 * s.heads + 3 * b * f
    if s.lora_dropout:  # each LoRA keeps its own dropout output and mask
        per_token += sum((b + m) * s.in_features(t) for t in wrapped)
    # projections whose own input is kept for a weight gradient
    raw = targets if s.base_trains else ([] if s.lora_dropout else wrapped)
    # each tensor once: w1 and w3 read the same one, and wo reads the
    # attention output, which attention keeps anyway
    kept = {'n1' if t.endswith('wqkv') else
            'n2' if t.endswith(('w1', 'w3')) else
            'p' if t.endswith('w2') else 'o' for t in raw}
    per_token += b * (h * len(kept & {'n1', 'n2'}) + f * ('p' in kept))
    per_token += len(wrapped) * b * s.lora_rank
    per_image_token = 0
    if s.plora_rank and s.plora_dropout:
        per_image_token += m * sum(s.in_features(t) for t in targets)
    if s.train_plora:
        per_image_token += sum(b * (s.in_features(t) + s.plora_rank)
                               for t in targets)
    per_layer = L * per_token + n_img * per_image_token + L * L * b
    shared = 2 * b * s.head_dim * L + L * (4 * h + 4)
    shared += L * b * h if s.output_trains else 0
    shared += (L - 1) * (4 * s.vocab + 8)
    if checkpointing:
        saved = s.layers * L * b * h + L * L + shared
        recompute = per_layer + L
    else:
        saved = s.layers * per_layer + shared + L
        recompute = 0
    return dict(saved=batch * saved, recompute=batch * recompute,
                head_transient=batch * (b + 4) * s.vocab * L,
                per_layer=batch * per_layer)


def llm_flops(shape: LLMShape, tokens: int, image_tokens: int,
              checkpointing: Optional[bool] = None) -> dict:
    """Forward and backward FLOPs of the LLM for one sequence.

    A matmul with ``N`` weights costs ``2N`` per token forward; backward,
    ``2N`` for the input gradient (always needed: the embeddings, the
    projector and LoRA below train) plus ``2N`` for the weight gradient
    only if the weight trains: frozen weights cost ``4N``, trained ones
    ``6N``. Attention scores and values: ``4 L^2 h`` per layer forward
    (the mask is dense, so no causal saving), twice that backward.
    Partial LoRA runs on image tokens only; gradient checkpointing adds one
    more forward of the layers.
    """
    s = shape
    L, n_img = int(tokens), int(image_tokens)
    if checkpointing is None:
        checkpointing = s.checkpointing
    base = sum(s.in_features(t) * s.out_features(t) for t in s.targets)
    lora = sum(s.lora_rank * (s.in_features(t) + s.out_features(t))
               for t in s.lora_wrapped)
    plora = sum(s.plora_rank * (s.in_features(t) + s.out_features(t))
                for t in s.targets) if s.plora_rank else 0
    attention = 4 * L * L * s.hidden
    layer_fwd = 2 * base * L + 2 * lora * L + 2 * plora * n_img + attention
    layer_bwd = (2 * base * L * (2 if s.base_trains else 1) +
                 4 * lora * L +
                 2 * plora * n_img * (2 if s.train_plora else 1) +
                 2 * attention)
    head = 2 * s.hidden * s.vocab * L
    forward = s.layers * layer_fwd + head
    backward = s.layers * layer_bwd + head * (2 if s.output_trains else 1)
    recompute = s.layers * layer_fwd if checkpointing else 0
    return dict(forward=forward, backward=backward, recompute=recompute,
                total=forward + backward + recompute)


# -- the image side: traced on the meta device ------------------------------
class _AttentionKeeps(torch.autograd.Function):
    """What an efficient attention kernel keeps for backward: q, k, v, the
    output, the fp32 log-sum-exp and the mask as an additive bias."""

    @staticmethod
    def forward(ctx, q, k, v, bias):
        shape = q.shape[:-1] + (v.shape[-1], )
        if q.dim() == 4:  # kernels write [B, L, heads, d] and return a view
            out = q.new_empty(shape[0], shape[2], shape[1],
                              shape[3]).transpose(1, 2)
        else:
            out = q.new_empty(shape)
        lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse, bias)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v = ctx.saved_tensors[:3]
        return (torch.empty_like(q), torch.empty_like(k),
                torch.empty_like(v), None)


# products whose operands a real (non-meta) kernel requires to share a dtype
_PRODUCTS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__,
             torch.Tensor.__rmatmul__, torch.mm, torch.bmm, F.linear)


class MetaTrace(TorchFunctionMode):
    """Run image-side modules on meta tensors as a GPU would.

    Meta tensors take attention's math path (which keeps the attention
    matrix); here ``scaled_dot_product_attention`` keeps what an efficient
    kernel keeps instead (:class:`_AttentionKeeps`). Its FLOPs, which the
    FLOP counter cannot see then, are added up per part (``part``):
    ``2 Lq Lk (dk + dv)`` per batch and head forward, twice that backward
    when an input needs a gradient.

    Meta kernels also accept a product of float32 and bfloat16 operands,
    which real kernels refuse. Such products are recorded in
    ``mixed_dtypes`` and computed in the half precision, as the official
    GeoPixel code does for SAM2's positional encoding.
    """

    def __init__(self):
        super().__init__()
        self.attention_flops: Dict[str, int] = {}
        self.mixed_dtypes: Dict[str, List[str]] = {}
        self.current = 'other'

    def part(self, name: str):
        """Attribute attention FLOPs inside to ``name``."""
        return _Scope(self, 'current', name)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _PRODUCTS:
            args = self._common_dtype(func, args)
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        q, k, v = args[:3]
        mask = kwargs.get('attn_mask', args[3] if len(args) > 3 else None)
        flops = 2 * math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] +
                                                            v.shape[-1])
        if torch.is_grad_enabled() and any(t.requires_grad
                                           for t in (q, k, v)):
            flops *= 3
        self.attention_flops[self.current] = self.attention_flops.get(
            self.current, 0) + flops
        bias = None
        if mask is not None:
            bias = (mask.new_empty(mask.shape, dtype=q.dtype)
                    if mask.dtype == torch.bool else mask)
        return _AttentionKeeps.apply(q, k, v, bias)

    def _common_dtype(self, func, args):
        dtypes = {a.dtype for a in args
                  if torch.is_tensor(a) and a.is_floating_point()}
        if len(dtypes) < 2:
            return args
        half = min(dtypes, key=lambda d: torch.finfo(d).bits)
        name = getattr(func, '__name__', str(func))
        what = f'{name} of {" and ".join(sorted(map(str, dtypes)))}'
        seen = self.mixed_dtypes.setdefault(self.current, [])
        if what not in seen:
            seen.append(what)
        return tuple(
            a.to(half) if torch.is_tensor(a) and a.is_floating_point() else a
            for a in args)


class _Scope:
    """Set ``obj.attr`` to ``value`` inside, and back after."""

    def __init__(self, obj, attr: str, value, hooks=None):
        self.obj, self.attr, self.value, self.hooks = obj, attr, value, hooks

    def __enter__(self):
        self.previous = getattr(self.obj, self.attr)
        setattr(self.obj, self.attr, self.value)
        if self.hooks is not None:
            self.hooks.__enter__()

    def __exit__(self, *exc):
        if self.hooks is not None:
            self.hooks.__exit__(*exc)
        setattr(self.obj, self.attr, self.previous)


class SavedTensorCounter:
    """Bytes of the distinct storages autograd keeps for backward.

    Use as ``with counter.part('name'):`` around forward code; parameters,
    buffers and storages listed in ``exclude`` are not counted, and a
    storage is counted once, for the first part that keeps it. Works on
    real and meta tensors.
    """

    def __init__(self, exclude: Sequence[torch.Tensor] = ()):
        self.excluded = {self._key(t) for t in exclude}
        self.bytes: Dict[str, int] = {}
        self._seen = set()
        self._held = []
        self._part = 'other'

    @staticmethod
    def _key(t: torch.Tensor) -> int:
        return t.untyped_storage()._cdata

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = self._key(t)
        if (key not in self.excluded and key not in self._seen
                and not isinstance(t, nn.Parameter)):
            self._seen.add(key)
            self._held.append(t)  # keeps the storage (and its key) alive
            self.bytes[self._part] = (self.bytes.get(self._part, 0) +
                                      t.untyped_storage().nbytes())
        return t

    def part(self, name: str):
        """Count what autograd keeps inside as ``name``'s."""
        return _Scope(self, '_part', name,
                      torch.autograd.graph.saved_tensors_hooks(
                          self._pack, lambda t: t))

    @property
    def total(self) -> int:
        return sum(self.bytes.values())


def trace_image_side(parts: dict, grid: Tuple[int, int],
                     image_size: Tuple[int, int],
                     masks: Union[int, Sequence[int]], dtype,
                     losses: Sequence[nn.Module], batch: int = 1) -> dict:
    """Saved bytes and FLOPs (forward + backward) of a batch of
    ``batch`` samples through the image side, on meta tensors in
    ``dtype``, called as ``GeoPixel.loss`` calls it: the vision encoder at
    ``grid``, the grounding encoder, the [SEG] projector and the mask
    decoder with ``masks`` prompts per sample (one count for all, or one
    per sample), the mask ``losses`` (BCE,
    Dice) at ``image_size`` (width, height), and the [SEG] words head if
    any.

    Backward runs too (on meta), so the FLOPs are those of the ops a
    training step differentiates: frozen encoders run without gradients
    and cost one forward; the LLM's gradient enters at the visual tokens.
    """
    from torch.utils.flop_counter import FlopCounterMode
    per_sample = ([int(masks)] * batch if isinstance(masks, int) else
                  [int(n) for n in masks])
    if len(per_sample) != batch:
        raise ValueError(f'{len(per_sample)} mask counts for a batch of '
                         f'{batch}')
    names = [n for n in ('vision_encoder', 'grounding_encoder',
                         'seg_projector', 'mask_decoder', 'seg_words_head')
             if n in parts]
    for name in names:
        parts[name].to(dtype).train()
    vision, grounding = parts['vision_encoder'], parts['grounding_encoder']
    width, height = image_size
    tile = vision.tile_size
    meta = dict(device='meta', dtype=dtype)
    # weights kept for backward (e.g. a transposed view) are no activation
    counter = SavedTensorCounter(exclude=[
        t for name in names
        for t in (*parts[name].parameters(), *parts[name].buffers())
    ])
    trace = MetaTrace()

    def part(name):
        return _Both(counter.part(name), trace.part(name))

    with trace, FlopCounterMode(display=False) as counts:
        with part('vision_encoder'):
            canvas = torch.empty(3, grid[0] * tile, grid[1] * tile, **meta)
            visual = vision([canvas] * batch, [tuple(grid)] * batch)
        with part('grounding_encoder'):
            side = grounding.input_size
            features = grounding(torch.empty(batch, 3, side, side, **meta))
        with part('seg_projector'):
            states = torch.empty(sum(per_sample), parts['llm'].hidden_size,
                                 requires_grad=True, **meta)
            prompts = parts['seg_projector'](states).split(per_sample)
        with part('mask_decoder'):
            logits = parts['mask_decoder'](features, prompts,
                                           [(height, width)] * batch)
            bce, dice = losses
            loss = 0
            for x in logits:  # each sample's masks, as float
                gt = torch.empty(x.shape[0], height, width, device='meta')
                loss = loss + bce(x, gt).flatten(1).mean(1).sum() + dice(
                    x, gt).sum()
        if 'seg_words_head' in parts:
            with part('seg_words_head'):
                loss = loss + parts['seg_words_head'].loss(
                    states, [[0]] * sum(per_sample))
        roots = [t for t in (*visual, loss) if t.requires_grad]
        torch.autograd.backward(roots, [torch.empty_like(t) for t in roots])
    by_module = counts.get_flop_counts()
    flops = {
        name: sum(by_module.get(type(parts[name]).__name__, {}).values()) +
        trace.attention_flops.get(name, 0)
        for name in names
    }
    # what ran outside a part's forward (losses, the [SEG] words head's
    # loss method)
    flops['other'] = counts.get_total_flops() + sum(
        trace.attention_flops.values()) - sum(flops.values())
    return dict(saved={n: counter.bytes.get(n, 0) for n in names},
                flops=flops,
                visual_tokens=visual[0].shape[0],
                mixed_dtypes=dict(trace.mixed_dtypes))


class _Both:

    def __init__(self, *scopes):
        self.scopes = scopes

    def __enter__(self):
        for scope in self.scopes:
            scope.__enter__()

    def __exit__(self, *exc):
        for scope in reversed(self.scopes):
            scope.__exit__(*exc)


def mask_losses(model_cfg: dict) -> Tuple[nn.Module, nn.Module]:
    """The model's BCE and Dice mask losses (GeoPixel's defaults when the
    config gives none)."""
    import inspect

    from geopixel.models.architectures import GeoPixel
    from geopixel.registry import MODELS
    defaults = inspect.signature(GeoPixel.__init__).parameters
    return tuple(
        MODELS.build(model_cfg.get(name) or defaults[name].default)
        for name in ('loss_bce', 'loss_dice'))


def _model_cfg(cfg) -> dict:
    model = cfg.get('model')
    if model is None:
        raise ValueError('the config has no model')
    return model.to_dict() if hasattr(model, 'to_dict') else dict(model)


def estimate(cfg,
             gpus: int = 1,
             hd_num: Optional[int] = None,
             batch_size: Optional[int] = None,
             grad_checkpointing: Optional[bool] = None,
             strategies: Sequence[str] = STRATEGIES,
             image_size: Tuple[int, int] = (800, 800),
             text_tokens: int = 256,
             masks: Union[int, Sequence[int]] = 4,
             vocab_size: Optional[int] = None,
             device: str = 'cuda') -> dict:
    """Parameters, memory per GPU and FLOPs of one training step of
    ``cfg`` (an MMEngine ``Config``), as a JSON-ready dict.

    ``None`` arguments come from the config (batch size, hd_num of the
    training tiler, gradient checkpointing of the LLM). ``image_size`` is
    (width, height) of a training image, ``text_tokens`` the text tokens
    of a sample and ``masks`` its ``[SEG]`` masks (or a list, one count per
    sample of the batch). ``device`` only changes
    the size of dropout masks (1 byte on CUDA, the activation size on CPU).
    """
    parts, info = build_parts(_model_cfg(cfg), vocab_size)
    table = parameter_table(parts)
    precision = training_precision(cfg)
    zero = zero_settings(cfg)
    if batch_size is None:
        batch_size = int(cfg.train_dataloader.batch_size)
    tiler = train_tiler(cfg, hd_num)
    vision = parts['vision_encoder']
    if vision.tile_size != tiler.tile_size:
        raise ValueError(f'the tiler cuts {tiler.tile_size} px tiles but the '
                         f'vision encoder takes {vision.tile_size} px')
    tokens = sequence_tokens(tiler, tuple(image_size), text_tokens)
    shape = llm_shape(parts['llm'])
    if grad_checkpointing is None:
        grad_checkpointing = shape.checkpointing
    act = precision.activations
    mask_bytes = 1 if device == 'cuda' else act
    llm_act = llm_activation_bytes(shape, tokens['sequence'],
                                   tokens['image_tokens'], batch_size, act,
                                   mask_bytes, grad_checkpointing)
    image = trace_image_side(parts, tuple(tokens['grid']),
                             tuple(image_size), masks,
                             precision.activation_dtype,
                             mask_losses(_model_cfg(cfg)), batch_size)
    if image['visual_tokens'] != tokens['image_tokens']:
        raise ValueError(f'the vision encoder gives {image["visual_tokens"]} '
                         f'tokens, the tiler plans {tokens["image_tokens"]}')
    saved = dict(image['saved'], llm=llm_act['saved'])
    activations = dict(
        saved=saved,
        saved_total=sum(saved.values()),
        head_transient=llm_act['head_transient'],
        recompute=llm_act['recompute'])
    activations['peak'] = (activations['saved_total'] +
                           max(llm_act['head_transient'],
                               llm_act['recompute']))
    flops = _step_flops(shape, tokens, image['flops'], batch_size,
                        grad_checkpointing)
    small, largest = _zero3_sizes(parts, zero)
    memory = {}
    for strategy in strategies:
        state = model_state_bytes(table, precision, strategy, gpus, zero,
                                  small, largest)
        state['activations'] = activations['peak']
        state['total'] = sum(state.values())
        memory[strategy] = state
    total = sum(r['total'] for r in table.values())
    trainable = sum(r['trainable'] for r in table.values())
    max_iters = (cfg.get('train_cfg') or {}).get('max_iters')
    return dict(
        parameters=dict(parts=table, total=total, trainable=trainable),
        vocabulary=dict(size=info['vocab_size'],
                        source=info['vocab_source']),
        weight_paths_not_read=info['weight_paths_not_read'],
        mixed_dtypes=image['mixed_dtypes'],
        precision=asdict(precision),
        zero=zero,
        setting=dict(gpus=int(gpus), batch_size=int(batch_size),
                     grad_checkpointing=bool(grad_checkpointing),
                     masks_per_sample=masks, device=device,
                     max_iters=max_iters),
        tokens=tokens,
        activations=activations,
        memory=memory,
        flops=flops)


def _step_flops(shape, tokens, image_flops, batch, checkpointing):
    """FLOPs per sample and per iteration (forward + backward)."""
    llm = llm_flops(shape, tokens['sequence'], tokens['image_tokens'],
                    checkpointing)
    per_sample = {k: v // batch for k, v in image_flops.items()}
    per_sample['llm'] = llm['total']
    per_sample_total = sum(per_sample.values())
    return dict(per_sample=per_sample, per_sample_total=per_sample_total,
                llm_detail=llm, per_iteration=batch * per_sample_total)


def _zero3_sizes(parts: dict, zero: dict) -> Tuple[int, int]:
    """Parameters below ZeRO-3's persistence threshold, and the most
    parameters one module holds directly (gathered at once)."""
    threshold = zero['stage3_param_persistence_threshold']
    small = sum(p.numel() for _, p in named_parameters(parts)
                if p.numel() < threshold)
    largest = max(
        sum(p.numel() for p in m.parameters(recurse=False))
        for part in parts.values() if isinstance(part, nn.Module)
        for m in part.modules())
    return small, largest


# -- measuring a real step --------------------------------------------------
def peak_allocated_bytes(step) -> int:
    """Peak of CPU bytes allocated during ``step()`` above what was
    allocated before it, from the profiler's allocator events."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        step()
    events = [
        e for e in prof.profiler.kineto_results.events()
        if e.name() == '[memory]' and e.device_type().name == 'CPU'
    ]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


# -- report -----------------------------------------------------------------
def _gib(value: float) -> str:
    return f'{value / GiB:,.2f}'


def _flops(value: float) -> str:
    for unit, scale in (('E', 1e18), ('P', 1e15), ('T', 1e12), ('G', 1e9),
                        ('M', 1e6)):
        if value >= scale:
            return f'{value / scale:,.2f} {unit}'
    return f'{value:,.0f}'


def _count(value: int) -> str:
    return f'{value / 1e6:,.1f}M' if value >= 1e5 else f'{value:,}'


def to_markdown(report: dict, config: str = '') -> str:
    """The report as markdown tables."""
    lines = []
    s, t = report['setting'], report['tokens']
    precision = report['precision']
    masks = s['masks_per_sample']
    masks = masks if isinstance(masks, int) else ', '.join(map(str, masks))
    lines.append(
        f'{config}: {s["gpus"]} GPU(s), batch {s["batch_size"]} per GPU, '
        f'hd_num {t["hd_num"]} ({t["grid"][0]} x {t["grid"][1]} tiles of '
        f'{t["tile_size"]} px for a {t["image_size"][0]} x '
        f'{t["image_size"][1]} image), gradient checkpointing '
        f'{"on" if s["grad_checkpointing"] else "off"}, '
        f'{precision["name"]}, {precision["optimizer_name"]}')
    lines += ['', '| part | parameters | trainable |', '|---|---:|---:|']
    params = report['parameters']
    for key, row in params['parts'].items():
        if row['total']:
            lines.append(f'| {PART_NAMES[key]} | {_count(row["total"])} | '
                         f'{_count(row["trainable"])} |')
    lines.append(f'| **total** | **{params["total"]:,}** | '
                 f'**{params["trainable"]:,}** |')
    lines += [
        '', f'Tokens per sample: {t["image_tokens"]:,} image + '
        f'{t["text_tokens"]:,} text = {t["sequence"]:,}; '
        f'masks per sample: {masks}. Vocabulary '
        f'{report["vocabulary"]["size"]:,} ({report["vocabulary"]["source"]}).'
    ]
    memory = report['memory']
    names = list(memory)
    lines += ['', '| GiB per GPU | ' + ' | '.join(names) + ' |',
              '|---|' + '---:|' * len(names)]
    rows = [('weights', 'weights'), ('gradients', 'gradients'),
            ('optimizer (fp32 master + states)', 'optimizer'),
            ('buffers (buckets, gathered params)', 'buffers'),
            ('activations (peak)', 'activations'), ('**total**', 'total')]
    for label, key in rows:
        lines.append(f'| {label} | ' + ' | '.join(
            _gib(memory[n][key]) for n in names) + ' |')
    act = report['activations']
    lines += ['', '| activations (GiB per GPU) | |', '|---|---:|']
    for name, value in act['saved'].items():
        lines.append(f'| kept for backward: {name} | {_gib(value)} |')
    lines.append(f'| kept for backward, total | {_gib(act["saved_total"])} |')
    lines.append(f'| LM-head logits while the loss runs | '
                 f'{_gib(act["head_transient"])} |')
    lines.append(f'| one layer recomputed (checkpointing) | '
                 f'{_gib(act["recompute"])} |')
    fl = report['flops']
    lines += ['', '| FLOPs (forward + backward) | per sample |', '|---|---:|']
    for name, value in fl['per_sample'].items():
        lines.append(f'| {name} | {_flops(value)} |')
    lines.append(f'| **per iteration per GPU** (batch {s["batch_size"]}) | '
                 f'**{_flops(fl["per_iteration"])}** |')
    if s.get('max_iters'):
        total = fl['per_iteration'] * s['gpus'] * s['max_iters']
        lines.append(f'| whole schedule ({s["max_iters"]:,} iterations x '
                     f'{s["gpus"]} GPUs) | {_flops(total)} |')
    for part, what in report['mixed_dtypes'].items():
        lines += [
            '', f'Warning: {part} multiplies mixed dtypes ({", ".join(what)})'
            ': a real kernel refuses that, so a real step fails there; '
            'traced in the half precision.'
        ]
    if report['weight_paths_not_read']:
        lines += ['', 'Weight files not read (architecture from the config '
                  'and class defaults): ' +
                  ', '.join(report['weight_paths_not_read'])]
    return '\n'.join(lines)
