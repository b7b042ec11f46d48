# The paper recipe at scale: DeepSpeed ZeRO-2, bf16, through MMEngine's
# FlexibleRunner (needs the `deepspeed` extra). Same optimiser and schedule
# as adamw_cosine_iter.py.
# mmengine.optim does not export it (mmengine 0.10.7)
from mmengine._strategy.deepspeed import DeepSpeedOptimWrapper
from mmengine.config import read_base
from mmengine.runner import FlexibleRunner
from torch.optim import AdamW

from geopixel.engine.zero import GeoPixelDeepSpeedStrategy

with read_base():
    from .adamw_cosine_iter import *  # noqa: F401,F403

runner_type = FlexibleRunner
strategy = dict(
    # MMEngine's DeepSpeedStrategy; under ZeRO-3 it also gathers, on every
    # rank for the whole step, what GeoPixel.loss reads outside the modules'
    # forwards (geopixel/engine/zero.py); no effect under ZeRO-2
    type=GeoPixelDeepSpeedStrategy,
    gather_for_step=('mask_decoder', 'seg_projector', 'seg_words_head'),
    fp16=dict(enabled=False),
    bf16=dict(enabled=True),
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        reduce_scatter=True,
        allgather_bucket_size=int(2e8),
        reduce_bucket_size=int(2e8),
        overlap_comm=True,
        contiguous_gradients=True),
    gradient_clipping=1.0,
    exclude_frozen_parameters=True)
optim_wrapper = dict(
    type=DeepSpeedOptimWrapper,
    optimizer=dict(type=AdamW, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.0))
