# The synthetic RRSIS-D data with the project's fixed 1 x 2 grid tiler.
from gp_example import FixedGridTiler
from mmengine.config import read_base

with read_base():
    from geopixel.configs._base_.datasets.synthetic_rrsis import *  # noqa

train_dataloader.dataset.pipeline[2].tiler = dict(
    type=FixedGridTiler, rows=1, cols=2)
test_dataloader.dataset.pipeline[2].tiler = dict(
    type=FixedGridTiler, rows=1, cols=2)
