# One 560 px tile plus the global view (finetune.sh's hd_num, and the tiny
# CPU configs).
from geopixel.models.tilers import AdaptiveHDTiler

hd_num = 1
train_tiler = dict(type=AdaptiveHDTiler, hd_num=hd_num, mode='train')
test_tiler = dict(
    type=AdaptiveHDTiler, hd_num=hd_num, mode='inference',
    max_tiles='hd_num')
