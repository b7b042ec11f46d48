# The paper recipe: GeoPixel-7B trained from IXC-2.5 on GeoPixelD
# (grounded conversation generation), hd 9, DeepSpeed ZeRO-2 in bf16.
#   bash tools/dist_train.sh configs/geopixel/gcg_9p.py 4
# Batch: 2 samples per GPU x 10 accumulation steps x 4 GPUs = 80 (train.sh).
# 16,795 records x 9 epochs / (2 x 4) = about 18,900 iterations per GPU.
from mmengine.config import read_base

from geopixel.evaluation.metrics import GCGMetric

with read_base():
    from .._base_.datasets.geopixeld_gcg import *
    from .._base_.default_runtime import *
    from .._base_.models.geopixel_7b import *
    from .._base_.schedules.zero2_bf16_iter import *

# one tokenizer everywhere: IXC-2.5's, with [SEG], <p>, </p> appended
tokenizer = model.tokenizer
train_chat.tokenizer = tokenizer
generation_chat.tokenizer = tokenizer
teacher_forced_chat.tokenizer = tokenizer
train_pipeline = [*loading, train_tiling, train_chat, *packing]
test_pipeline = [*loading, test_tiling, generation_chat, *packing]
teacher_forced_test_pipeline = [
    *loading, test_tiling, teacher_forced_chat, *packing
]
train_dataloader.dataset.update(pipeline=train_pipeline)
test_dataloader.dataset.update(pipeline=test_pipeline)

accumulation = 10
strategy.update(gradient_accumulation_steps=accumulation)
max_iters = 18900
train_cfg.update(max_iters=max_iters, val_interval=max_iters + 1)
# 150 optimizer warm-up steps, then cosine to 0
param_scheduler[0].update(end=150 * accumulation)
param_scheduler[1].update(begin=150 * accumulation, end=max_iters)
default_hooks.checkpoint.update(interval=500, max_keep_ckpts=2)
train_dataloader.update(batch_size=2)
# RS-GCG on GeoPixelD/test with generated answers. Give the metric a local
# bert-base-uncased folder for GLaMM's recall text similarity.
test_evaluator = dict(type=GCGMetric, bert_path=None)
val_dataloader = val_cfg = val_evaluator = None
