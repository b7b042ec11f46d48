"""RRSIS-D and RS-GCG metrics (one module per metric)."""
from .rrsis_metric import RRSISMetric

__all__ = ['RRSISMetric']
