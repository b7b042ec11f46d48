"""Tiler contract: image -> padded high-resolution canvas cut into tiles."""
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Tuple, Union

import numpy as np
from PIL import Image

ImageLike = Union[Image.Image, np.ndarray]


@dataclass
class TiledImage:
    """What a tiler produces for one image.

    ``image`` is the padded canvas (uint8 RGB, H x W x 3) whose sides are
    multiples of ``tile_size``; tiles are its ``tile_size`` squares in
    row-major order. Geometry fields are recorded so a prediction can be
    mapped back to the original pixels.
    """
    image: np.ndarray
    grid: Tuple[int, int]  # (rows, cols)
    tile_size: int
    original_size: Tuple[int, int]  # (width, height)
    resized_size: Tuple[int, int]  # (width, height) before padding
    padding: Tuple[int, int, int, int]  # (left, top, right, bottom)
    num_tokens: int
    meta: dict = field(default_factory=dict)

    @property
    def num_tiles(self) -> int:
        return self.grid[0] * self.grid[1]


class BaseTiler(metaclass=ABCMeta):
    """Turns an image of any size into a padded, tiled canvas.

    Tilers are pure and deterministic (no torch), so the same object serves
    the data pipeline, the inference API and sequence-length planning. A
    tiler decides only the grid and the canvas (``plan`` and
    ``__call__``); the visual token count follows from the tile geometry
    alone, so it lives here for every tiler (``num_tokens``).

    Args:
        tile_size: tile side in pixels (the vision encoder's input size);
            a multiple of ``pixels_per_token``.
    """

    #: pixels per merged visual token side: CLIPVisionEncoder's 14 px
    #: patches merged 2x2
    pixels_per_token = 28

    def __init__(self, tile_size: int = 560):
        if tile_size < 1 or tile_size % self.pixels_per_token:
            raise ValueError(
                f'tile_size must be a positive multiple of '
                f'{self.pixels_per_token} px (one merged token), got '
                f'{tile_size}')
        self.tile_size = int(tile_size)

    @abstractmethod
    def __call__(self, image: ImageLike) -> TiledImage:
        """Tile one RGB image (build the result with ``tiled_image``)."""

    @abstractmethod
    def plan(self, width: int, height: int) -> dict:
        """Geometry for an image of this size, without touching pixels:
        at least ``grid`` (rows, cols), ``resized_size`` and ``padding``."""

    @property
    def tokens_per_side(self) -> int:
        """Merged tokens along one side of a tile."""
        return self.tile_size // self.pixels_per_token

    def num_tokens(self, rows: int, cols: int) -> int:
        """Visual tokens the vision encoder emits for a ``rows x cols`` grid.

        With ``s = tokens_per_side``: ``s * s`` merged tokens for the global
        view and for every tile, a newline token after every token row (``s``
        rows in the global view, ``rows * s`` across the tiles) and one
        separator between the two: ``(rows*cols + 1) s^2 + s (rows + 1) +
        1``, e.g. 4081 for 3 x 3 tiles of 560 px (s = 20).
        """
        s = self.tokens_per_side
        return (rows * cols + 1) * s * s + s * (rows + 1) + 1

    def tokens_for_size(self, width: int, height: int) -> int:
        plan = self.plan(width, height)
        return self.num_tokens(*plan['grid'])

    def tiled_image(self, canvas: np.ndarray, plan: dict,
                    original_size: Tuple[int, int], **meta) -> TiledImage:
        """Package a canvas with its plan; the token count follows the
        grid. A canvas whose size is not the grid's is an error."""
        rows, cols = plan['grid']
        expected = (rows * self.tile_size, cols * self.tile_size, 3)
        if canvas.shape != expected:
            raise ValueError(f'{type(self).__name__}: canvas {canvas.shape} '
                             f'is not the {rows} x {cols} grid of '
                             f'{self.tile_size} px tiles {expected}')
        return TiledImage(
            image=np.ascontiguousarray(canvas),
            grid=(rows, cols),
            tile_size=self.tile_size,
            original_size=tuple(original_size),
            resized_size=tuple(plan['resized_size']),
            padding=tuple(plan['padding']),
            num_tokens=self.num_tokens(rows, cols),
            meta=meta)


def to_pil_rgb(image: ImageLike) -> Image.Image:
    """An RGB PIL image from a PIL image or an H x W x 3 uint8 RGB array."""
    if isinstance(image, Image.Image):
        return image if image.mode == 'RGB' else image.convert('RGB')
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError('expected an H x W x 3 uint8 RGB array, got '
                         f'{array.dtype} {array.shape}')
    return Image.fromarray(array, mode='RGB')


def split_tiles(canvas, grid: Tuple[int, int], tile_size: int):
    """Cut a [3, H, W] (or [B, 3, H, W]) canvas into row-major tiles.

    Returns [rows*cols, 3, tile, tile] (or [B*rows*cols, ...]).
    """
    rows, cols = grid
    batched = canvas.dim() == 4
    x = canvas if batched else canvas.unsqueeze(0)
    b, c = x.shape[:2]
    if x.shape[2] != rows * tile_size or x.shape[3] != cols * tile_size:
        raise ValueError(f'canvas {tuple(x.shape[2:])} does not match grid '
                         f'{grid} of {tile_size} px tiles')
    x = x.reshape(b, c, rows, tile_size, cols, tile_size)
    x = x.permute(0, 2, 4, 1, 3, 5).reshape(b * rows * cols, c, tile_size,
                                            tile_size)
    return x


def global_view(canvas, tile_size: int):
    """The whole canvas resized to one tile (bicubic, aspect not kept).

    Runs in float32 on the normalised tensor, as the official vision tower
    does, whatever the input dtype.
    """
    import torch.nn.functional as F
    batched = canvas.dim() == 4
    x = canvas if batched else canvas.unsqueeze(0)
    out = F.interpolate(
        x.float(),
        size=(tile_size, tile_size),
        mode='bicubic',
        align_corners=False)
    return out if batched else out[0]
