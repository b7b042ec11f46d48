"""Spatial priors on constructed layouts: instance cells, the three-stage
group position and category counts."""
import numpy as np
import pytest

from geopixel.annotation.spatial import (CELL_PHRASES_3X3,
                                         GROUP_SCATTERED_PHRASE,
                                         category_counts, grid_counts,
                                         grid_shares, group_position,
                                         instance_cell, instance_position,
                                         masks_by_category)

SIZE = 90  # cells of 30 px (3 x 3), 45 px (2 x 2), 15 px (6 x 6)


def blob(y, x, half=3, size=SIZE):
    """A square mask centred at (y, x)."""
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[max(y - half, 0):y + half, max(x - half, 0):x + half] = 1
    return mask


def cell_centre(row, col, cell=30):
    return row * cell + cell // 2, col * cell + cell // 2


@pytest.mark.parametrize('row', range(3))
@pytest.mark.parametrize('col', range(3))
def test_an_object_in_each_cell(row, col):
    assert instance_cell(blob(*cell_centre(row, col))) == (row, col)
    # 800 px is not a multiple of 3: edges at 266 and 533
    y, x = 133 + row * 266, 133 + col * 266
    phrase = instance_position(blob(y, x, half=20, size=800))
    assert phrase == CELL_PHRASES_3X3[row][col]


def test_phrases():
    assert [p for row in CELL_PHRASES_3X3 for p in row] == [
        'top left', 'top center', 'top right', 'center left', 'center',
        'center right', 'bottom left', 'bottom center', 'bottom right'
    ]


def test_the_cell_with_most_of_the_area_wins():
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[10:20, 25:30] = 1  # 50 px in top left
    mask[10:20, 30:36] = 1  # 60 px in top center
    assert instance_position(mask) == 'top center'
    assert grid_counts(mask, 3, 3)[0].tolist() == [50, 60, 0]
    np.testing.assert_allclose(grid_shares(mask, 1, 2), [[1.0, 0.0]])


def test_ties_go_to_the_cell_nearest_the_centroid():
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[0:10, 0:10] = 1  # 100 px, top left
    mask[20:30, 30:40] = 1  # 100 px, top center
    mask[50:59, 50:60] = 1  # 90 px, center: pulls the centroid right
    # row-major order alone would say top left
    assert instance_cell(mask) == (0, 1)
    mirrored = mask[:, ::-1]  # 100 px top right, 100 px top center
    assert instance_cell(mirrored) == (0, 1)


def test_empty_masks_are_errors():
    with pytest.raises(ValueError, match='empty'):
        instance_cell(np.zeros((SIZE, SIZE)))
    with pytest.raises(ValueError, match='at least one'):
        group_position([])
    with pytest.raises(ValueError, match='H x W'):
        instance_cell(np.zeros((2, SIZE, SIZE)))


def group_at(cells, per_cell=3):
    """``per_cell`` small objects spread inside each given 3 x 3 cell."""
    masks = []
    for row, col in cells:
        y, x = cell_centre(row, col)
        for offset in np.linspace(-8, 8, per_cell).round().astype(int):
            masks.append(blob(y + offset, x + offset, half=2))
    return masks


def test_group_in_one_cell():
    position = group_position(group_at([(2, 0)]))
    assert (position.phrase, position.stage) == ('bottom left', 'cell')
    assert position.share == 1.0


def test_group_over_the_top_row_is_at_the_top():
    position = group_position(group_at([(0, 0), (0, 1), (0, 2)]))
    assert (position.phrase, position.stage) == ('top', 'half')
    assert position.share == 1.0


def test_group_in_two_left_cells():
    # top and bottom left cells: no cell, no quadrant holds 60%, the left
    # half holds everything
    position = group_position(group_at([(0, 0), (2, 0)]))
    assert (position.phrase, position.stage) == ('left', 'half')
    # top and center left cells: 3 of 6 objects in the top left cell, the
    # other 3 at y 37, 45, 53 around the quadrant edge (y 45): 1.5 above
    position = group_position(group_at([(0, 0), (1, 0)]))
    assert (position.phrase, position.stage) == ('top left', 'quadrant')
    assert position.share == pytest.approx(4.5 / 6)


def test_group_in_a_quadrant_across_cells():
    masks = [blob(y, x, half=2) for y in (50, 80) for x in (50, 80)]
    position = group_position(masks)
    assert (position.phrase, position.stage) == ('bottom right', 'quadrant')


def test_group_everywhere_is_across_the_image():
    cells = [(r, c) for r in range(3) for c in range(3)]
    position = group_position(group_at(cells))
    assert (position.phrase, position.stage) == (GROUP_SCATTERED_PHRASE,
                                                 'scattered')
    assert position.share == pytest.approx(0.5)


def test_the_centre_cell_weighs_more():
    # half the group in the centre cell, the rest one object per other
    # cell (8 objects): 0.5 unweighted, 0.75 / 1.25 = 0.6 weighted
    masks = group_at([(1, 1)], per_cell=8) + group_at(
        [(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)],
        per_cell=1)
    position = group_position(masks)
    assert (position.phrase, position.stage) == ('center', 'cell')
    assert position.share == pytest.approx(0.6)
    unweighted = group_position(masks, centre_weight=1.0)
    assert unweighted.stage != 'cell'


def test_each_instance_counts_once_whatever_its_size():
    big = np.zeros((SIZE, SIZE), dtype=np.uint8)
    big[60:90, 0:30] = 1  # 900 px, bottom left cell
    smalls = group_at([(0, 2)], per_cell=3)  # 3 x 16 px, top right
    position = group_position([big] + smalls)
    assert (position.phrase, position.stage) == ('top right', 'cell')
    assert position.share == pytest.approx(0.75)


def test_bad_settings():
    with pytest.raises(ValueError, match='dominance'):
        group_position(group_at([(0, 0)]), dominance=0.5)
    with pytest.raises(ValueError, match='centre_weight'):
        group_position(group_at([(0, 0)]), centre_weight=0)


def test_category_counts_and_grouping():
    names = ['ship', 'plane', 'ship', 'harbor', 'plane', 'ship']
    assert list(category_counts(names).items()) == [('ship', 3),
                                                    ('plane', 2),
                                                    ('harbor', 1)]
    masks = [blob(10 + 10 * k, 10) for k in range(6)]
    groups = masks_by_category(masks, names)
    assert list(groups) == ['ship', 'plane', 'harbor']
    assert [len(v) for v in groups.values()] == [3, 2, 1]
    assert groups['plane'][1] is masks[4]
    with pytest.raises(ValueError, match='6 masks but 5'):
        masks_by_category(masks, names[:5])
