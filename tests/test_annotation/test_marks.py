"""Set-of-marks: prominent objects, marker positions, marked images."""
import numpy as np
import pytest

from geopixel.annotation.marks import (MARKER_SIZE, Marker, boundary,
                                       marker_position, place_markers,
                                       render_markers, select_prominent)

H = W = 200


def square(y0, y1, x0, x1):
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_prominent_objects_by_area_largest_first():
    prominent, rest = select_prominent([50, 400, 10, 400, 900], 100)
    assert prominent == [4, 1, 3] and rest == [0, 2]
    assert select_prominent([], 10) == ([], [])


def test_large_convex_object_marked_at_its_centre():
    x, y, small = marker_position(square(40, 100, 60, 160))
    assert not small and (x, y) == (110, 70)


def test_concave_object_marked_at_the_nearest_point_of_itself():
    ring = square(40, 160, 40, 160) & ~square(60, 140, 60, 140)
    x, y, small = marker_position(ring)
    assert not small
    assert ring[y, x] and boundary(ring)[y, x]
    # the centroid (99.5, 99.5) is in the hole: the marker goes to the
    # ring pixel nearest to it, on the inner edge
    ys, xs = np.nonzero(ring)
    nearest = ((ys - 99.5)**2 + (xs - 99.5)**2).min()
    assert (y - 99.5)**2 + (x - 99.5)**2 == nearest
    assert x in (59, 140) or y in (59, 140)
    u_shape = square(40, 160, 40, 160) & ~square(40, 130, 70, 130)
    x, y, _ = marker_position(u_shape)
    assert u_shape[y, x]


def test_small_object_marker_straddles_its_boundary():
    mask = square(100, 112, 50, 60)  # 120 px < 4 * 14**2
    x, y, small = marker_position(mask)
    assert small and boundary(mask)[y, x]
    (marker, ) = place_markers([mask], H, W)
    x0, y0, x1, y1 = marker.box()
    box = np.zeros((H, W), dtype=bool)
    box[y0:y1, x0:x1] = True
    on_object = (box & mask).sum() / box.sum()
    # part of the box on the object, part around it
    assert 0.2 < on_object < 0.8


def test_markers_are_numbered_and_kept_inside_the_image():
    corner = square(0, 5, 0, 5)
    big = square(50, 150, 50, 150)
    markers = place_markers([big, corner], H, W)
    assert [m.number for m in markers] == [1, 2]
    for m in markers:
        x0, y0, x1, y1 = m.box()
        assert 0 <= x0 and 0 <= y0 and x1 <= W and y1 <= H
        assert x1 - x0 == y1 - y0 == MARKER_SIZE
    with pytest.raises(ValueError, match='cannot hold'):
        place_markers([corner[:10, :10]], 10, 10)
    with pytest.raises(ValueError, match='non-empty'):
        marker_position(np.zeros((H, W), dtype=bool))


@pytest.mark.parametrize('number', [3, 12, 104])
def test_rendered_markers_change_only_their_boxes(number):
    image = np.full((H, W, 3), 128, dtype=np.uint8)
    marker = Marker(number, 100, 60, False)
    marked = render_markers(image, [marker])
    x0, y0, x1, y1 = marker.box()
    outside = np.ones((H, W), dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert (marked[outside] == image[outside]).all()
    inside = marked[y0:y1, x0:x1]
    assert (inside == 0).any() and (inside > 64).any()  # box and digits
    assert (image == 128).all()  # the input is not drawn on
