"""Preprocessing into iSAID-devkit patches: windows, names, clipping,
the small-instance rule, bad input and the files written."""
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from geopixel.annotation.patching import (PatchWindow, clip_polygon,
                                          clip_polygon_to_window, patch_name,
                                          patch_starts, patch_windows,
                                          polygon_area, split_coco_file,
                                          split_image)
from geopixel.datasets.base import patch_name_size
from geopixel.datasets.isaid import ISAID_CLASSES
from geopixel.utils import BadRecordError


@pytest.mark.parametrize('length, starts', [
    (500, [0]),
    (800, [0]),
    (801, [0, 1]),
    (1000, [0, 200]),
    (1400, [0, 600]),
    (2000, [0, 600, 1200]),
    (3000, [0, 600, 1200, 1800, 2200]),
])
def test_patch_starts_follow_the_devkit(length, starts):
    assert patch_starts(length) == starts


def _covered(windows, height, width):
    seen = np.zeros((height, width), dtype=bool)
    for w in windows:
        seen[w.y0:w.y1, w.x0:w.x1] = True
    return seen.all()


@pytest.mark.parametrize('height, width, ys, xs', [
    (800, 800, [(0, 800)], [(0, 800)]),
    (801, 1000, [(0, 800), (1, 801)], [(0, 800), (200, 1000)]),
    (1400, 2000, [(0, 800), (600, 1400)],
     [(0, 800), (600, 1400), (1200, 2000)]),
    (500, 3000, [(0, 500)], [(0, 800), (600, 1400), (1200, 2000),
                             (1800, 2600), (2200, 3000)]),
])
def test_windows_and_names(height, width, ys, xs):
    windows = patch_windows(height, width, small_images='per_side')
    assert [(w.y0, w.y1, w.x0, w.x1) for w in windows] == [
        (y0, y1, x0, x1) for y0, y1 in ys for x0, x1 in xs
    ]
    assert _covered(windows, height, width)
    for w in windows:
        assert w.height == min(800, height) and w.width == min(800, width)
        name = patch_name('P0042', w)
        assert name == f'P0042_{w.y0}_{w.y1}_{w.x0}_{w.x1}.png'
        # the dataset readers' size check reads the same convention
        assert patch_name_size(name)[:2] == (w.height, w.width)


def test_devkit_rule_for_small_images_keeps_them_whole():
    assert patch_windows(500, 3000) == patch_windows(
        500, 3000, small_images='whole')  # the default
    assert patch_windows(500, 3000, small_images='whole') == [
        PatchWindow(0, 500, 0, 3000)
    ]
    assert patch_windows(1400, 800, small_images='whole') == [
        PatchWindow(0, 1400, 0, 800)
    ]
    assert len(patch_windows(1400, 2000, small_images='whole')) == 6
    with pytest.raises(ValueError, match='small_images'):
        patch_windows(10, 10, small_images='crop')


def test_reference_sample_name():
    assert patch_name('P0224', PatchWindow(0, 800, 0, 800)) == \
        'P0224_0_800_0_800.png'


# A bracket open to the left, straddling x = 800: inside [0, 800] only its
# two arms remain, [700, 800] x [100, 150] and [700, 800] x [250, 300].
BRACKET = [[700, 100], [900, 100], [900, 300], [700, 300], [700, 250],
           [850, 250], [850, 150], [700, 150]]


def _boxes(parts):
    return sorted(
        tuple(np.concatenate([p.min(axis=0), p.max(axis=0)]).tolist())
        for p in parts)


def test_clipping_splits_a_polygon_straddling_the_border():
    parts = clip_polygon(BRACKET, 0, 0, 800, 800)
    assert len(parts) == 2
    assert _boxes(parts) == [(700, 100, 800, 150), (700, 250, 800, 300)]
    assert [polygon_area(p) for p in parts] == [5000, 5000]
    # the input orientation is kept (the bracket is listed clockwise as
    # drawn, i.e. with a positive shoelace sum)
    assert all(np.sign(_shoelace(p)) == np.sign(_shoelace(BRACKET))
               for p in parts)
    # in the next patch (x from 600) the whole bracket is inside, shifted
    whole = clip_polygon_to_window(BRACKET, PatchWindow(0, 800, 600, 1400))
    assert len(whole) == 1
    np.testing.assert_array_equal(whole[0],
                                  np.array(BRACKET) - [600, 0])
    # and one part when reversed and clipped from the other side
    right = clip_polygon_to_window(BRACKET[::-1],
                                   PatchWindow(0, 800, 800, 1600))
    assert _boxes(right) == [(0, 100, 100, 300)]
    # 100 x 200 minus the 50 x 100 notch
    assert polygon_area(right[0]) == 100 * 200 - 50 * 100
    assert clip_polygon(BRACKET, 0, 0, 700, 800) == []  # touches only


def _shoelace(points):
    p = np.asarray(points, dtype=float)
    return np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(
        p[:, 1], np.roll(p[:, 0], -1))


def test_clipping_matches_shapely_on_random_polygons():
    """Exactness against an independent implementation, on polygons whose
    vertices and edges often lie on the clip rectangle's border."""
    shapely = pytest.importorskip('shapely')
    from shapely.geometry import Polygon, box
    rng = np.random.default_rng(0)
    rect = (3, 2, 9, 8)
    checked = split = 0
    for _ in range(600):
        if rng.random() < 0.5:  # unions of grid-aligned boxes
            pieces = []
            for _ in range(rng.integers(2, 7)):
                x0, y0 = rng.integers(0, 12, 2)
                w, h = rng.integers(1, 6, 2)
                pieces.append(box(x0, y0, x0 + w, y0 + h))
            shape = shapely.union_all(pieces)
            if shape.geom_type != 'Polygon' or shape.interiors:
                continue
            points = np.array(shape.exterior.coords)[:-1]
        else:  # star-shaped with integer vertices
            k = rng.integers(3, 14)
            angles = np.sort(rng.uniform(0, 2 * np.pi, k))
            radii = rng.uniform(1, 8, k)
            cx, cy = rng.integers(0, 12, 2)
            points = np.round(
                np.stack([cx + radii * np.cos(angles),
                          cy + radii * np.sin(angles)], 1))
            shape = Polygon(points)
            if not shape.is_valid or shape.area == 0:
                continue
        if rng.random() < 0.5:
            points = points[::-1]
        parts = clip_polygon(points, *rect)
        expected = shape.intersection(box(*rect))
        ours = [Polygon(p) for p in parts]
        assert all(p.is_valid and p.area > 0 for p in ours)
        assert sum(p.area for p in ours) == pytest.approx(expected.area,
                                                          abs=1e-9)
        union = shapely.union_all(ours) if ours else Polygon()
        assert union.symmetric_difference(expected).area < 1e-9
        checked += 1
        split += len(parts) > 1
    assert checked > 250 and split > 5


def _square(x, y, side):
    return [x, y, x + side, y, x + side, y + side, x, y + side]


def test_small_clipped_instances_are_dropped_and_listed():
    image = np.zeros((800, 1000, 3), dtype=np.uint8)  # x windows 0, 200
    anns = [
        # 40 x 40 square at x 170..210: 10 x 40 = 400 px in window x0=200
        dict(id=1, category_id=1, segmentation=[_square(170, 100, 40)]),
        # 1 px high strip at x 185..205: 20 px, of which 5 in window x0=200
        dict(id=2, category_id=1,
             segmentation=[[185, 500, 205, 500, 205, 501, 185, 501]]),
    ]
    first, second = split_image(image, anns, 'P0001', min_area=10,
                                small_images='per_side')
    assert first.name == 'P0001_0_800_0_800.png'
    assert second.name == 'P0001_0_800_200_1000.png'
    assert [i.ann_id for i in first.instances] == [1, 2]
    assert [i.area for i in first.instances] == [1600, 20]
    assert first.dropped == []
    assert [i.ann_id for i in second.instances] == [1]
    assert second.instances[0].area == 400
    assert second.instances[0].bbox == [0, 100, 10, 40]
    assert second.dropped == [(2, 5.0)]
    # area <= min_area is dropped, as the devkit's area <= 10
    first, _ = split_image(image, anns, 'P0001', min_area=20,
                           small_images='per_side')
    assert [i.ann_id for i in first.instances] == [1]
    assert first.dropped == [(2, 20.0)]
    _, second = split_image(image, anns, 'P0001', min_area=0,
                            small_images='per_side')
    assert [i.ann_id for i in second.instances] == [1, 2]
    assert second.image.shape == (800, 800, 3)


def test_split_image_names_a_bad_annotation():
    image = np.zeros((100, 100), dtype=np.uint8)
    anns = [dict(id=4, category_id=1, segmentation=[_square(0, 0, 5)]),
            dict(id=7, category_id=1, segmentation=[[1, 1, 5, 5]])]
    with pytest.raises(BadRecordError,
                       match=r'annotation #1 \(id 7\) polygon 0.*at least 3'):
        split_image(image, anns, 'P1')
    with pytest.raises(BadRecordError, match='category_id 9 is not'):
        split_image(image, [dict(id=1, category_id=9,
                                 segmentation=[_square(0, 0, 5)])], 'P1',
                    category_ids=[1, 2])


# ------------------------------------------------------------------ files


def _write_source(root, height=1000, width=1400):
    images = root / 'images'
    images.mkdir()
    yy, xx = np.mgrid[:height, :width]
    pixels = np.stack([yy % 251, xx % 241, (yy + xx) % 239],
                      -1).astype(np.uint8)
    Image.fromarray(pixels).save(images / 'P0007.png')
    coco = dict(
        images=[dict(id=3, file_name='P0007.png', height=height,
                     width=width)],
        categories=[dict(id=i + 1, name=name)
                    for i, name in enumerate(ISAID_CLASSES)],
        annotations=[
            # inside the top-left patch only
            dict(id=11, image_id=3, category_id=1, iscrowd=0,
                 segmentation=[_square(100, 100, 50)]),
            # the bracket, in every patch that reaches x = 700..900
            dict(id=12, image_id=3, category_id=14, iscrowd=0,
                 segmentation=[sum(BRACKET, [])]),
            # a 6 x 3 strip at x 597..603, y 900..903: 18 px in the x0=0
            # patch, 9 px (dropped, <= 10) in the x0=600 patch
            dict(id=13, image_id=3, category_id=9, iscrowd=0,
                 segmentation=[[597, 900, 603, 900, 603, 903, 597, 903]]),
        ])
    ann_file = root / 'instances.json'
    ann_file.write_text(json.dumps(coco))
    return ann_file, images, pixels, coco


def test_split_coco_file_writes_patches_and_json(tmp_path):
    ann_file, images, pixels, _ = _write_source(tmp_path)
    out = tmp_path / 'out'
    summary = split_coco_file(str(ann_file), str(images), str(out))
    names = sorted(os.listdir(out / 'images'))
    assert names == sorted([
        'P0007_0_800_0_800.png', 'P0007_0_800_600_1400.png',
        'P0007_200_1000_0_800.png', 'P0007_200_1000_600_1400.png'
    ])
    crop = np.asarray(
        Image.open(out / 'images' / 'P0007_200_1000_600_1400.png'))
    np.testing.assert_array_equal(crop, pixels[200:1000, 600:1400])
    coco = json.loads((out / 'instances_patches.json').read_text())
    by_name = {im['file_name']: im for im in coco['images']}
    im = by_name['P0007_0_800_0_800.png']
    assert (im['height'], im['width'], im['window']) == (800, 800,
                                                          [0, 800, 0, 800])
    assert im['source_image_id'] == 3
    anns = {}
    for ann in coco['annotations']:
        name = next(i['file_name'] for i in coco['images']
                    if i['id'] == ann['image_id'])
        anns.setdefault(name, []).append(ann)
    top_left = {a['source_annotation_id']: a for a in anns[im['file_name']]}
    assert set(top_left) == {11, 12}
    assert len(top_left[12]['segmentation']) == 2  # the bracket's arms
    assert top_left[12]['area'] == 10000
    assert top_left[11]['bbox'] == [100, 100, 50, 50]
    # the strip: kept whole in the bottom-left patch (shifted by y0=200)
    left = {a['source_annotation_id']: a
            for a in anns['P0007_200_1000_0_800.png']}
    assert left[13]['area'] == 18
    assert left[13]['segmentation'] == [
        [597, 700, 603, 700, 603, 703, 597, 703]
    ]
    assert 13 not in {a['source_annotation_id']
                      for a in anns['P0007_200_1000_600_1400.png']}
    assert summary['patches'] == 4
    assert summary['dropped_small'] == 1
    assert coco['info']['dropped_small'] == 1
    assert summary['patch_instances'] == len(coco['annotations'])


def test_split_coco_file_output_reads_as_isaid(tmp_path):
    from geopixel.datasets import ISAIDDataset
    ann_file, images, _, _ = _write_source(tmp_path)
    out = tmp_path / 'out'
    split_coco_file(str(ann_file), str(images), str(out), skip_empty=True)
    dataset = ISAIDDataset(
        data_root=str(out), ann_file='instances_patches.json',
        data_prefix=dict(img_path='images/'))
    assert len(dataset) == 4
    total = sum(len(dataset.get_data_info(i)['instances'])
                for i in range(len(dataset)))
    assert total == 6  # 11 once, 12 in all four, 13 in one


@pytest.mark.parametrize('edit, match', [
    (lambda c, root: os.remove(root / 'images' / 'P0007.png'),
     r'record image #0 \(id 3\): image file .*P0007.png is missing'),
    (lambda c, root: c['annotations'][1].update(
        segmentation=[[700, 100, 900, 100]]),
     r'annotation #1 \(id 12\) polygon 0: degenerate polygon'),
    (lambda c, root: c['annotations'][2].update(image_id=99),
     r'annotation #2 \(id 13\): image_id 99 is not in'),
    (lambda c, root: c['annotations'][0].update(category_id=16),
     r'annotation #0 \(id 11\): category_id 16 is not in'),
    (lambda c, root: c['annotations'][0].update(
        segmentation=dict(size=[1, 1], counts='0')),
     r'annotation #0 \(id 11\): RLE segmentations'),
    (lambda c, root: c['images'][0].update(height=999),
     r'record image #0 \(id 3\): the image entry says 999x1400'),
])
def test_split_coco_file_bad_records_are_named(tmp_path, edit, match):
    ann_file, _, _, coco = _write_source(tmp_path)
    edit(coco, tmp_path)
    ann_file.write_text(json.dumps(coco))
    out = tmp_path / 'out'
    with pytest.raises(BadRecordError) as err:
        split_coco_file(str(ann_file), str(tmp_path / 'images'), str(out))
    assert str(ann_file) in str(err.value)
    assert re.search(match, str(err.value)), str(err.value)
    if 'says 999' not in match:  # checked before anything is written
        assert not out.exists()
