# The bundled synthetic data in the GeoPixelD layout (make it with
# `python tools/dataset_converters/make_synthetic.py --out data/synthetic`),
# with its own sentencepiece tokenizer and one 560 px tile per image.
from mmengine.config import read_base

from geopixel.datasets import (
    FormatChat,
    LoadGroundingMasks,
    LoadImageRGB,
    PackGeoPixelInputs,
    TileImage,
)

with read_base():
    # order matters: the hd-1 tilers override the hd-9 ones of the base
    from .geopixeld_gcg import *  # noqa: F401,F403
    from ..models.tilers.adaptive_hd_1 import *  # noqa: F401,F403

synthetic_root = 'data/synthetic'
tokenizer.update(path=synthetic_root + '/tokenizer')
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
    dict(
        type=FormatChat,
        tokenizer=tokenizer,
        bos_before_image=True,
        for_generation=True),
    dict(type=PackGeoPixelInputs),
]
train_dataloader.update(num_workers=2)
train_dataloader.dataset.update(
    data_root=synthetic_root + '/geopixeld', pipeline=train_pipeline)
test_dataloader.update(num_workers=2)
test_dataloader.dataset.update(
    data_root=synthetic_root + '/geopixeld',
    ann_file='GeoPixelD/test',
    pipeline=test_pipeline)
val_dataloader = test_dataloader
