# Tiny GeoPixel trained on the annotation pipeline's output, on CPU:
#   python tools/annotate/annotate.py \
#       configs/annotation/template_synthetic.py \
#       --synthetic 40 --out data/annotated
#   python tools/train.py configs/geopixel/gcg_tiny_annotated.py
# The pipeline's --synthetic (or --tokenizer) run trains the tokenizer in
# data/annotated/tokenizer; every copy of the tokenizer points at it.
from mmengine.config import read_base

with read_base():
    from .gcg_tiny import *  # noqa: F401,F403

annotated_root = 'data/annotated'
tokenizer = dict(tokenizer, path=annotated_root + '/tokenizer')
model.tokenizer = tokenizer
train_chat.tokenizer = tokenizer
generation_chat.tokenizer = tokenizer
teacher_forced_chat.tokenizer = tokenizer
train_pipeline = [*loading, train_tiling, train_chat, *packing]
test_pipeline = [*loading, test_tiling, generation_chat, *packing]
teacher_forced_test_pipeline = [
    *loading, test_tiling, teacher_forced_chat, *packing
]
train_dataloader.dataset.update(
    data_root=annotated_root, ann_file='GeoPixelD.json',
    pipeline=train_pipeline)
test_dataloader.dataset.update(
    data_root=annotated_root, ann_file='GeoPixelD/test',
    pipeline=test_pipeline)
