"""Everything that touches MMEngine's Runner: hooks, checkpoint I/O,
distributed set-up. Models never import from here; importing it changes no
MMEngine global (:func:`setup_mmengine` does, when called)."""
from .checkpoint import (
                         ATOMIC_BACKEND,
                         AtomicLocalBackend,
                         SafeLocalCheckpointLoader,
                         atomic_write,
                         pick_resume_checkpoint,
)
from .dist import cpu_ddp_wrapper_cfg, init_cpu_distributed
from .hooks import AtomicCheckpointHook, BadRecordSummaryHook
from .setup import setup_mmengine

__all__ = [
    'ATOMIC_BACKEND', 'AtomicLocalBackend', 'SafeLocalCheckpointLoader',
    'atomic_write', 'pick_resume_checkpoint', 'setup_mmengine',
    'cpu_ddp_wrapper_cfg', 'init_cpu_distributed', 'AtomicCheckpointHook',
    'BadRecordSummaryHook'
]
