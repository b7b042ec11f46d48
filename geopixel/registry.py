"""Every geopixel registry, in one place.

Two kinds of registry live here:

* one child of each MMEngine root registry we use (MODELS, DATASETS, ...), all
  with scope ``geopixel``, so the MMEngine Runner finds our classes under
  ``default_scope='geopixel'`` and our registries find MMEngine's through
  their parent;
* one standalone root per component kind (TILERS, VISION_ENCODERS, ...).
  They are roots rather than grandchildren of MODELS because MMEngine cannot
  build a grandchild by name under a default scope (see
  docs/en/advanced_guides/registries.md).

Both use :class:`GeoPixelRegistry`, which never narrows a lookup to one of its
own ancestors: under ``default_scope='mmengine'`` a plain MMEngine registry
would search MMEngine's root only and miss every geopixel class.
"""
from contextlib import contextmanager
from typing import Optional

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

from geopixel.utils.logs import route_deepspeed_logs_to_stderr

# every component module imports this one before mmengine.runner, which
# imports an installed DeepSpeed: its log lines then stay off stdout
route_deepspeed_logs_to_stderr()
SCOPE = 'geopixel'


class GeoPixelRegistry(Registry):
    """A Registry whose scope switch never lands on one of its ancestors.

    A lookup in this registry already falls back to every ancestor, so
    replacing it by an ancestor can only lose names.
    """

    @contextmanager
    def switch_scope_and_registry(self, scope: Optional[str]):
        with super().switch_scope_and_registry(scope) as registry:
            if registry is not self and self._is_descendant_of(registry):
                registry = self
            yield registry

    def _is_descendant_of(self, other: Registry) -> bool:
        node = self.parent
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False


def _child(name, parent, location):
    return GeoPixelRegistry(
        name, parent=parent, scope=SCOPE, locations=[location])


def _root(name, location, **kwargs):
    return GeoPixelRegistry(name, scope=SCOPE, locations=[location],
                            **kwargs)


def build_tokenizer(cfg, registry, default_args=None):
    """Tokenizers load from a folder: ``dict(type=InternLM2Tokenizer,
    path=...)`` calls ``InternLM2Tokenizer.from_pretrained(path, ...)``
    (a Hugging Face tokenizer class works the same way); a type without
    ``from_pretrained`` is called with the arguments. An already built
    tokenizer passes through."""
    import inspect
    if not isinstance(cfg, dict):
        return cfg
    args = dict(default_args or {}, **cfg)
    obj_type = args.pop('type')
    if isinstance(obj_type, str):
        found = registry.get(obj_type)
        if found is None:
            raise KeyError(f'{obj_type!r} is not in the {registry.name} '
                           f'registry; known: {sorted(registry.module_dict)}')
        obj_type = found
    if inspect.isclass(obj_type) and hasattr(obj_type, 'from_pretrained'):
        if 'path' not in args:
            raise TypeError(f'{obj_type.__name__} loads from a folder: give '
                            'its path as path=...')
        return obj_type.from_pretrained(args.pop('path'), **args)
    return obj_type(**args)


# Children of MMEngine's root registries.
MODELS = _child('model', MMENGINE_MODELS, 'geopixel.models')
DATASETS = _child('dataset', MMENGINE_DATASETS, 'geopixel.datasets')
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS,
                    'geopixel.datasets.transforms')
METRICS = _child('metric', MMENGINE_METRICS, 'geopixel.evaluation')
HOOKS = _child('hook', MMENGINE_HOOKS, 'geopixel.engine')
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS,
                     'geopixel.visualization')
INFERENCERS = _child('inferencer', MMENGINE_INFERENCERS, 'geopixel.apis')

# Standalone roots, one per swappable component kind.
TILERS = _root('tiler', 'geopixel.models.tilers')
VISION_ENCODERS = _root('vision_encoder', 'geopixel.models.vision_encoders')
LLM_ADAPTERS = _root('llm_adapter', 'geopixel.models.llms')
GROUNDING_ENCODERS = _root('grounding_encoder',
                           'geopixel.models.grounding_encoders')
MASK_DECODERS = _root('mask_decoder', 'geopixel.models.decoders')
TOKENIZERS = _root('tokenizer', 'geopixel.tokenizers',
                   build_func=build_tokenizer)
ANNOTATORS = _root('annotator', 'geopixel.annotation.backends')

ALL_REGISTRIES = {
    'MODELS': MODELS,
    'DATASETS': DATASETS,
    'TRANSFORMS': TRANSFORMS,
    'METRICS': METRICS,
    'HOOKS': HOOKS,
    'VISUALIZERS': VISUALIZERS,
    'INFERENCERS': INFERENCERS,
    'TILERS': TILERS,
    'VISION_ENCODERS': VISION_ENCODERS,
    'LLM_ADAPTERS': LLM_ADAPTERS,
    'GROUNDING_ENCODERS': GROUNDING_ENCODERS,
    'MASK_DECODERS': MASK_DECODERS,
    'TOKENIZERS': TOKENIZERS,
    'ANNOTATORS': ANNOTATORS,
}
