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
                        legend_width: int = 260,
                        colours: Optional[Sequence[tuple]] = None
                        ) -> np.ndarray:
    """Blend each mask in its colour, outline it, and add a legend panel on
    the right.

    Every mask gets a double outline, black outside and white inside, so
    its border shows on any scene, even where the fill colour matches what
    lies under it (a yellow fill on a yellow roof). The outline width grows
    with the image (one pixel per line up to 600 px).

    Args:
        image: H x W x 3 uint8 RGB.
        masks: binary H x W masks (the k-th belongs to ``labels[k]``).
        labels: legend text per mask (defaults to ``mask k``).
        alpha: mask opacity.
        title: optional line above the legend (e.g. the image name).
        colours: RGB per mask; default ``palette(len(masks))``. A subset of
            masks keeps its colours when given the subset of the palette.

    Returns:
        H' x (W + legend_width) x 3 uint8 RGB, H' >= H fitting the legend.
    """
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    out = image.astype(np.float32)
    colours = list(colours) if colours is not None else palette(len(masks))
    if len(colours) != len(masks):
        raise ValueError(f'{len(colours)} colours for {len(masks)} masks')
    labels = list(labels) if labels is not None else []
    labels += [f'mask {k}' for k in range(len(labels), len(masks))]
    selections = []
    for mask, colour in zip(masks, colours):
        sel = np.asarray(mask).astype(bool)
        if sel.shape != (h, w):
            raise ValueError(f'mask of shape {sel.shape} does not match the '
                             f'image {(h, w)}')
        out[sel] = (1 - alpha) * out[sel] + alpha * np.array(colour)
        selections.append(sel)
    line = 1 + min(h, w) // 600
    for sel in selections:
        inner = _erode(sel, line)
        out[sel & ~inner] = 0  # black: the outer line
        out[inner & ~_erode(inner, line)] = 255  # white: the inner line
    chars_per_line = max(8, (legend_width - 36) // 6)
    entries = [
        textwrap.wrap(f'{label} ({int(sel.sum())} px)', chars_per_line)
        or [''] for label, sel in zip(labels, selections)
    ]
    # the last entry needs no gap below it
    legend_h = 4 + (18 if title else 0) + sum(14 * len(e) + 4
                                              for e in entries)
    canvas = Image.new('RGB', (w + legend_width, max(h, 40, legend_h)),
                       (255, 255, 255))
    canvas.paste(Image.fromarray(out.astype(np.uint8)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    y = 8
    if title:
        draw.text((w + 8, y), title[:40], fill=(0, 0, 0), font=font)
        y += 18
    for lines, colour in zip(entries, colours):
        draw.rectangle([w + 8, y, w + 22, y + 12], fill=colour,
                       outline=(0, 0, 0))
        for text in lines:
            draw.text((w + 28, y), text, fill=(0, 0, 0), font=font)
            y += 14
        y += 4
    return np.asarray(canvas).copy()


def _erode(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    """``mask`` shrunk by ``steps`` pixels (4-neighbourhood); pixels on
    the image border count as outside, so a mask touching it is outlined
    there too."""
    out = mask.copy()
    for _ in range(steps):
        prev = out.copy()
        out[0, :] = out[-1, :] = False
        out[:, 0] = out[:, -1] = False
        out[1:] &= prev[:-1]
        out[:-1] &= prev[1:]
        out[:, 1:] &= prev[:, :-1]
        out[:, :-1] &= prev[:, 1:]
    return out
