"""Runner hooks (HOOKS registry)."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .bad_record_summary_hook import BadRecordSummaryHook
from .time_budget_hook import TimeBudgetHook
from .visualization_hook import GeoPixelVisualizationHook

__all__ = [
    'AtomicCheckpointHook', 'BadRecordSummaryHook',
    'GeoPixelVisualizationHook', 'TimeBudgetHook'
]
