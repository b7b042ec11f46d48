"""Masks as polygons and GeoJSON in map coordinates."""
import json

import numpy as np
import pytest

from geopixel.gis import (
    crs_name,
    mask_to_polygons,
    masks_to_features,
    open_image_source,
    write_geojson,
)

from .conftest import EPSG, ORIGIN_X, ORIGIN_Y, PIXEL

shapely = pytest.importorskip('shapely')


def to_map(col, row):
    """Map coordinates of pixel corner (col, row), written out."""
    return ORIGIN_X + col * PIXEL, ORIGIN_Y - row * PIXEL


def ring_corners(ring):
    coords = [tuple(p) for p in ring]
    assert coords[0] == coords[-1]  # closed
    return set(coords[:-1])


def signed_area(ring):
    x, y = np.asarray(ring, dtype=float).T
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def test_a_square_lands_on_its_map_coordinates(write_tif, tmp_path):
    path = write_tif(np.full((3, 40, 50), 128, np.uint8))
    mask = np.zeros((40, 50), bool)
    mask[10:20, 20:36] = True  # rows 10-19, columns 20-35
    with open_image_source(path) as src:
        features = masks_to_features([mask], ['a red roof'], src.transform,
                                     src.crs, properties={'scene': 's1'})
        out = tmp_path / 'roofs.geojson'
        write_geojson(str(out), features, src.crs)
    collection = json.loads(out.read_text())
    assert collection['type'] == 'FeatureCollection'
    assert collection['crs'] == {
        'type': 'name',
        'properties': {'name': f'urn:ogc:def:crs:EPSG::{EPSG}'}
    }
    (feature, ) = collection['features']
    assert feature['geometry']['type'] == 'Polygon'
    (exterior, ) = feature['geometry']['coordinates']
    assert ring_corners(exterior) == {
        to_map(20, 10), to_map(36, 10), to_map(36, 20), to_map(20, 20)}
    assert signed_area(exterior) > 0  # counter-clockwise (RFC 7946)
    assert feature['properties'] == {
        'phrase': 'a red roof', 'mask_index': 0, 'area': 16 * 10 * 0.25,
        'area_px': 160, 'area_unit': 'metre^2', 'scene': 's1'}


def test_a_ring_keeps_its_hole(geo):
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    mask[15:25, 15:25] = False
    (polygon, ) = mask_to_polygons(mask, geo[1])
    (hole, ) = polygon.interiors
    assert ring_corners(hole.coords) == {
        to_map(15, 15), to_map(25, 15), to_map(25, 25), to_map(15, 25)}
    assert signed_area(hole.coords) < 0  # holes clockwise
    assert polygon.area == pytest.approx((400 - 100) * PIXEL**2)


def test_tolerance_simplifies_a_jagged_edge():
    rows = np.arange(30)[:, None]
    mask = np.arange(30)[None, :] <= rows  # a staircase triangle
    (exact, ) = mask_to_polygons(mask, tolerance=0)
    (simple, ) = mask_to_polygons(mask, tolerance=1.0)
    # 61 corners on the stairs, the corner (0, 30), the closing point
    assert len(exact.exterior.coords) == 61 + 1 + 1
    assert len(simple.exterior.coords) <= 5
    assert simple.is_valid
    assert exact.area == mask.sum()
    assert simple.area == pytest.approx(mask.sum(), rel=0.05)


def test_a_window_offset_maps_to_the_scene(geo):
    scene = np.zeros((200, 300), bool)
    scene[70:80, 110:130] = True
    window = scene[60:100, 100:150]
    (from_window, ) = mask_to_polygons(window, geo[1], offset=(100, 60))
    (from_scene, ) = mask_to_polygons(scene, geo[1])
    assert from_window.equals(from_scene)
    assert ring_corners(from_window.exterior.coords) == {
        to_map(110, 70), to_map(130, 70), to_map(130, 80), to_map(110, 80)}
    # without a transform: pixel coordinates of the scene
    (pixels, ) = mask_to_polygons(window, offset=(100, 60))
    assert ring_corners(pixels.exterior.coords) == {
        (110, 70), (130, 70), (130, 80), (110, 80)}


def test_several_parts_make_one_multipolygon_and_empty_masks_stay(geo):
    masks = np.zeros((2, 30, 30), np.uint8)
    masks[0, 2:5, 2:5] = 1
    masks[0, 20:25, 20:22] = 1
    features = masks_to_features(masks, ['two cars', 'nothing'], geo[1],
                                 geo[0], properties=[{'k': 1}, {'k': 2}])
    first, second = features
    assert first['geometry']['type'] == 'MultiPolygon'
    assert len(first['geometry']['coordinates']) == 2
    assert first['properties']['area_px'] == 9 + 10
    assert second['geometry'] is None
    assert second['properties']['area'] == 0
    assert [f['properties']['k'] for f in features] == [1, 2]


def test_plain_images_give_pixel_coordinates_and_no_crs(tmp_path):
    mask = np.zeros((10, 10), bool)
    mask[1:3, 4:7] = True
    (feature, ) = masks_to_features([mask], ['x'], None, None)
    assert ring_corners(feature['geometry']['coordinates'][0]) == {
        (4, 1), (7, 1), (7, 3), (4, 3)}
    assert feature['properties']['area'] == 6
    assert feature['properties']['area_unit'] == 'pixel^2'
    write_geojson(str(tmp_path / 'p.geojson'), [feature], None)
    assert 'crs' not in json.loads((tmp_path / 'p.geojson').read_text())
    assert [p.name for p in tmp_path.iterdir()] == ['p.geojson']


def test_a_crs_without_epsg_code_is_written_as_wkt():
    custom = ('+proj=tmerc +lat_0=0 +lon_0=15.3 +k=0.9996 +x_0=500000 '
              '+y_0=0 +datum=WGS84 +units=m +no_defs')
    name = crs_name(custom)
    assert 'Transverse_Mercator' in name and 'EPSG::' not in name
    assert crs_name('EPSG:4326') == 'urn:ogc:def:crs:EPSG::4326'


@pytest.mark.parametrize('masks, phrases, kwargs, problem', [
    (np.zeros((1, 5, 5), np.float32), ['x'], {}, 'threshold'),
    (np.zeros((2, 5, 5), bool), ['x'], {}, 'one phrase per mask'),
    (np.zeros((1, 5, 5), bool), ['x'], dict(properties={'area': 3}),
     'written by masks_to_features'),
    (np.zeros((1, 5, 5), bool), ['x'], dict(properties=[{}, {}]),
     'one per mask'),
    (np.zeros((1, 5, 5), bool), ['x'], dict(tolerance=-1), 'tolerance'),
])
def test_bad_arguments(masks, phrases, kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        masks_to_features(masks, phrases, None, None, **kwargs)
