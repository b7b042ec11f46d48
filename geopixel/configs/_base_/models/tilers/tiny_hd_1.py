# One tile plus the global view (hd 1) at the tiny model's tile size: the
# tiny CLIP of geopixel_tiny.py takes 224 px tiles (64 visual tokens per
# tile instead of 400). The bundled synthetic data is cut this way.
from geopixel.models.tilers import AdaptiveHDTiler

tiny_tile = 224
hd_num = 1
train_tiler = dict(
    type=AdaptiveHDTiler, hd_num=hd_num, mode='train', tile_size=tiny_tile)
test_tiler = dict(
    type=AdaptiveHDTiler, hd_num=hd_num, mode='inference',
    max_tiles='hd_num', tile_size=tiny_tile)
