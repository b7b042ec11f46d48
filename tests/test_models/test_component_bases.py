"""What every component kind shares: enforced abstract methods and one
spelling per idea in the constructors (``checkpoint``, ``frozen``)."""
import inspect

import pytest

from geopixel.models.decoders import BaseMaskDecoder
from geopixel.models.grounding_encoders import BaseGroundingEncoder
from geopixel.models.llms import BaseLLMAdapter
from geopixel.models.tilers import BaseTiler
from geopixel.models.vision_encoders import BaseVisionEncoder
from geopixel.registry import (GROUNDING_ENCODERS, LLM_ADAPTERS,
                               MASK_DECODERS, TILERS, VISION_ENCODERS)
from geopixel.testing import llm_adapters  # noqa: F401 (registers one)

BASES = [BaseTiler, BaseVisionEncoder, BaseLLMAdapter, BaseGroundingEncoder,
         BaseMaskDecoder]
REGISTRIES = [TILERS, VISION_ENCODERS, LLM_ADAPTERS, GROUNDING_ENCODERS,
              MASK_DECODERS]


def complete_subclass(base, missing=None):
    """A subclass of ``base`` defining every abstract method but one."""
    methods = {
        name: (lambda self, *args, **kwargs: None)
        for name in base.__abstractmethods__ if name != missing
    }
    # the abstract-method check runs in __new__, before any __init__
    methods['__init__'] = lambda self: None
    return type(f'Toy{base.__name__}', (base, ), methods)


@pytest.mark.parametrize('base', BASES, ids=lambda b: b.__name__)
def test_every_base_enforces_each_abstract_method(base):
    assert base.__abstractmethods__, f'{base.__name__} declares nothing'
    complete_subclass(base)()  # nothing missing: builds
    for name in base.__abstractmethods__:
        with pytest.raises(TypeError, match=name):
            complete_subclass(base, missing=name)()


def registered_classes():
    for registry in REGISTRIES:
        registry.import_from_location()
        yield from registry.module_dict.values()
    from geopixel.models.architectures import GeoPixel
    yield GeoPixel


@pytest.mark.parametrize('cls', list(registered_classes()),
                         ids=lambda c: c.__name__)
def test_one_spelling_for_weights_and_freezing(cls):
    params = set(inspect.signature(cls.__init__).parameters)
    assert not params & {'pretrained', 'ixc_pretrained', 'trainable'}


def test_frozen_decoder_trains_nothing():
    pytest.importorskip('sam2')
    from geopixel.models.decoders import SAM2MaskDecoder
    small = dict(embed_dim=32, image_size=64, mlp_dim=32, num_heads=2,
                 iou_head_hidden_dim=16)
    frozen = SAM2MaskDecoder(frozen=True, **small)
    assert frozen.frozen and not any(
        p.requires_grad for p in frozen.parameters())
    trained = SAM2MaskDecoder(**small)
    assert not trained.frozen and all(
        p.requires_grad for p in trained.parameters())
