"""Models: plain nn.Modules behind small interfaces, one folder per kind.

tilers/             image -> tiled canvas (TILERS)
vision_encoders/    pixels -> visual tokens (VISION_ENCODERS)
llms/               causal LMs and their fine-tuning adapters (LLM_ADAPTERS)
grounding_encoders/ frozen segmentation backbones (GROUNDING_ENCODERS)
decoders/           prompt embeddings -> mask logits (MASK_DECODERS)
losses/             mask and text losses (MODELS)
projectors/         the [SEG] projector (MODELS)
heads/              auxiliary training heads on LLM states (MODELS)
data_preprocessors/ batch normalisation on the device (MODELS)
architectures/      the composite GeoPixel model (MODELS)
"""
from . import (architectures, data_preprocessors, decoders,
               grounding_encoders, heads, llms, losses, projectors, tilers,
               vision_encoders)

__all__ = [
    'architectures', 'data_preprocessors', 'decoders', 'grounding_encoders',
    'heads', 'llms', 'losses', 'projectors', 'tilers', 'vision_encoders'
]
