# The bundled synthetic data in the GeoPixelD layout (make it with
# `python tools/dataset_converters/make_synthetic.py --out data/synthetic`),
# with its own sentencepiece tokenizer and one 560 px tile per image.
from mmengine.config import read_base

with read_base():
    # order matters: the hd-1 tilers override the hd-9 ones of the base
    from .geopixeld_gcg import *  # noqa: F401,F403
    from ..models.tilers.adaptive_hd_1 import *  # noqa: F401,F403

synthetic_root = 'data/synthetic'
train_dataloader.update(num_workers=2)
test_dataloader.update(num_workers=2)
train_dataloader.dataset.data_root = synthetic_root + '/geopixeld'
test_dataloader.dataset.data_root = synthetic_root + '/geopixeld'
# pipeline[2] is TileImage, pipeline[3] FormatChat (grounding_pipelines.py)
train_dataloader.dataset.pipeline[2].tiler = train_tiler
test_dataloader.dataset.pipeline[2].tiler = test_tiler
train_dataloader.dataset.pipeline[3].tokenizer.path = (
    synthetic_root + '/tokenizer')
test_dataloader.dataset.pipeline[3].tokenizer.path = (
    synthetic_root + '/tokenizer')
val_dataloader = test_dataloader
