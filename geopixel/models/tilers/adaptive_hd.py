"""The IXC-2.5 / GeoPixel adaptive image divider ("dynamic HD").

Behaviour is pinned to the official release (see
docs/en/advanced_guides/adaptive_hd.md and the parity fixtures):

1. transpose portrait images so the width is the long side;
2. pick the column count ``s``: the largest with ``s * ceil(s / ratio) <=
   hd_num``;
3. choose the final column count by mode:
   training ``min(ceil(1.5 w / 560), s)``; official GeoPixel inference
   ``max(floor(w / 560), s)``; IXC-2.5 inference ``min(ceil(w / 560), s)``;
4. resize (PIL bilinear) to ``cols * 560`` wide, height truncated from the
   float64 quotient, exactly as the official code does;
5. pad the height to a multiple of 560 with white: centred in training,
   bottom only at inference; transpose back.

Official inference can exceed ``hd_num`` for large images (a 4000 x 3000
image at hd 9 gives 42 tiles). ``max_tiles`` bounds that; set it to ``None``
to reproduce the official rule exactly.
"""
import math
from typing import Union

import numpy as np
from PIL import Image

from geopixel.registry import TILERS

from .base import BaseTiler, ImageLike, TiledImage, to_pil_rgb

MODES = ('train', 'inference')
INFERENCE_RULES = ('geopixel', 'ixc')


@TILERS.register_module()
class AdaptiveHDTiler(BaseTiler):
    """Adaptive HD divider with 560 px tiles plus a global view.

    Args:
        hd_num: tile budget used to choose the grid (1, 4, 9, 16, 25...).
        mode: ``'train'`` or ``'inference'`` (the official code uses different
            scale and padding rules for each).
        inference_rule: ``'geopixel'`` (``max(floor(w/560), s)``, the
            released model) or ``'ixc'`` (``min(ceil(w/560), s)``).
        max_tiles: upper bound on rows * cols. ``'hd_num'`` (default) bounds
            by ``hd_num``; ``None`` reproduces the official unbounded rule.
        tile_size: tile side in pixels (560 for CLIP ViT-L/14 at 560).
        pad_value: padding colour (white in the official code).
    """

    def __init__(self,
                 hd_num: int = 9,
                 mode: str = 'inference',
                 inference_rule: str = 'geopixel',
                 max_tiles: Union[int, str, None] = 'hd_num',
                 tile_size: int = 560,
                 pad_value: int = 255):
        super().__init__(tile_size)
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        if inference_rule not in INFERENCE_RULES:
            raise ValueError(f'inference_rule must be one of '
                             f'{INFERENCE_RULES}, got {inference_rule!r}')
        if int(hd_num) < 1:
            raise ValueError(f'hd_num must be >= 1, got {hd_num}')
        if max_tiles == 'hd_num':
            max_tiles = hd_num
        if max_tiles is not None and int(max_tiles) < 1:
            raise ValueError(f'max_tiles must be >= 1 or None, got '
                             f'{max_tiles}')
        self.hd_num = int(hd_num)
        self.mode = mode
        self.inference_rule = inference_rule
        self.max_tiles = None if max_tiles is None else int(max_tiles)
        self.pad_value = int(pad_value)

    # -- geometry ---------------------------------------------------------
    @staticmethod
    def _max_columns(ratio: float, budget: int) -> int:
        cols = 1
        while cols * math.ceil(cols / ratio) <= budget:
            cols += 1
        return max(cols - 1, 1)

    def _columns(self, long_side: int, ratio: float) -> int:
        tile = self.tile_size
        s = self._max_columns(ratio, self.hd_num)
        if self.mode == 'train':
            cols = min(math.ceil(long_side * 1.5 / tile), s)
        elif self.inference_rule == 'geopixel':
            cols = max(math.floor(long_side / tile), s)
        else:
            cols = min(math.ceil(long_side / tile), s)
        cols = max(cols, 1)
        if self.max_tiles is not None:
            cols = min(cols, self._max_columns(ratio, self.max_tiles))
        return cols

    def plan(self, width: int, height: int) -> dict:
        """Resize and padding for a ``width x height`` image.

        Returned sizes are in the output (un-transposed) frame, except
        ``landscape_resize_hw`` / ``landscape_padding_ltrb``, which are in the
        transposed frame the official code works in.
        """
        if width < 1 or height < 1:
            raise ValueError(f'image must be non-empty, got {width}x{height}')
        transposed = width < height
        long_side, short_side = ((height, width) if transposed else
                                 (width, height))
        ratio = long_side / short_side
        cols = self._columns(long_side, ratio)
        new_w = int(cols * self.tile_size)
        new_h = int(new_w / ratio)
        new_h = max(new_h, 1)
        padded_h = int(math.ceil(new_h / self.tile_size) * self.tile_size)
        pad_total = padded_h - new_h
        if self.mode == 'train':
            top = pad_total // 2
            bottom = pad_total - top
        else:
            top, bottom = 0, pad_total
        rows_l, cols_l = padded_h // self.tile_size, cols
        if transposed:
            grid = (cols_l, rows_l)
            resized = (new_h, new_w)
            padding = (top, 0, bottom, 0)  # padding lands left/right
        else:
            grid = (rows_l, cols_l)
            resized = (new_w, new_h)
            padding = (0, top, 0, bottom)
        return dict(
            grid=grid,
            transposed=transposed,
            resized_size=resized,
            padding=padding,
            landscape_resize_hw=(new_h, new_w),
            landscape_padding_ltrb=(0, top, 0, bottom))

    # -- pixels -----------------------------------------------------------
    def __call__(self, image: ImageLike) -> TiledImage:
        pil = to_pil_rgb(image)
        width, height = pil.size
        plan = self.plan(width, height)
        work = pil.transpose(Image.TRANSPOSE) if plan['transposed'] else pil
        new_h, new_w = plan['landscape_resize_hw']
        work = work.resize((new_w, new_h), Image.BILINEAR)
        array = np.array(work, dtype=np.uint8)
        _, top, _, bottom = plan['landscape_padding_ltrb']
        if top or bottom:
            array = np.pad(
                array, ((top, bottom), (0, 0), (0, 0)),
                mode='constant',
                constant_values=self.pad_value)
        if plan['transposed']:
            array = array.transpose(1, 0, 2)
        return self.tiled_image(
            array,
            plan,
            original_size=(width, height),
            mode=self.mode,
            hd_num=self.hd_num,
            transposed=plan['transposed'],
            landscape_resize_hw=plan['landscape_resize_hw'],
            landscape_padding_ltrb=plan['landscape_padding_ltrb'])

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(hd_num={self.hd_num}, '
                f'mode={self.mode!r}, inference_rule='
                f'{self.inference_rule!r}, max_tiles={self.max_tiles})')
