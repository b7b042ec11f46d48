# Tiny GeoPixel trained on the synthetic GeoPixelD data, on CPU.
#   python tools/dataset_converters/make_synthetic.py --out data/synthetic
#   python tools/train.py configs/geopixel/gcg_tiny.py
from mmengine.config import read_base

from geopixel.evaluation.metrics import GCGMetric

with read_base():
    from .._base_.datasets.synthetic_gcg import *
    from .._base_.default_runtime import *
    from .._base_.models.geopixel_tiny import *
    from .._base_.schedules.adamw_cosine_iter import *

train_dataloader.update(batch_size=2)
optim_wrapper.optimizer.update(lr=1e-3)
train_cfg.update(max_iters=500, val_interval=501)
param_scheduler[0].update(end=50)
param_scheduler[1].update(begin=50, end=500)
default_hooks.checkpoint.update(interval=250)
# RS-GCG on the test split with generated answers (CIDEr/METEOR need Java
# and requirements/eval.txt; without a local BERT, recall is IoU-only)
test_evaluator = dict(type=GCGMetric)
val_dataloader = val_cfg = val_evaluator = None
