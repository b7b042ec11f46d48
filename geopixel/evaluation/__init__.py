"""Evaluation metrics (METRICS registry)."""
from . import metrics  # noqa: F401
