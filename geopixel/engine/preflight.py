"""What a run needs before anything is built, all reported at once.

``tools/train.py`` and ``tools/test.py`` call :func:`check_run_prerequisites`
first. Without it a missing DeepSpeed surfaces as an ``AssertionError``
from inside MMEngine, and only after installing it does the user learn
that the tokenizer folder is missing too.
"""
import importlib.util
import os.path as osp
from typing import List, Optional

# model config keys whose string values are local files or folders
_MODEL_PATH_KEYS = ('path', 'checkpoint', 'ixc_checkpoint')


def _strategy_name(cfg) -> str:
    strategy = cfg.get('strategy') or {}
    kind = strategy.get('type', '') if isinstance(strategy, dict) else ''
    return getattr(kind, '__name__', kind) or ''


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


def _data_paths(cfg, loaders):
    # only the root: how ann_file is read depends on the dataset class,
    # which names a missing annotation file itself
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        if dataset.get('data_root') is not None:
            yield f'{loader}.dataset.data_root', dataset['data_root']


def run_problems(cfg, loaders=('train_dataloader', )) -> List[str]:
    """Everything that would stop the run, one line each (empty: none)."""
    problems = []
    strategy = _strategy_name(cfg)
    if 'DeepSpeed' in strategy and importlib.util.find_spec(
            'deepspeed') is None:
        problems.append(
            f'the config trains with {strategy}, and DeepSpeed is not '
            'installed: pip install -r requirements/deepspeed.txt (it needs '
            'a CUDA machine; on CPU use a config without a DeepSpeed '
            'strategy, e.g. configs/geopixel/gcg_tiny.py)')
    seen = set()
    for key, path in [*_model_paths(cfg.get('model') or {}, 'model'),
                      *_data_paths(cfg, loaders)]:
        if path in seen:
            continue
        seen.add(path)
        if not osp.exists(path):
            problems.append(f'{key}: {path} does not exist')
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
