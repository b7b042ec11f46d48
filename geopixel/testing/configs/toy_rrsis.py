# tools/train.py and tools/test.py on the synthetic RRSIS-D data with a toy
# model (see geopixel/testing/toy_grounding.py). Run with cwd holding
# data/synthetic.
from mmengine.config import read_base

from geopixel.testing.toy_grounding import (CrashAtIterHook,
                                            ToyGroundingModel, ToyIoUMetric)

with read_base():
    from geopixel.configs._base_.datasets.synthetic_rrsis import *
    from geopixel.configs._base_.default_runtime import *
    from geopixel.configs._base_.schedules.adamw_cosine_iter import *

model = dict(type=ToyGroundingModel)
val_evaluator = dict(type=ToyIoUMetric)
test_evaluator = dict(type=ToyIoUMetric)

train_dataloader.update(batch_size=2, num_workers=1)
val_dataloader.update(num_workers=0, persistent_workers=False)
test_dataloader.update(num_workers=0, persistent_workers=False)
train_cfg.update(max_iters=6, val_interval=3)
param_scheduler = [
    dict(type=LinearLR, start_factor=0.1, by_epoch=False, begin=0, end=2)
]
optim_wrapper.optimizer.update(lr=1e-2)
default_hooks.checkpoint.update(interval=3)
default_hooks.logger.update(interval=1)
custom_hooks.append(dict(type=CrashAtIterHook, at_iter=None))
