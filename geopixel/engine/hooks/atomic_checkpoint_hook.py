"""CheckpointHook that writes atomically by default."""
from mmengine.hooks import CheckpointHook

from geopixel.registry import HOOKS

from ..checkpoint import ATOMIC_BACKEND, register_atomic_backend


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's CheckpointHook with atomic local writes.

    Checkpoints and the ``last_checkpoint`` pointer go through
    :class:`geopixel.engine.checkpoint.AtomicLocalBackend` unless another
    ``backend_args`` is given (for example a remote store).
    """

    def __init__(self, *args, backend_args=None, **kwargs):
        if backend_args is None:
            register_atomic_backend()  # idempotent; needed to build it
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, **kwargs)
