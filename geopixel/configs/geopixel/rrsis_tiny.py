# Tiny GeoPixel trained on the synthetic RRSIS-D data, on CPU.
#   python tools/dataset_converters/make_synthetic.py --out data/synthetic
#   python tools/train.py configs/geopixel/rrsis_tiny.py
from mmengine.config import read_base

from geopixel.evaluation.metrics import RRSISMetric

with read_base():
    from .._base_.datasets.synthetic_rrsis import *
    from .._base_.default_runtime import *
    from .._base_.models.geopixel_tiny import *
    from .._base_.schedules.adamw_cosine_iter import *

# Referring segmentation is scored teacher-forced (answer given, as LISA and
# GeoPixel's RRSIS-D numbers are): the eval text is the training format.
model.update(predict_mode='teacher_forced')
val_dataloader.dataset.pipeline[3].update(
    for_generation=False, bos_before_image=False)
test_dataloader.dataset.pipeline[3].update(
    for_generation=False, bos_before_image=False)
val_evaluator = dict(type=RRSISMetric)
test_evaluator = dict(type=RRSISMetric)

# the tilers cut tiles of the tiny vision encoder's size
train_dataloader.dataset.pipeline[2].tiler.update(tile_size=tiny_tile)
val_dataloader.dataset.pipeline[2].tiler.update(tile_size=tiny_tile)
test_dataloader.dataset.pipeline[2].tiler.update(tile_size=tiny_tile)

train_dataloader.update(batch_size=4)
optim_wrapper.optimizer.update(lr=1e-3)
# about 4 minutes on 2 CPU cores; tools/analysis/benchmark_learning.py
# trains the same config for a 15-minute budget
train_cfg.update(max_iters=600, val_interval=300)
param_scheduler[0].update(end=50)
param_scheduler[1].update(begin=50, end=600)
default_hooks.checkpoint.update(interval=300)
