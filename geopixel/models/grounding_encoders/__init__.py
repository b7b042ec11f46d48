"""Frozen grounding encoders (GROUNDING_ENCODERS registry)."""
from .base import BaseGroundingEncoder
from .sam import SAMGroundingEncoder
from .sam2 import SAM2GroundingEncoder

__all__ = [
    'BaseGroundingEncoder', 'SAM2GroundingEncoder', 'SAMGroundingEncoder'
]
