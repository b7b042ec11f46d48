# Referring segmentation: fine-tune the released GeoPixel-7B on RRSIS-D as
# finetune.sh does (hd 1, 3 epochs, 100 warm-up steps), ZeRO-2 bf16.
#   bash tools/dist_train.sh configs/geopixel/rrsisd_ft.py 4
#   python tools/test.py configs/geopixel/rrsisd_ft.py work_dirs/.../iter_N.pth
from mmengine.config import read_base

from geopixel.evaluation.metrics import RRSISMetric

with read_base():
    from .._base_.datasets.rrsisd import *
    from .._base_.default_runtime import *
    from .._base_.models.geopixel_7b import *
    from .._base_.schedules.zero2_bf16_iter import *

geopixel_7b = 'checkpoints/GeoPixel-7B'
model.update(
    tokenizer=dict(model.tokenizer, path=geopixel_7b),
    checkpoint=geopixel_7b,
    ixc_checkpoint=None,
    predict_mode='teacher_forced')
model.grounding_encoder.update(checkpoint=None)
model.mask_decoder.update(checkpoint=None)
# the data pipelines (rrsisd.py: hd 1, teacher-forced evaluation) read the
# same GeoPixel-7B tokenizer folder as the model
val_evaluator = dict(type=RRSISMetric)
test_evaluator = dict(type=RRSISMetric)

accumulation = 10
strategy.update(gradient_accumulation_steps=accumulation)
# 12,181 train sentences x 3 epochs / (2 x 4) = about 4,570 iterations/GPU
max_iters = 4570
train_cfg.update(max_iters=max_iters, val_interval=1000)
param_scheduler[0].update(end=100 * accumulation)
param_scheduler[1].update(begin=100 * accumulation, end=max_iters)
