# The tiny GeoPixel on the synthetic RRSIS-D data with the project's fixed
# 1 x 2 grid tiler in place of the adaptive divider.
from gp_example import FixedGridTiler
from mmengine.config import read_base

with read_base():
    from geopixel.configs.geopixel.rrsis_tiny import *  # noqa

fixed_grid = dict(type=FixedGridTiler, rows=1, cols=2, tile_size=tiny_tile)
train_tiling.tiler = fixed_grid
test_tiling.tiler = fixed_grid
train_pipeline = [*loading, train_tiling, train_chat, *packing]
teacher_forced_test_pipeline = [
    *loading, test_tiling, teacher_forced_chat, *packing
]
train_dataloader.dataset.update(pipeline=train_pipeline)
val_dataloader.dataset.update(pipeline=teacher_forced_test_pipeline)
test_dataloader.dataset.update(pipeline=teacher_forced_test_pipeline)
