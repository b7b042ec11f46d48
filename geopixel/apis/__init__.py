"""High-level inference API (INFERENCERS registry): the same model class as
training, loaded from a config and checkpoint
(docs/en/user_guides/inference.md)."""
from .inferencer import GeoPixelInferencer, InferenceSession, list_images
from .results import GroundedMask, InferenceResult

__all__ = [
    'GeoPixelInferencer', 'InferenceSession', 'InferenceResult',
    'GroundedMask', 'list_images'
]
