# The data pipelines of every grounded-conversation dataset (GeoPixelD,
# RRSIS-D), named, with their steps named too:
#   train_pipeline                training format, labels (loss)
#   test_pipeline                 the question only, for generated answers
#   teacher_forced_test_pipeline  the training format without loss: the
#                                 answer (and its [SEG]) is given, as LISA
#                                 and GeoPixel score referring segmentation
# A config that changes a step (the tokenizer folder, the tilers) updates
# the named step and recomposes the pipelines it uses, e.g.
#   train_tiling.tiler.update(tile_size=224)
#   train_pipeline = [*loading, train_tiling, train_chat, *packing]
#   train_dataloader.dataset.pipeline = train_pipeline
# (MMEngine copies values between config files, so an edit of a step never
# reaches a pipeline composed in a base file).
from mmengine.config import read_base

from geopixel.datasets import (FormatChat, LoadGroundingMasks, LoadImageRGB,
                               PackGeoPixelInputs, TileImage)
from geopixel.tokenizers import InternLM2Tokenizer

with read_base():
    from ..models.tilers.adaptive_hd_9 import *  # noqa: F401,F403

# the folder of the GeoPixel-7B (or IXC-2.5) release holds tokenizer.model
tokenizer = dict(type=InternLM2Tokenizer, path='checkpoints/GeoPixel-7B')

loading = [dict(type=LoadImageRGB), dict(type=LoadGroundingMasks)]
train_tiling = dict(type=TileImage, tiler=train_tiler)
test_tiling = dict(type=TileImage, tiler=test_tiler)
train_chat = dict(type=FormatChat, tokenizer=tokenizer, label_mode='official')
# inference order: BOS, then the image; the prompt only, no labels
generation_chat = dict(
    type=FormatChat,
    tokenizer=tokenizer,
    bos_before_image=True,
    for_generation=True)
teacher_forced_chat = dict(type=FormatChat, tokenizer=tokenizer)
packing = [dict(type=PackGeoPixelInputs)]

train_pipeline = [*loading, train_tiling, train_chat, *packing]
test_pipeline = [*loading, test_tiling, generation_chat, *packing]
teacher_forced_test_pipeline = [
    *loading, test_tiling, teacher_forced_chat, *packing
]
