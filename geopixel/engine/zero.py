"""DeepSpeed ZeRO through MMEngine's FlexibleRunner, made safe for GeoPixel.

ZeRO-3 shards every parameter and gathers a module's parameters only while
that module's own ``forward`` runs. GeoPixel's loss reads some parameters
outside their modules' forwards: the zero-valued "touch" terms that give
every trainable grounding parameter a gradient on a batch without
``[SEG]`` (``mask_decoder.zero_loss()``, the ``seg_projector`` sum, the
empty-bag ``seg_words_head`` loss). Read sharded, they are empty tensors and
the backward fails (``SumBackward0 returned an invalid gradient ... got
[0]``). And a rank whose batch has no ``[SEG]`` skips the mask decoder's
forwards that the other ranks run, so without help their all-gathers would
not match (a hang).

:class:`GeoPixelDeepSpeedStrategy` registers the parameters of the modules
named in ``gather_for_step`` as DeepSpeed external parameters of the whole
model: every rank gathers them once when the model's forward starts and
again for its backward, whatever its batch holds, and they stay whole
while the loss touches them. Under ZeRO-1/2 (parameters not sharded) it is
MMEngine's strategy unchanged.
"""
from typing import Optional, Sequence

from mmengine._strategy import DeepSpeedStrategy
from mmengine.registry import STRATEGIES


@STRATEGIES.register_module()
class GeoPixelDeepSpeedStrategy(DeepSpeedStrategy):
    """MMEngine's ``DeepSpeedStrategy`` plus, under ZeRO-3, parameters that
    are gathered for the whole training step.

    Args:
        gather_for_step: attribute names of sub-modules of the model whose
            parameters are gathered for the model's whole forward and
            backward under ZeRO-3. A name the model lacks is an error; one
            set to None is skipped. GeoPixel's (the ZeRO schedules'):
            ``('mask_decoder', 'seg_projector', 'seg_words_head')``.
        **kwargs: ``DeepSpeedStrategy``'s arguments.
    """

    def __init__(self,
                 *,
                 gather_for_step: Optional[Sequence[str]] = None,
                 **kwargs):
        # MMEngine registers DeepSpeed's optimizers in every strategy's
        # __init__, and a second strategy in one process (a test, a second
        # runner) then fails with "already registered"
        from mmengine._strategy import deepspeed as mm_deepspeed
        from mmengine.registry import OPTIMIZERS
        register = mm_deepspeed.register_deepspeed_optimizers
        if 'DeepSpeedCPUAdam' in OPTIMIZERS.module_dict:
            mm_deepspeed.register_deepspeed_optimizers = list
        try:
            super().__init__(**kwargs)
        finally:
            mm_deepspeed.register_deepspeed_optimizers = register
        self.gather_for_step = tuple(gather_for_step or ())

    def prepare(self, model, *, dispatch_kwargs=None, **kwargs):
        # FlexibleRunner fills DeepSpeed's required micro-batch size only
        # for a strategy named exactly 'DeepSpeedStrategy'
        batch = (dispatch_kwargs or {}).get('train_micro_batch_size_per_gpu')
        if batch is not None:
            self.config.setdefault('train_micro_batch_size_per_gpu', batch)
        return super().prepare(
            model, dispatch_kwargs=dispatch_kwargs, **kwargs)

    def _wrap_model(self, model):
        wrapper = super()._wrap_model(model)
        engine = wrapper.model
        if engine.zero_optimization_partition_weights():
            register_step_parameters(engine.module, self.gather_for_step)
        return wrapper


def register_step_parameters(model, names: Sequence[str]) -> int:
    """Register every parameter of ``model.<name>`` (for each name) as a
    ZeRO-3 external parameter of ``model``; returns how many."""
    from deepspeed.runtime.zero.partition_parameters import \
        register_external_parameter
    count = 0
    for name in names:
        if not hasattr(model, name):
            raise AttributeError(
                f'gather_for_step names {name!r}, but '
                f'{type(model).__name__} has no such attribute')
        module = getattr(model, name)
        if module is None:
            continue
        for param in module.parameters():
            register_external_parameter(model, param)
            count += 1
    return count
