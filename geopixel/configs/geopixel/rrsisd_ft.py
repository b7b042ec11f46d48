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
    from .._base_.models.tilers.adaptive_hd_1 import *
    from .._base_.schedules.zero2_bf16_iter import *

geopixel_7b = 'checkpoints/GeoPixel-7B'
model.update(
    tokenizer=dict(model.tokenizer, path=geopixel_7b),
    checkpoint=geopixel_7b,
    ixc_checkpoint=None,
    predict_mode='teacher_forced')
model.grounding_encoder.update(checkpoint=None)
model.mask_decoder.update(checkpoint=None)
# hd 1 (the tilers of adaptive_hd_1), one tokenizer for model and data
tokenizer = model.tokenizer
train_tiling.tiler = train_tiler
test_tiling.tiler = test_tiler
train_chat.tokenizer = tokenizer
generation_chat.tokenizer = tokenizer
teacher_forced_chat.tokenizer = tokenizer
train_pipeline = [*loading, train_tiling, train_chat, *packing]
test_pipeline = [*loading, test_tiling, generation_chat, *packing]
teacher_forced_test_pipeline = [
    *loading, test_tiling, teacher_forced_chat, *packing
]
train_dataloader.dataset.update(pipeline=train_pipeline)
# teacher-forced evaluation (predict_mode above): the answer is given
val_dataloader.dataset.update(pipeline=teacher_forced_test_pipeline)
test_dataloader.dataset.update(pipeline=teacher_forced_test_pipeline)
val_evaluator = dict(type=RRSISMetric)
test_evaluator = dict(type=RRSISMetric)

accumulation = 10
strategy.update(gradient_accumulation_steps=accumulation)
# 12,181 train sentences x 3 epochs / (2 x 4) = about 4,570 iterations/GPU
max_iters = 4570
train_cfg.update(max_iters=max_iters, val_interval=1000)
param_scheduler[0].update(end=100 * accumulation)
param_scheduler[1].update(begin=100 * accumulation, end=max_iters)
