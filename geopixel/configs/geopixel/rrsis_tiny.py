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
# GeoPixel's RRSIS-D numbers are): the RRSIS-D data configs evaluate on the
# teacher_forced_test_pipeline, and the model predicts that way.
model.update(predict_mode='teacher_forced')
val_evaluator = dict(type=RRSISMetric)
test_evaluator = dict(type=RRSISMetric)

# 4 images per batch, each with up to 4 of its sentences (one turn, one
# [SEG] and one mask each): the image is encoded once for 4 masks and each
# sample contrasts objects of one scene (docs/en/notes/refer_study.md)
train_dataloader.update(batch_size=4)
train_dataloader.dataset.update(sentences_per_sample=4)
# 2e-3: slower in the first 1,300 iterations than 1e-3, well ahead by the
# end of the 15-minute benchmark (docs/en/notes/refer_study.md, section 8)
optim_wrapper.optimizer.update(lr=2e-3)
# 600 iterations: 4-6 minutes on 2 CPU cores (0.35-0.55 s per step, by
# machine), so that the quick start stays under 10 minutes;
# tools/analysis/benchmark_learning.py trains the same config for a
# 15-minute budget
train_cfg.update(max_iters=600, val_interval=600)
param_scheduler[0].update(end=50)
param_scheduler[1].update(begin=50, end=600)
default_hooks.checkpoint.update(interval=600)
