# Runtime shared by every geopixel experiment.
from mmengine.hooks import (
                            DistSamplerSeedHook,
                            IterTimerHook,
                            LoggerHook,
                            ParamSchedulerHook,
)
from mmengine.runner import LogProcessor
from mmengine.visualization import LocalVisBackend

from geopixel.engine.hooks import (AtomicCheckpointHook, BadRecordSummaryHook,
                                   GeoPixelVisualizationHook)
from geopixel.visualization import GeoPixelVisualizer

# Configs name classes, not strings, so no default scope is needed (and
# none means no "failed to search registry" warnings for MMEngine's own
# registries). Strings still work scoped: type='geopixel.TimeBudgetHook'.
default_scope = None

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, interval=10),
    param_scheduler=dict(type=ParamSchedulerHook),
    # atomic writes: a crash mid-save never corrupts the last checkpoint
    checkpoint=dict(
        type=AtomicCheckpointHook, by_epoch=False, interval=500,
        max_keep_ckpts=2),
    sampler_seed=dict(type=DistSamplerSeedHook),
    # off by default; tools/test.py --show-dir turns it on for the test set
    visualization=dict(type=GeoPixelVisualizationHook, draw=False,
                       interval=50))
custom_hooks = [dict(type=BadRecordSummaryHook, interval=500)]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type=LocalVisBackend)]
visualizer = dict(
    type=GeoPixelVisualizer, vis_backends=vis_backends, name='visualizer')
log_processor = dict(type=LogProcessor, window_size=10, by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
