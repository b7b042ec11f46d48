"""Spatial priors: where an instance or a group lies in a patch, in words.

The paper gives each prominent instance the cell of a 3 x 3 grid that it
overlaps most, and each group (the remaining objects of a category) a
position from a three-stage analysis: a 3 x 3 grid with a larger weight
for the centre cell, then a 2 x 2 grid for more dispersed objects, then
halves (1 x 2 and 2 x 1). It does not give the words, the weight or the
thresholds; the choices below are ours (docs/en/user_guides/annotation.md).

Grids. An ``n``-part split of a side of ``L`` pixels has edges
``k * L // n``; with these integer edges the 3 x 3 and 2 x 2 grids are
unions of the cells of one 6 x 6 grid, so a mask is summed once.

Vocabulary. Cells: ``top left``, ``top center``, ``top right``,
``center left``, ``center``, ``center right``, ``bottom left``,
``bottom center``, ``bottom right``. Quadrants: ``top left``,
``top right``, ``bottom left``, ``bottom right``. Halves: ``top``,
``bottom``, ``left``, ``right``. A group that no stage places is
``across the image``. The words carry no preposition: a prompt says
"in the top left" or "at the top" around them.
"""
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Hashable, Iterable, Sequence, Tuple

import numpy as np

CELL_PHRASES_3X3 = (('top left', 'top center', 'top right'),
                    ('center left', 'center', 'center right'),
                    ('bottom left', 'bottom center', 'bottom right'))
QUADRANT_PHRASES = (('top left', 'top right'), ('bottom left',
                                                'bottom right'))
HALF_PHRASES = ('top', 'bottom', 'left', 'right')
GROUP_SCATTERED_PHRASE = 'across the image'
CENTRE_WEIGHT = 1.5
DOMINANCE = 0.6


def grid_edges(length: int, parts: int) -> np.ndarray:
    """``parts + 1`` integer edges ``k * length // parts``."""
    return np.array([k * length // parts for k in range(parts + 1)])


def _as_mask(mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'a mask must be H x W, got shape {mask.shape}')
    return mask.astype(bool, copy=False)


def grid_counts(mask, rows: int, cols: int) -> np.ndarray:
    """Mask pixels in each cell of a ``rows`` x ``cols`` grid."""
    mask = _as_mask(mask)
    height, width = mask.shape
    if height < rows or width < cols:
        raise ValueError(f'a {width}x{height} mask cannot be split into a '
                         f'{rows} x {cols} grid')
    per_row = np.add.reduceat(mask, grid_edges(height, rows)[:-1], axis=0,
                              dtype=np.int64)
    return np.add.reduceat(per_row, grid_edges(width, cols)[:-1], axis=1)


def grid_shares(mask, rows: int, cols: int) -> np.ndarray:
    """Fraction of the mask's area in each grid cell (sums to 1)."""
    counts = grid_counts(mask, rows, cols)
    total = counts.sum()
    if total == 0:
        raise ValueError('the mask is empty; it has no position')
    return counts / total


def instance_cell(mask, rows: int = 3, cols: int = 3) -> Tuple[int, int]:
    """``(row, col)`` of the cell holding most of the mask's area.

    Ties (an object split evenly between cells) go to the tied cell whose
    centre is nearest the mask's centroid, then to the first in row-major
    order.
    """
    mask = _as_mask(mask)
    counts = grid_counts(mask, rows, cols)
    if counts.sum() == 0:
        raise ValueError('the mask is empty; it has no position')
    tied = np.argwhere(counts == counts.max())
    if len(tied) == 1:
        return int(tied[0][0]), int(tied[0][1])
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
    ye = grid_edges(mask.shape[0], rows)
    xe = grid_edges(mask.shape[1], cols)

    def distance(cell):
        r, c = cell
        return ((ye[r] + ye[r + 1]) / 2 - cy)**2 + (
            (xe[c] + xe[c + 1]) / 2 - cx)**2

    best = min((tuple(int(v) for v in cell) for cell in tied),
               key=lambda cell: (distance(cell), cell))
    return best


def instance_position(mask) -> str:
    """The 3 x 3 cell phrase of one instance (``'top left'``...)."""
    row, col = instance_cell(mask)
    return CELL_PHRASES_3X3[row][col]


@dataclass(frozen=True)
class GroupPosition:
    """Where a group lies.

    ``stage`` is ``'cell'`` (3 x 3), ``'quadrant'`` (2 x 2), ``'half'``
    or ``'scattered'``; ``share`` is the winning region's share of the
    group (at stage 1 after the centre weighting; for ``'scattered'`` the
    largest half's share, below ``dominance``).
    """
    phrase: str
    stage: str
    share: float


def group_shares(masks: Iterable) -> np.ndarray:
    """The group's 6 x 6 distribution: each instance counts once, spread
    over the cells by its area (a car across two cells is half in each),
    so a big object does not outweigh many small ones."""
    total, count = None, 0
    for mask in masks:
        shares = grid_shares(mask, 6, 6)
        total = shares if total is None else total + shares
        count += 1
    if count == 0:
        raise ValueError('a group needs at least one instance mask')
    return total / count


def group_position(masks: Iterable,
                   centre_weight: float = CENTRE_WEIGHT,
                   dominance: float = DOMINANCE) -> GroupPosition:
    """The three-stage position of a group of instance masks.

    1. 3 x 3: the centre cell's share is multiplied by ``centre_weight``
       and the shares renormalised; the best cell wins if its share is
       >= ``dominance`` (the weight lets a group around the middle that
       spills into the neighbours still read as "center").
    2. 2 x 2: the best quadrant wins if its share is >= ``dominance``.
    3. Halves: the best of top, bottom, left and right (ties in that
       order) wins if its share is >= ``dominance``.
    Otherwise the group is ``'across the image'``. Shares are per
    instance (see :func:`group_shares`).
    """
    if not centre_weight > 0:
        raise ValueError(f'centre_weight must be > 0, got {centre_weight}')
    if not 0.5 < dominance <= 1:
        # at 0.5 or below two halves could both "dominate"
        raise ValueError(f'dominance must be in (0.5, 1], got {dominance}')
    fine = group_shares(masks)
    cells = fine.reshape(3, 2, 3, 2).sum(axis=(1, 3))
    weighted = cells.copy()
    weighted[1, 1] *= centre_weight
    weighted /= weighted.sum()
    row, col = np.unravel_index(int(np.argmax(weighted)), weighted.shape)
    if weighted[row, col] >= dominance:
        return GroupPosition(CELL_PHRASES_3X3[row][col], 'cell',
                             float(weighted[row, col]))
    quadrants = fine.reshape(2, 3, 2, 3).sum(axis=(1, 3))
    row, col = np.unravel_index(int(np.argmax(quadrants)), quadrants.shape)
    if quadrants[row, col] >= dominance:
        return GroupPosition(QUADRANT_PHRASES[row][col], 'quadrant',
                             float(quadrants[row, col]))
    halves = np.array([
        quadrants[0].sum(), quadrants[1].sum(), quadrants[:, 0].sum(),
        quadrants[:, 1].sum()
    ])
    best = int(np.argmax(halves))
    if halves[best] >= dominance:
        return GroupPosition(HALF_PHRASES[best], 'half', float(halves[best]))
    return GroupPosition(GROUP_SCATTERED_PHRASE, 'scattered',
                         float(halves[best]))


def category_counts(categories: Iterable[Hashable]) -> Dict[Hashable, int]:
    """Instances per category, most frequent first (ties: first seen)."""
    counter = Counter()
    first = {}
    for k, category in enumerate(categories):
        counter[category] += 1
        first.setdefault(category, k)
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], first[kv[0]])))


def masks_by_category(masks: Sequence, categories: Sequence[Hashable]
                      ) -> Dict[Hashable, list]:
    """Masks grouped by category, in :func:`category_counts` order."""
    if len(masks) != len(categories):
        raise ValueError(f'{len(masks)} masks but {len(categories)} '
                         'categories')
    groups = {category: [] for category in category_counts(categories)}
    for mask, category in zip(masks, categories):
        groups[category].append(mask)
    return groups
