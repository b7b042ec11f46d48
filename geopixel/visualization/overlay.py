"""Mask overlays with a colour legend, one colour per phrase."""
import colorsys
import textwrap
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def palette(n: int) -> List[tuple]:
    """``n`` well-separated RGB colours (golden-ratio hues)."""
    colours = []
    for i in range(n):
        hue = (0.13 + i * 0.618034) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def draw_grounded_masks(image: np.ndarray,
                        masks: Sequence[np.ndarray],
                        labels: Optional[Sequence[str]] = None,
                        alpha: float = 0.5,
                        title: Optional[str] = None,
                        legend_width: int = 260) -> np.ndarray:
    """Blend each mask in its colour and add a legend panel on the right.

    Args:
        image: H x W x 3 uint8 RGB.
        masks: binary H x W masks (the k-th belongs to ``labels[k]``).
        labels: legend text per mask (defaults to ``mask k``).
        alpha: mask opacity.
        title: optional line above the legend (e.g. the image name).

    Returns:
        H' x (W + legend_width) x 3 uint8 RGB.
    """
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    out = image.astype(np.float32)
    colours = palette(len(masks))
    labels = list(labels) if labels is not None else []
    labels += [f'mask {k}' for k in range(len(labels), len(masks))]
    for mask, colour in zip(masks, colours):
        sel = np.asarray(mask).astype(bool)
        if sel.shape != (h, w):
            raise ValueError(f'mask of shape {sel.shape} does not match the '
                             f'image {(h, w)}')
        out[sel] = (1 - alpha) * out[sel] + alpha * np.array(colour)
    canvas = Image.new('RGB', (w + legend_width, max(h, 40)), (255, 255, 255))
    canvas.paste(Image.fromarray(out.astype(np.uint8)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    y = 8
    if title:
        draw.text((w + 8, y), title[:40], fill=(0, 0, 0), font=font)
        y += 18
    chars_per_line = max(8, (legend_width - 36) // 6)
    for label, colour, mask in zip(labels, colours, masks):
        draw.rectangle([w + 8, y, w + 22, y + 12], fill=colour,
                       outline=(0, 0, 0))
        area = int(np.asarray(mask).astype(bool).sum())
        lines = textwrap.wrap(f'{label} ({area} px)', chars_per_line) or ['']
        for line in lines:
            draw.text((w + 28, y), line, fill=(0, 0, 0), font=font)
            y += 14
        y += 4
    # Outline each mask so adjacent masks of similar colour stay apart.
    outlined = np.asarray(canvas).copy()
    for mask, colour in zip(masks, colours):
        sel = np.asarray(mask).astype(bool)
        edge = sel ^ _erode(sel)
        outlined[:h, :w][edge] = colour
    return outlined


def _erode(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    return out
