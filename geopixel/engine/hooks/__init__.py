"""Runner hooks (HOOKS registry)."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .bad_record_summary_hook import BadRecordSummaryHook

__all__ = ['AtomicCheckpointHook', 'BadRecordSummaryHook']
