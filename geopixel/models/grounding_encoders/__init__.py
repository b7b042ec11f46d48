"""Frozen grounding encoders (GROUNDING_ENCODERS registry)."""
from .base import BaseGroundingEncoder

__all__ = ['BaseGroundingEncoder']
