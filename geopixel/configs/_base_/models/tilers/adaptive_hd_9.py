# The paper's adaptive image divider: 560 px tiles, up to 9 of them.
from geopixel.models.tilers import AdaptiveHDTiler

hd_num = 9
train_tiler = dict(type=AdaptiveHDTiler, hd_num=hd_num, mode='train')
# At inference the official rule can exceed hd_num on large images; we bound
# it (max_tiles='hd_num'). Use max_tiles=None to reproduce it exactly.
test_tiler = dict(
    type=AdaptiveHDTiler, hd_num=hd_num, mode='inference',
    max_tiles='hd_num')
