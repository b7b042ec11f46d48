"""Windows and stitching of huge scenes, on synthetic scenes of coloured
shapes. The predictor is a test double for the model that segments the
shapes by colour: what is under test is the windowing and the stitching."""
import json
from typing import NamedTuple

import cv2
import numpy as np
import pytest

from geopixel.apis.scene import (WindowPrediction, phrase_category,
                                 plan_windows, run_scene)
from geopixel.utils import decode_rle

# distinct red values: the predictor looks at the red channel only
BUILDING, TREE, SHIP, ROAD = (200, 30, 30), (40, 200, 30), (60, 30, 200), \
    (220, 220, 0)
NAMES = {BUILDING: 'building', TREE: 'tree', SHIP: 'ship', ROAD: 'road'}


class Rect(NamedTuple):
    colour: tuple
    x0: int
    y0: int
    x1: int
    y1: int

    def slices(self, x, y):
        """The rectangle in the pixels of a window at ``x, y``."""
        return (slice(max(self.y0 - y, 0), max(self.y1 - y, 0)),
                slice(max(self.x0 - x, 0), max(self.x1 - x, 0)))

    def mask(self, x, y, w, h):
        out = np.zeros((h, w), bool)
        out[self.slices(x, y)] = True
        return out


class Disc(NamedTuple):
    colour: tuple
    cx: int
    cy: int
    r: int

    def mask(self, x, y, w, h):
        yy, xx = np.ogrid[y:y + h, x:x + w]
        return (xx - self.cx)**2 + (yy - self.cy)**2 <= self.r**2


class Scene:
    """A virtual scene drawn window by window on request; ``nodata``
    rectangles keep their colours but are marked invalid."""

    def __init__(self, width, height, shapes, nodata=()):
        self.width, self.height = width, height
        self.shapes, self.nodata = shapes, nodata
        self.reads = []

    def read(self, x0, y0, w, h):
        self.reads.append((x0, y0, w, h))
        rgb = np.zeros((h, w, 3), np.uint8)
        for shape in self.shapes:
            if isinstance(shape, Rect):
                rgb[shape.slices(x0, y0)] = shape.colour
            else:
                rgb[shape.mask(x0, y0, w, h)] = shape.colour
        valid = np.ones((h, w), bool)
        for box in self.nodata:
            valid[Rect(None, *box).slices(x0, y0)] = False
        return rgb, valid

    def truth(self, *shapes):
        """The union of ``shapes`` minus nodata, over the whole scene."""
        valid = self.read(0, 0, self.width, self.height)[1]
        out = np.zeros((self.height, self.width), bool)
        for shape in shapes:
            out |= shape.mask(0, 0, self.width, self.height)
        return out & valid


def shape_predictor(group=False, calls=None):
    """Per colour, one mask per 4-connected component (``building-1``,
    ``building-2``...) or, with ``group``, one mask of all its pixels
    (``buildings``)."""

    def predict(rgb):
        if calls is not None:
            calls.append(rgb.shape)
        phrases, masks = [], []
        red = rgb[..., 0]
        present = set(np.unique(red[red > 0]).tolist())
        for colour, name in NAMES.items():
            if colour[0] not in present:
                continue
            hit = red == colour[0]
            if group:
                phrases.append(name + 's')
                masks.append(hit)
                continue
            count, labels = cv2.connectedComponents(hit.astype(np.uint8),
                                                    connectivity=4)
            for k in range(1, count):
                phrases.append(f'{name}-{k}')
                masks.append(labels == k)
        text = ' , '.join(f'<p> {p} </p> [SEG]' for p in phrases)
        return WindowPrediction(
            text, phrases,
            np.array(masks, bool).reshape(-1, *rgb.shape[:2]))

    return predict


def collect_blocks(width, height):
    """A ``write_mask`` that pastes blocks into a scene array and counts
    how often each pixel was written."""
    canvas = np.zeros((height, width), np.int64)
    written = np.zeros((height, width), np.int64)
    dtypes = set()

    def write(x0, y0, block):
        h, w = block.shape
        canvas[y0:y0 + h, x0:x0 + w] = block
        written[y0:y0 + h, x0:x0 + w] += 1
        dtypes.add(block.dtype)

    return write, canvas, written, dtypes


def object_mask(obj, width, height):
    x0, y0, crop = obj.mask_crop()
    out = np.zeros((height, width), bool)
    out[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    return out


def run_gcg(scene, group=False, **kwargs):
    kwargs = dict(dict(window=256, overlap=64), **kwargs)
    return run_scene(scene.width, scene.height, scene.read,
                     shape_predictor(group), task='gcg', **kwargs)


# -- plans -------------------------------------------------------------------
@pytest.mark.parametrize('width,height,window,overlap', [
    (700, 600, 256, 64), (512, 512, 256, 64), (1025, 300, 1024, 128),
    (5000, 2049, 1024, 128), (100, 90, 50, 0), (301, 77, 40, 39)
])
def test_plan_cores_cover_the_scene_exactly_once(width, height, window,
                                                 overlap):
    plan = plan_windows(width, height, window, overlap)
    owners = np.zeros((height, width), np.uint8)
    for i, win in enumerate(plan):
        assert win.index == i
        assert 0 <= win.x0 and win.x0 + win.width <= width
        assert 0 <= win.y0 and win.y0 + win.height <= height
        assert win.width == min(window, width)
        assert win.height == min(window, height)
        assert win.x0 <= win.core_x0 < win.core_x1 <= win.x0 + win.width
        assert win.y0 <= win.core_y0 < win.core_y1 <= win.y0 + win.height
        owners[win.core_y0:win.core_y1, win.core_x0:win.core_x1] += 1
    assert (owners == 1).all()
    # neighbours share at least `overlap` px; the split is mid-strip
    by_pos = {(w.row, w.col): w for w in plan}
    for (row, col), win in by_pos.items():
        right = by_pos.get((row, col + 1))
        if right is not None:
            shared = win.x0 + win.width - right.x0
            assert shared >= overlap
            assert win.core_x1 == right.core_x0 == right.x0 + shared // 2


def test_plan_strides_and_shifts_the_last_window_to_the_border():
    plan = plan_windows(2000, 1000, window=1024, overlap=128)
    assert [w.x0 for w in plan] == [0, 896, 976]  # 976 + 1024 = 2000
    assert [(w.core_x0, w.core_x1) for w in plan] == [(0, 960), (960, 1448),
                                                      (1448, 2000)]
    assert all((w.y0, w.height, w.core_y0, w.core_y1) == (0, 1000, 0, 1000)
               for w in plan)


def test_plan_small_scene_is_one_whole_window():
    plan = plan_windows(1024, 700, window=1024, overlap=128)
    assert len(plan) == 1
    win = plan[0]
    assert win.box == win.core_box == [0, 0, 1024, 700]


@pytest.mark.parametrize('args,error,match', [
    ((0, 10), ValueError, 'width must be at least 1'),
    ((10, -5), ValueError, 'height must be at least 1'),
    ((10, 10, 0), ValueError, 'window must be at least 1'),
    ((10, 10, 8, -1), ValueError, 'overlap must be at least 0'),
    ((10, 10, 8, 8), ValueError, r'overlap \(8\) must be smaller'),
    ((10.5, 10), TypeError, 'width must be an integer'),
    ((10, 10, True), TypeError, 'window must be an integer'),
])
def test_plan_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        plan_windows(*args)


# -- refer -------------------------------------------------------------------
class EdgeNoisePredictor:
    """Finds the disc but inverts its answer within ``ring`` px of every
    window side inside the scene, as a model sees badly at a cut."""

    def __init__(self, scene, ring):
        self.scene, self.ring = scene, ring

    def read(self, x0, y0, w, h):
        self.box = (x0, y0, w, h)
        return self.scene.read(x0, y0, w, h)

    def predict(self, rgb):
        x0, y0, w, h = self.box
        mask = rgb[..., 0] == SHIP[0]
        ring, noise = self.ring, np.zeros_like(mask)
        noise[:, :ring] = x0 > 0
        noise[:ring] |= y0 > 0
        noise[:, w - ring:] |= x0 + w < self.scene.width
        noise[h - ring:] |= y0 + h < self.scene.height
        return WindowPrediction('<p> the ship </p> [SEG]', ['the ship'],
                                (mask ^ noise)[None])


@pytest.mark.parametrize('ring,exact', [(32, True), (33, False)])
def test_refer_stitches_a_disc_across_borders(ring, exact):
    disc = Disc(SHIP, 350, 300, 200)
    scene = Scene(700, 600, [disc])
    noisy = EdgeNoisePredictor(scene, ring)
    write, canvas, written, dtypes = collect_blocks(700, 600)
    done = []
    result = run_scene(700, 600, noisy.read, noisy.predict, task='refer',
                       window=256, overlap=64, write_mask=write,
                       progress=lambda *a: done.append(a))
    truth = scene.truth(disc)
    assert (written == 1).all() and dtypes == {np.dtype(np.uint8)}
    assert len(result.windows) == 12 and done[-1] == (12, 12)
    # edge errors within half the overlap never reach the stitched mask
    assert np.array_equal(canvas == 1, truth) == exact
    if not exact:
        return
    assert result.mask.area == truth.sum()
    assert result.mask.bbox == [150, 100, 401, 401]
    assert all(piece.mask.any() for piece in result.mask.pieces)
    x0, y0, crop = result.mask.mask_crop()
    assert np.array_equal(crop, truth[y0:y0 + crop.shape[0],
                                      x0:x0 + crop.shape[1]])
    assert result.counts == dict(windows=12, windows_run=12,
                                 windows_skipped_nodata=0,
                                 windows_without_mask=0)
    assert [w.num_masks for w in result.windows] == [1] * 12
    assert result.windows[0].text == '<p> the ship </p> [SEG]'
    assert {'read', 'predict'} <= set(result.windows[0].timings)
    saved_pieces = json.loads(json.dumps(result.to_json()))['mask']['pieces']
    for piece, saved in zip(result.mask.pieces, saved_pieces):
        assert saved['bbox'] == [piece.x0, piece.y0, *piece.mask.shape[::-1]]
        assert np.array_equal(decode_rle(saved['rle']), piece.mask)


def test_refer_window_without_mask_contributes_nothing():
    scene = Scene(512, 200, [Rect(SHIP, 10, 10, 500, 40)])
    seen = []

    def predict(rgb):
        seen.append(rgb)
        if len(seen) == 2:  # the model gives no mask for the middle window
            return WindowPrediction('no ship', [], np.zeros((0, 200, 256),
                                                            bool))
        return WindowPrediction('', [], (rgb[..., 0] == SHIP[0])[None])

    write, canvas, written, _ = collect_blocks(512, 200)
    result = run_scene(512, 200, scene.read, predict, task='refer',
                       window=256, overlap=64, write_mask=write)
    middle = result.windows[1].window
    assert result.counts['windows_without_mask'] == 1
    assert [w.num_masks for w in result.windows] == [1, 0, 1]
    assert not canvas[:, middle.core_x0:middle.core_x1].any()
    assert (written == 1).all()
    assert result.mask.area == 30 * (490 - (middle.core_x1 - middle.core_x0))


# -- gcg ---------------------------------------------------------------------
# 512 px, window 256, overlap 64: windows start at 0, 192, 256 and the
# cores split at 224 and 352 on both axes
def test_gcg_objects_cut_by_borders_come_out_once():
    across_x = Rect(BUILDING, 200, 40, 250, 80)  # vertical split at 224
    across_y = Rect(BUILDING, 60, 200, 100, 250)  # horizontal split at 224
    corner = Rect(BUILDING, 210, 340, 240, 370)  # cores meet at (224, 352)
    scene = Scene(512, 512, [across_x, across_y, corner])
    result = run_gcg(scene)
    assert len(result.windows) == 9
    assert len(result.objects) == 3
    windows = {}
    for obj, shape in zip(result.objects, (across_x, across_y, corner)):
        assert obj.category == 'building'
        assert np.array_equal(object_mask(obj, 512, 512), scene.truth(shape))
        assert obj.area == (shape.x1 - shape.x0) * (shape.y1 - shape.y0)
        assert obj.bbox == [shape.x0, shape.y0, shape.x1 - shape.x0,
                            shape.y1 - shape.y0]
        windows[shape] = obj.windows
    assert windows[across_x] == [0, 1]
    assert windows[across_y] == [0, 3]
    assert windows[corner] == [3, 4, 6, 7]
    assert len(result.objects[2].pieces) == 4
    counts = result.counts
    assert counts['detections'] == counts['objects'] + counts['merged'] + \
        counts['dropped_empty']
    assert counts['objects'] == 3 and counts['dropped_empty'] == 0


def test_gcg_same_category_apart_stays_two_and_duplicates_merge():
    # both in the strip shared by the windows at x 192 and 256, on either
    # side of the split at 352 with a gap across it: each window sees both
    left = Rect(BUILDING, 330, 100, 350, 130)
    right = Rect(BUILDING, 354, 100, 380, 130)
    scene = Scene(512, 512, [left, right])
    result = run_gcg(scene)
    assert [obj.phrase for obj in result.objects] == ['building-1',
                                                      'building-2']
    for obj, shape in zip(result.objects, (left, right)):
        assert np.array_equal(object_mask(obj, 512, 512), scene.truth(shape))
        assert obj.windows == [1, 2]
        assert len(obj.pieces) == 1
    # each window saw both; the copy outside its owner's core merged
    assert result.counts['detections'] == 4
    assert result.counts['merged'] == 2
    assert result.counts['dropped_empty'] == 0


def test_gcg_group_seen_whole_by_both_windows_merges_by_overlap():
    # the same two blocks as one group mask ('buildings'): its pieces on
    # either side of the split do not touch; their strip IoU joins them
    left = Rect(BUILDING, 330, 100, 350, 130)
    right = Rect(BUILDING, 354, 100, 380, 130)
    scene = Scene(512, 512, [left, right])
    result = run_gcg(scene, group=True)
    assert len(result.objects) == 1
    obj = result.objects[0]
    assert (obj.phrase, obj.category) == ('buildings', 'building')
    assert np.array_equal(object_mask(obj, 512, 512),
                          scene.truth(left, right))
    assert len(obj.pieces) == 2
    assert obj.windows == [1, 2]


@pytest.mark.parametrize('merge_iou,objects', [(0.5, 1), (0.6, 2)])
def test_gcg_strip_iou_threshold(merge_iou, objects):
    # the windows starting at x 256 miss the left block: in the strip the
    # two group masks have IoU 780 / 1380 = 0.57
    left = Rect(BUILDING, 330, 100, 350, 130)
    right = Rect(BUILDING, 354, 100, 380, 130)
    scene = Scene(512, 512, [left, right])
    predict = shape_predictor(group=True)

    def miss_left(rgb):
        pred = predict(rgb)
        if scene.reads[-1][0] == 256:
            pred.masks[:, :, :350 - 256] = False
        return pred

    result = run_scene(512, 512, scene.read, miss_left, window=256,
                       overlap=64, merge_iou=merge_iou)
    assert len(result.objects) == objects
    assert sum(o.area for o in result.objects) == 600 + 780


def core_only_predictor(scene, window=256, overlap=64):
    """Exact inside each window's core, blind in its margins: shared
    strips never overlap, so only touching pieces can join objects."""
    plan = {(w.x0, w.y0): w for w in plan_windows(scene.width, scene.height,
                                               window, overlap)}
    predict = shape_predictor()

    def blind_margins(rgb):
        win = plan[scene.reads[-1][:2]]
        seen = np.zeros(rgb.shape, np.uint8)
        seen[win.core_slices] = rgb[win.core_slices]
        return predict(seen)

    return blind_margins


def test_gcg_pieces_touching_across_the_split_merge_within_a_category():
    across_x = Rect(BUILDING, 100, 40, 250, 80)  # vertical split at 224
    corner = Rect(BUILDING, 210, 340, 240, 370)  # cores meet at (224, 352)
    red = Rect(BUILDING, 100, 400, 224, 430)  # ends at the split at 224
    blue = Rect(SHIP, 224, 400, 300, 430)  # starts there
    shapes = [across_x, corner, red, blue]
    scene = Scene(512, 512, shapes)
    result = run_scene(512, 512, scene.read, core_only_predictor(scene),
                       window=256, overlap=64)
    assert [obj.category for obj in result.objects] == ['building'] * 3 + [
        'ship']
    for obj, shape in zip(result.objects, shapes):
        assert np.array_equal(object_mask(obj, 512, 512), scene.truth(shape))
    assert len(result.objects[1].pieces) == 4
    # same category touching across the split line: one object
    touching = Scene(512, 512, [red, Rect(BUILDING, 224, 420, 300, 450)])
    merged = run_scene(512, 512, touching.read,
                       core_only_predictor(touching), window=256, overlap=64)
    assert len(merged.objects) == 1
    assert merged.objects[0].area == 124 * 30 + 76 * 30


def test_gcg_writes_an_instance_label_raster_block_by_block():
    shapes = [Rect(BUILDING, 200, 40, 250, 80), Rect(SHIP, 210, 340, 240,
                                                    370)]
    scene = Scene(512, 512, shapes)
    write, canvas, written, dtypes = collect_blocks(512, 512)
    result = run_gcg(scene, write_mask=write)
    assert (written == 1).all() and dtypes == {np.dtype(np.uint16)}
    expected = np.zeros((512, 512), int)
    for label, shape in enumerate(shapes, 1):
        expected[scene.truth(shape)] = label
    assert np.array_equal(canvas, expected)
    out = json.loads(json.dumps(result.to_json()))
    assert [o['phrase'] for o in out['objects']] == ['building-1', 'ship-1']
    assert out['objects'][1]['rle']['size'] == [30, 30]
    assert out['counts'] == result.counts


def test_gcg_drops_objects_seen_only_in_margins_and_says_so():
    scene = Scene(512, 512, [Rect(BUILDING, 200, 40, 250, 80)])
    predict = shape_predictor()

    def with_ghost(rgb):
        pred = predict(rgb)
        ghost = np.zeros((1, ) + rgb.shape[:2], bool)
        ghost[0, 100:110, -5:] = True  # a cut-off "object" at the edge
        return WindowPrediction(pred.text, pred.phrases + ['ship-9'],
                                np.concatenate([pred.masks, ghost]))

    result = run_scene(512, 512, scene.read, with_ghost, window=256,
                       overlap=64)
    assert [obj.category for obj in result.objects] == ['building', 'ship',
                                                        'ship', 'ship']
    # the ghosts of the 6 windows with a right neighbour are in margins
    assert result.counts['dropped_empty'] == 6
    assert result.counts['detections'] == 2 + 9


def test_gcg_unpaired_phrases_and_masks_are_counted():
    scene = Scene(300, 300, [Rect(TREE, 10, 10, 30, 30)])

    def predict(rgb):
        mask = (rgb[..., 0] == TREE[0])[None]
        return WindowPrediction('', ['tree-1', 'tree-2', 'tree-3'], mask)

    result = run_scene(300, 300, scene.read, predict, window=256,
                       overlap=64)
    assert len(result.objects) == 1
    assert result.counts['unpaired_phrases'] == 2 * 4
    assert result.counts['unpaired_masks'] == 0


# -- nodata and bad inputs ---------------------------------------------------
def test_nodata_windows_are_skipped_and_nodata_is_never_masked():
    shape = Rect(TREE, 150, 50, 300, 90)  # half of it under nodata
    scene = Scene(512, 512, [shape], nodata=[(0, 0, 256, 512)])
    calls = []
    result = run_scene(512, 512, scene.read, shape_predictor(calls=calls),
                       window=256, overlap=64)
    assert len(calls) == 6
    assert [w.status for w in result.windows] == ['nodata', 'run', 'run'] * 3
    assert result.counts['windows_skipped_nodata'] == 3
    assert result.counts['windows_run'] == 6
    assert len(result.objects) == 1
    obj_mask = object_mask(result.objects[0], 512, 512)
    assert np.array_equal(obj_mask, scene.truth(shape))
    assert obj_mask.sum() == 44 * 40


def test_all_nodata_scene_is_an_error():
    scene = Scene(600, 300, [], nodata=[(0, 0, 600, 300)])
    with pytest.raises(ValueError, match='600 x 300 scene is all nodata'):
        run_scene(600, 300, scene.read, shape_predictor(), task='refer',
                  window=256, overlap=64)


def test_bad_callables_and_options_get_clear_errors():
    scene = Scene(300, 300, [])
    predict = shape_predictor()
    with pytest.raises(ValueError, match='task must be one of'):
        run_scene(300, 300, scene.read, predict, task='ask')
    with pytest.raises(ValueError, match='merge_iou'):
        run_scene(300, 300, scene.read, predict, merge_iou=0)

    def float_rgb(x0, y0, w, h):
        return np.zeros((h, w, 3)), np.ones((h, w), bool)

    with pytest.raises(ValueError, match=r'read_window\(0, 0, 256, 256\) '
                       r'rgb must be uint8 of shape \[256, 256, 3\]'):
        run_scene(300, 300, float_rgb, predict, window=256, overlap=64)

    def logits(rgb):
        return WindowPrediction('', ['x'], np.zeros((1, ) + rgb.shape[:2]))

    with pytest.raises(ValueError, match=r'window 0 .* masks must be bool '
                       r"of shape \['n', 300, 300\]"):
        run_scene(300, 300, scene.read, logits, window=512)
    with pytest.raises(TypeError, match='must return a WindowPrediction'):
        run_scene(300, 300, scene.read, lambda rgb: None)


def test_phrase_category():
    assert phrase_category('Tennis Court-1') == 'tennis court'
    assert phrase_category(' the  small vehicles - 12 ') == 'small vehicle'
    assert phrase_category('grass') == 'grass'
    assert phrase_category('a ship') == phrase_category('ships') == 'ship'


# -- a huge virtual scene ----------------------------------------------------
def test_huge_virtual_scene_is_read_lazily_and_stitched():
    """20000 px square, never drawn whole: a road across every window
    column and 64 buildings placed on window borders and corners."""
    size, window, overlap = 20000, 1024, 128
    plan = plan_windows(size, size, window, overlap)
    splits = sorted({w.core_x1 for w in plan})[:-1]
    road = Rect(ROAD, 0, 5000, size, 5012)
    buildings = [
        Rect(BUILDING, x - 15, y - 10, x + 15, y + 10)
        for x in splits[::2][:8] for y in splits[1::2][:8]
    ]
    scene = Scene(size, size, [road] + buildings)
    blocks, labels = [], set()

    def write_mask(x0, y0, block):
        blocks.append((block.shape, np.count_nonzero(block)))
        labels.update(np.unique(block[block > 0]).tolist())

    result = run_scene(size, size, scene.read, shape_predictor(),
                       window=window, overlap=overlap, write_mask=write_mask)
    assert len(plan) == 23 * 23 == len(result.windows)
    assert max(w * h for _, _, w, h in scene.reads) == window * window
    assert len(blocks) == len(plan)
    assert sum(h * w for (h, w), _ in blocks) == size * size
    assert sum(count for _, count in blocks) == size * 12 + 64 * 600
    assert labels == set(range(1, 66))
    roads = [o for o in result.objects if o.category == 'road']
    assert len(roads) == 1 and roads[0].area == size * 12
    assert len(roads[0].pieces) == 23
    houses = [o for o in result.objects if o.category == 'building']
    assert len(houses) == 64
    assert all(o.area == 600 and len(o.pieces) == 4 for o in houses)
    assert sorted(o.bbox for o in houses) == sorted(
        [b.x0, b.y0, 30, 20] for b in buildings)
