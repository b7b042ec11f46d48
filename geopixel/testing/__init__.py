"""Test scaffolding that projects can import: tiny configs, toy data and
model helpers (see docs/en/advanced_guides/testing.md).

Names load on first use, so ``import geopixel.testing`` stays as light as
``import geopixel`` until a helper that needs torch or MMEngine is used.
"""
import importlib

_EXPORTS = {
    'tiny': ('COMPONENT_KINDS', 'TINY_MODEL_CONFIG', 'demo_batch',
             'demo_data', 'get_config', 'tiny_component_cfg',
             'tiny_model', 'tiny_model_cfg', 'tiny_sam_cfgs'),
    'toy_data': ('SYNTHETIC_ROOT', 'relocate', 'toy_dataset'),
    'toy_grounding': ('TOY_RRSIS_CONFIG', 'CrashAtIterHook',
                      'ToyGroundingModel', 'ToyIoUMetric'),
    'official_tiny': ('official_tiny_model', ),
    'llm_adapters': ('TinyLlamaAdapter', ),
}
_HOME = {name: module for module, names in _EXPORTS.items()
         for name in names}

__all__ = sorted(_HOME)


def __getattr__(name):
    if name not in _HOME:
        raise AttributeError(
            f'module {__name__!r} has no attribute {name!r}')
    module = importlib.import_module(f'{__name__}.{_HOME[name]}')
    return getattr(module, name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
