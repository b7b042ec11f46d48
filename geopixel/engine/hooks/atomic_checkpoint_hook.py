"""CheckpointHook that writes atomically and saves what trains."""
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper

from geopixel.checkpoint.frozen import (META_KEY, DigestCache,
                                        complete_frozen, drop_frozen_sourced,
                                        frozen_record)
from geopixel.registry import HOOKS

from ..checkpoint import ATOMIC_BACKEND, register_atomic_backend


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's CheckpointHook with atomic local writes and trainable-only
    checkpoints.

    Checkpoints and the ``last_checkpoint`` pointer go through
    :class:`geopixel.engine.checkpoint.AtomicLocalBackend` unless another
    ``backend_args`` is given (for example a remote store).

    Args:
        save_frozen: keep every weight in the checkpoint. By default
            (False) frozen weights loaded from a file the config names
            (CLIP, SAM2, the LLM base) are left out and referenced by file
            and SHA-256 (``geopixel/checkpoint/frozen.py``); loading the
            checkpoint (resume, ``load_from``, ``tools/test.py``) restores
            them from the model built from the config, checked bit for bit.
            Weights that train, frozen weights of random init and the
            optimizer state are always saved.
    """

    def __init__(self, *args, backend_args=None, save_frozen: bool = False,
                 **kwargs):
        if backend_args is None:
            register_atomic_backend()  # idempotent; needed to build it
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, **kwargs)
        self.save_frozen = save_frozen
        self._digests = DigestCache()

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict')
        if self.save_frozen or not isinstance(state, dict):
            return  # a DeepSpeed checkpoint has its own frozen-weight rule
        kept, record = drop_frozen_sourced(
            self._model(runner), state, self._digests)
        if record['digests']:
            checkpoint['state_dict'] = kept
            checkpoint.setdefault('meta', {})[META_KEY] = record

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        record = frozen_record(checkpoint)
        if record is None or not isinstance(checkpoint.get('state_dict'),
                                            dict):
            return
        # tools/train.py puts the file it resumes from in load_from
        path = getattr(runner, '_load_from', None) or 'being loaded'
        checkpoint['state_dict'] = complete_frozen(
            self._model(runner), checkpoint['state_dict'], record, path,
            self._digests)
