# The data pipeline shared by every grounded-conversation dataset (GeoPixelD,
# RRSIS-D): load, rasterise masks, tile, tokenize with labels, pack.
# Index map used by derived configs: [2] TileImage, [3] FormatChat.
from mmengine.config import read_base

from geopixel.datasets import (FormatChat, LoadGroundingMasks, LoadImageRGB,
                               PackGeoPixelInputs, TileImage)
from geopixel.tokenizers import InternLM2Tokenizer

with read_base():
    from ..models.tilers.adaptive_hd_9 import *  # noqa: F401,F403

# the folder of the GeoPixel-7B (or IXC-2.5) release holds tokenizer.model
tokenizer = dict(
    type=InternLM2Tokenizer, path='checkpoints/GeoPixel-7B')

train_pipeline = [
    dict(type=LoadImageRGB),
    dict(type=LoadGroundingMasks),
    dict(type=TileImage, tiler=train_tiler),
    dict(type=FormatChat, tokenizer=tokenizer, label_mode='official'),
    dict(type=PackGeoPixelInputs),
]
test_pipeline = [
    dict(type=LoadImageRGB),
    dict(type=LoadGroundingMasks),
    dict(type=TileImage, tiler=test_tiler),
    # inference order: BOS, then the image; prompt only, no labels
    dict(
        type=FormatChat,
        tokenizer=tokenizer,
        bos_before_image=True,
        for_generation=True),
    dict(type=PackGeoPixelInputs),
]
