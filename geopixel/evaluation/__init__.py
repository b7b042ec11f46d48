"""Evaluation: metric wrappers for the Runner (``metrics/``, METRICS
registry) over the computations in ``functional/``."""
from . import metrics  # noqa: F401
