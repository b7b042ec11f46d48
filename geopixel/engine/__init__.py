"""Everything that touches MMEngine's Runner: hooks, checkpoint I/O,
distributed set-up. Models never import from here."""
from . import mmengine_compat  # noqa: F401  (must run before configs load)
from .checkpoint import (
                         ATOMIC_BACKEND,
                         AtomicLocalBackend,
                         atomic_write,
                         load_from_local_safe,
                         trust_checkpoint_dir,
)
from .dist import cpu_ddp_wrapper_cfg, init_cpu_distributed
from .hooks import AtomicCheckpointHook, BadRecordSummaryHook

__all__ = [
    'ATOMIC_BACKEND', 'AtomicLocalBackend', 'atomic_write',
    'load_from_local_safe', 'trust_checkpoint_dir', 'cpu_ddp_wrapper_cfg',
    'init_cpu_distributed', 'AtomicCheckpointHook', 'BadRecordSummaryHook'
]
