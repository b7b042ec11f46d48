"""What a run needs before anything is built, all reported at once.

``tools/train.py`` and ``tools/test.py`` call :func:`check_run_prerequisites`
first. Without it a missing DeepSpeed surfaces as an ``AssertionError``
from inside MMEngine, and only after installing it does the user learn
that the tokenizer folder is missing too.
"""
import os.path as osp
from typing import List, Optional

from .setup import is_installed

# model config keys whose string values are local files or folders
_MODEL_PATH_KEYS = ('path', 'checkpoint', 'ixc_checkpoint')
WEIGHTS_GUIDE = 'docs/en/user_guides/checkpoints.md'


def _strategy_name(cfg) -> str:
    strategy = cfg.get('strategy') or {}
    kind = strategy.get('type', '') if isinstance(strategy, dict) else ''
    return getattr(kind, '__name__', kind) or ''


def _type_names(node) -> set:
    """Names of every ``type`` in a config node (classes or strings)."""
    names = set()
    if isinstance(node, dict):
        kind = node.get('type')
        if kind is not None:
            names.add(getattr(kind, '__name__', str(kind)).split('.')[-1])
        for value in node.values():
            names |= _type_names(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            names |= _type_names(value)
    return names


def _model_paths(node, where: str):
    """``(config key, path)`` for every local path the model config names."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f'{where}.{key}'
            if key in _MODEL_PATH_KEYS and isinstance(value, str):
                yield here, value
            else:
                yield from _model_paths(value, here)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _model_paths(value, f'{where}[{i}]')


def _what_it_is(keys, model_types: set) -> str:
    """What a missing model path should hold, from the keys that read it."""
    last = {k.rsplit('.', 1)[-1] for k in keys}
    parts = {k.split('.')[1] if k.count('.') > 1 else k for k in keys}
    if 'ixc_checkpoint' in last:
        return ('the IXC-2.5 folder (internlm/internlm-xcomposer2d5-7b: '
                'LLM, CLIP, projector and tokenizer)')
    if 'model.checkpoint' in keys:
        return ('a GeoPixel folder (MBZUAI/GeoPixel-7B, its -RES variant, '
                'or one tools/model_converters/export_official.py wrote)')
    if parts & {'grounding_encoder', 'mask_decoder'}:
        if any(t.startswith('SAM2') for t in model_types):
            return ('the SAM2 checkpoint (sam2_hiera_large.pt of '
                    'facebook/sam2-hiera-large)')
        return 'the SAM ViT-H folder (facebook/sam-vit-huge)'
    if 'vision_encoder' in parts:
        return ('the CLIP folder (internlm/internlm-xcomposer2d5-clip)')
    if parts == {'tokenizer'}:
        return 'the tokenizer folder'
    return 'weights'


def _data_paths(cfg, loaders):
    # only the root: how ann_file is read depends on the dataset class,
    # which names a missing annotation file itself
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        if dataset.get('data_root') is not None:
            yield f'{loader}.dataset.data_root', dataset['data_root']


_EVALUATORS = dict(train_dataloader='val_evaluator',
                   val_dataloader='val_evaluator',
                   test_dataloader='test_evaluator')


def missing_extras(cfg, loaders=('train_dataloader', )) -> List[str]:
    """The optional packages the config's choices need and lacks."""
    problems = []
    strategy = _strategy_name(cfg)
    if 'DeepSpeed' in strategy and not is_installed('deepspeed'):
        problems.append(
            f'the config trains with {strategy}, and DeepSpeed is not '
            'installed: pip install -r requirements/deepspeed.txt (without '
            'a GPU it runs on CPU with DS_ACCELERATOR=cpu: '
            'docs/en/advanced_guides/deepspeed.md)')
    model_types = _type_names(cfg.get('model') or {})
    if any(t.startswith('SAM2') for t in model_types) and not is_installed(
            'sam2'):
        problems.append(
            'the model uses SAM2, and sam2 is not installed: see '
            'requirements/sam2.txt (source-only package; SAM2_BUILD_CUDA=0 '
            'pip install --no-deps --no-build-isolation sam2==1.1.0)')
    evaluators = set()
    for loader in loaders:
        evaluators |= _type_names(cfg.get(_EVALUATORS.get(loader, '')) or
                                  {})
    if 'GCGMetric' in evaluators:
        from geopixel.evaluation.functional.gcg import caption_tools_problem
        problem = caption_tools_problem()
        if problem:
            problems.append(f'GCGMetric scores captions: {problem}')
    return problems


def run_problems(cfg, loaders=('train_dataloader', )) -> List[str]:
    """Everything that would stop the run, one line each (empty: none):
    missing extras, then every missing weight path (with what it should
    hold) and data root."""
    problems = missing_extras(cfg, loaders)
    model_types = _type_names(cfg.get('model') or {})
    weights = {}
    for key, path in _model_paths(cfg.get('model') or {}, 'model'):
        weights.setdefault(path, []).append(key)
    for path, keys in weights.items():
        if not osp.exists(path):
            problems.append(
                f'{path} ({", ".join(keys)}) does not exist: '
                f'{_what_it_is(keys, model_types)}; see {WEIGHTS_GUIDE}')
    seen = set(weights)
    for key, path in _data_paths(cfg, loaders):
        if path not in seen and not osp.exists(path):
            problems.append(f'{key}: {path} does not exist')
        seen.add(path)
    return problems


def check_run_prerequisites(cfg, loaders=('train_dataloader', ),
                            checkpoint: Optional[str] = None) -> None:
    """Raise ``SystemExit`` listing every problem :func:`run_problems`
    finds, and a missing ``checkpoint`` (the one a test run loads)."""
    problems = run_problems(cfg, loaders)
    if checkpoint is not None and not osp.exists(checkpoint):
        problems.append(f'the checkpoint {checkpoint} does not exist')
    if problems:
        raise SystemExit('cannot start the run:\n  - ' +
                         '\n  - '.join(problems))
