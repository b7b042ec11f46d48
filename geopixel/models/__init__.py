"""Models: plain nn.Modules behind small interfaces, one folder per kind.

tilers/             image -> tiled canvas (TILERS)
vision_encoders/    pixels -> visual tokens (VISION_ENCODERS)
llms/               causal LMs and their fine-tuning adapters (LLM_ADAPTERS)
grounding_encoders/ frozen segmentation backbones (GROUNDING_ENCODERS)
decoders/           prompt embeddings -> mask logits (MASK_DECODERS)
losses/             mask and text losses (MODELS)
"""
from . import (
               decoders,
               grounding_encoders,
               llms,
               losses,
               tilers,
               vision_encoders,
)

__all__ = [
    'decoders', 'grounding_encoders', 'llms', 'losses', 'tilers',
    'vision_encoders'
]
