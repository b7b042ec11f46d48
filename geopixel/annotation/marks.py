"""Set-of-marks: which objects get a numbered marker, where it goes, and the
marked image the annotator model sees.

The paper's rules (docs/en/user_guides/annotation.md): objects above an
area threshold are prominent and get a 14 x 14 px numbered marker; a large
object's marker sits at its mask centre when the centre lies inside the
mask, else at the nearest point of the object; a small object's marker box
is centred on a point of its boundary, so that about half of the marker
covers the object and the rest shows its surroundings. Choices the paper
leaves open are ours and named in the docstrings: the centre is the mask's
centroid, "small" means a mask of fewer than ``4 * size**2`` pixels (it
cannot hold the marker with a margin), the boundary point is the one
nearest the centroid, and a box that would leave the image is shifted
inside it.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

MARKER_SIZE = 14


@dataclass(frozen=True)
class Marker:
    """A numbered marker: its box is ``size`` px wide, centred at (x, y)."""
    number: int
    x: int
    y: int
    small: bool
    size: int = MARKER_SIZE

    def box(self) -> Tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``, ends exclusive."""
        x0 = self.x - self.size // 2
        y0 = self.y - self.size // 2
        return x0, y0, x0 + self.size, y0 + self.size


def select_prominent(areas: Sequence[float],
                     min_area: float) -> Tuple[List[int], List[int]]:
    """Indices of the prominent objects (area >= ``min_area``, largest
    first, as their marker numbers go) and of the rest (the groups)."""
    order = sorted(range(len(areas)), key=lambda i: (-areas[i], i))
    prominent = [i for i in order if areas[i] >= min_area]
    rest = [i for i in range(len(areas)) if areas[i] < min_area]
    return prominent, rest


def _mask(mask) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not mask.any():
        raise ValueError('a marker needs a non-empty 2-D mask')
    return mask


def boundary(mask) -> np.ndarray:
    """The mask's pixels with a 4-neighbour outside it (or on the image
    border)."""
    mask = _mask(mask)
    padded = np.pad(mask, 1, constant_values=False)
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2]
             & padded[1:-1, 2:])
    return mask & ~inner


def _nearest(points: np.ndarray, y: float, x: float) -> Tuple[int, int]:
    """The point (row, col) nearest (y, x); ties go to the first in row
    order."""
    d = (points[:, 0] - y)**2 + (points[:, 1] - x)**2
    row, col = points[int(np.argmin(d))]
    return int(row), int(col)


def marker_position(mask, size: int = MARKER_SIZE) -> Tuple[int, int, bool]:
    """``(x, y, small)``: where the marker of this object goes.

    Large objects: the centroid if the mask holds it, else the mask pixel
    nearest to it (a concave or ring-shaped object: that pixel is on its
    border). Small objects (fewer than ``4 * size**2`` pixels): the border
    pixel nearest the centroid, so that the marker covers part of the object
    and part of its surroundings.
    """
    mask = _mask(mask)
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    small = len(ys) < 4 * size * size
    if small:
        y, x = _nearest(np.argwhere(boundary(mask)), cy, cx)
    else:
        y, x = int(round(cy)), int(round(cx))
        if not mask[y, x]:
            y, x = _nearest(np.stack([ys, xs], 1), cy, cx)
    return x, y, small


def place_markers(masks: Sequence, height: int, width: int,
                  size: int = MARKER_SIZE) -> List[Marker]:
    """One marker per mask, numbered from 1 in the given order, each box
    shifted (if needed) to lie inside the image."""
    if height < size or width < size:
        raise ValueError(f'a {height} x {width} image cannot hold a {size} '
                         'px marker')
    markers = []
    for number, mask in enumerate(masks, start=1):
        x, y, small = marker_position(mask, size)
        half = size // 2
        x = min(max(x, half), width - size + half)
        y = min(max(y, half), height - size + half)
        markers.append(Marker(number, x, y, small, size))
    return markers


def render_markers(image: np.ndarray, markers: Sequence[Marker],
                   fill=(0, 0, 0), ink=(255, 255, 255)) -> np.ndarray:
    """A copy of the RGB ``image`` with each marker drawn: a filled box with
    its number, centred, in PIL's built-in font."""
    from PIL import Image, ImageDraw, ImageFont
    canvas = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    draw = ImageDraw.Draw(canvas)
    for marker in markers:
        x0, y0, x1, y1 = marker.box()
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=tuple(fill))
        text = str(marker.number)
        # the largest built-in size whose text fits the box
        for points in range(marker.size - 2, 3, -1):
            font = ImageFont.load_default(size=points)
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            if right - left <= marker.size - 2 and \
                    bottom - top <= marker.size - 2:
                break
        draw.text(((x0 + x1) / 2, (y0 + y1) / 2), text, fill=tuple(ink),
                  font=font, anchor='mm')
    return np.asarray(canvas)
