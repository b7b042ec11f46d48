"""RRSIS-D and RS-GCG metrics (one module per metric)."""
from .gcg_metric import GCGMetric
from .rrsis_metric import RRSISMetric

__all__ = ['GCGMetric', 'RRSISMetric']
