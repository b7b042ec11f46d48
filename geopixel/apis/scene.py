"""Scenes larger than the HD grid: overlapping windows, stitched.

The model sees a scene of any size one window at a time (at most
``window`` px a side, ``overlap`` px shared with each neighbour) and the
window predictions are stitched by the overlap-tile rule: every scene pixel
belongs to exactly one window's *core* (the window minus half the shared
strip on each side that has a neighbour), and a window contributes only its
core. A prediction near a window edge so had context from the margin, and
an object cut by a window border keeps one owner per pixel.

Nothing of scene size is ever built. Windows are read one at a time through
``read_window``, mask blocks leave through ``write_mask`` as each window is
done, and what is kept (connected pieces and objects) is cropped to its
bounding box. The model and the image source are callables, so this module
knows neither (see ``docs/en/user_guides/huge_scenes.md``).
"""
import numbers
import time
from dataclasses import dataclass, field
from typing import (Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import numpy as np

from geopixel.structures import phrase_category
from geopixel.utils import encode_rle

TASKS = ('gcg', 'refer')
Box = Tuple[int, int, int, int]  # x0, y0, x1, y1 in scene pixels, ends out


@dataclass(frozen=True)
class Window:
    """One window of a scene plan, in scene pixels.

    ``x0, y0, width, height`` is what is read and shown to the model; the
    core ``[core_x0, core_x1) x [core_y0, core_y1)`` is what it contributes.
    ``row, col`` place it in the plan's grid (row-major ``index``).
    """
    index: int
    row: int
    col: int
    x0: int
    y0: int
    width: int
    height: int
    core_x0: int
    core_y0: int
    core_x1: int
    core_y1: int

    @property
    def box(self) -> List[int]:
        """The window as COCO ``[x, y, w, h]``."""
        return [self.x0, self.y0, self.width, self.height]

    @property
    def core_box(self) -> List[int]:
        """The core as COCO ``[x, y, w, h]``."""
        return [self.core_x0, self.core_y0, self.core_x1 - self.core_x0,
                self.core_y1 - self.core_y0]

    @property
    def core_slices(self) -> Tuple[slice, slice]:
        """The core in window pixels, to index a window array."""
        return (slice(self.core_y0 - self.y0, self.core_y1 - self.y0),
                slice(self.core_x0 - self.x0, self.core_x1 - self.x0))


@dataclass
class WindowPrediction:
    """What ``predict_window`` returns for one window.

    ``masks``: bool ``[n, h, w]`` in window pixels; for ``gcg`` mask k
    belongs to ``phrases[k]``, for ``refer`` the first mask is the answer.
    ``timings``: optional seconds by stage, kept in the window's record.
    """
    text: str
    phrases: List[str]
    masks: np.ndarray
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass
class MaskPiece:
    """Part of a mask inside one window's core, cropped to its bounding
    box: ``mask`` (bool ``[h, w]``) starts at scene pixel ``(x0, y0)``."""
    window: int
    x0: int
    y0: int
    mask: np.ndarray

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class SceneMask:
    """The stitched ``refer`` mask: its area (pixels), COCO ``bbox``
    (None when empty) and its 8-connected pieces, one list per core, whose
    union is the mask (polygonize each and union them)."""
    area: int
    bbox: Optional[List[int]]
    pieces: List[MaskPiece]

    def mask_crop(self) -> Tuple[int, int, np.ndarray]:
        """``(x0, y0, mask)`` of the bounding box; as large as the box, so
        for a mask spread over a huge scene write blocks instead."""
        return _compose(self.pieces)


@dataclass
class SceneObject:
    """A ``gcg`` object after stitching: the first phrase seen, its
    category (:func:`phrase_category`), its pieces (one per core it
    covers, disjoint), COCO ``bbox``, ``area`` in pixels and the indices of
    the windows that detected it (including those whose core it missed)."""
    phrase: str
    category: str
    pieces: List[MaskPiece]
    bbox: List[int]
    area: int
    windows: List[int]

    def mask_crop(self) -> Tuple[int, int, np.ndarray]:
        """``(x0, y0, mask)``: the object's mask over its bounding box."""
        return _compose(self.pieces)


@dataclass
class WindowRecord:
    """One window of a run: ``status`` is ``'run'`` or ``'nodata'`` (all
    pixels nodata, the model not called); the prediction's text, phrases
    and number of masks; ``timings`` holds ``read`` and ``predict``
    seconds plus the predictor's own."""
    window: Window
    status: str
    text: str = ''
    phrases: List[str] = field(default_factory=list)
    num_masks: int = 0
    timings: Dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return dict(index=self.window.index, row=self.window.row,
                    col=self.window.col, box=self.window.box,
                    core=self.window.core_box, status=self.status,
                    text=self.text, phrases=list(self.phrases),
                    num_masks=self.num_masks, timings=dict(self.timings))


@dataclass
class SceneResult:
    """A stitched scene. ``objects`` for ``gcg``, ``mask`` for ``refer``;
    ``counts`` says what happened to every window and detection (see
    ``docs/en/user_guides/huge_scenes.md``)."""
    task: str
    width: int
    height: int
    window_size: int
    overlap: int
    windows: List[WindowRecord]
    counts: Dict[str, int]
    objects: List[SceneObject] = field(default_factory=list)
    mask: Optional[SceneMask] = None

    def write_labels(self, write_block: Callable) -> None:
        """Call ``write_block(x0, y0, block)`` once per window core, in
        window order (the cores tile the scene). ``refer``: uint8 0/1
        blocks of the mask. ``gcg``: object ``i`` is labelled ``i + 1``
        (0 is background; where objects overlap the higher index wins),
        uint16 blocks, uint32 past 65535 objects."""
        if self.task == 'refer':
            labelled = [(1, piece) for piece in self.mask.pieces]
            dtype = np.uint8
        else:
            labelled = [(i + 1, piece)
                        for i, obj in enumerate(self.objects)
                        for piece in obj.pieces]
            dtype = (np.uint16 if len(self.objects) <= np.iinfo(
                np.uint16).max else np.uint32)
        by_window: Dict[int, list] = {}
        for label, piece in labelled:
            by_window.setdefault(piece.window, []).append((label, piece))
        for record in self.windows:
            win = record.window
            block = np.zeros((win.core_y1 - win.core_y0,
                              win.core_x1 - win.core_x0), dtype)
            for label, piece in by_window.get(win.index, ()):
                rows = slice(piece.y0 - win.core_y0, piece.y1 - win.core_y0)
                cols = slice(piece.x0 - win.core_x0, piece.x1 - win.core_x0)
                block[rows, cols][piece.mask] = label
            write_block(win.core_x0, win.core_y0, block)

    def to_json(self) -> dict:
        """JSON-ready dict; masks are COCO RLEs of the bounding-box crop
        (``size`` ``[h, w]`` of the crop, placed at ``bbox`` x, y)."""
        out = dict(task=self.task, width=self.width, height=self.height,
                   window=self.window_size, overlap=self.overlap,
                   counts=dict(self.counts),
                   windows=[r.to_json() for r in self.windows])
        if self.task == 'refer':
            out['mask'] = dict(
                area=self.mask.area, bbox=self.mask.bbox,
                pieces=[dict(window=p.window, bbox=_coco(_piece_box(p)),
                             rle=encode_rle(p.mask))
                        for p in self.mask.pieces])
        else:
            out['objects'] = [
                dict(phrase=o.phrase, category=o.category, bbox=o.bbox,
                     area=o.area, windows=o.windows,
                     rle=encode_rle(o.mask_crop()[2]))
                for o in self.objects
            ]
        return out


# -- the plan ----------------------------------------------------------------
def plan_windows(width: int,
                 height: int,
                 window: int = 1024,
                 overlap: int = 128) -> List[Window]:
    """Windows covering a ``width x height`` scene, row-major.

    Along each axis windows start every ``window - overlap`` px; the last
    one is shifted back to end at the border (never padded, never outside),
    so it may share more than ``overlap`` with its neighbour. A side not
    longer than ``window`` is one window. Two neighbours split their shared
    strip in its middle: the left/upper one owns ``[.., split)``.
    """
    for name, value, low in (('width', width, 1), ('height', height, 1),
                             ('window', window, 1), ('overlap', overlap, 0)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f'{name} must be an integer, got '
                            f'{type(value).__name__} {value!r}')
        if value < low:
            raise ValueError(f'{name} must be at least {low}, got {value}')
    if overlap >= window:
        raise ValueError(f'overlap ({overlap}) must be smaller than the '
                         f'window ({window}): windows would not advance')
    cols = _axis_plan(int(width), int(window), int(overlap))
    rows = _axis_plan(int(height), int(window), int(overlap))
    return [
        Window(index=r * len(cols) + c, row=r, col=c, x0=x0, y0=y0,
               width=w, height=h, core_x0=cx0, core_y0=cy0, core_x1=cx1,
               core_y1=cy1)
        for r, (y0, h, cy0, cy1) in enumerate(rows)
        for c, (x0, w, cx0, cx1) in enumerate(cols)
    ]


def _axis_plan(size: int, window: int,
               overlap: int) -> List[Tuple[int, int, int, int]]:
    """(start, length, core start, core end) of the windows on one axis."""
    if size <= window:
        return [(0, size, 0, size)]
    starts = list(range(0, size - window, window - overlap))
    starts.append(size - window)
    splits = [(nxt + start + window) // 2
              for start, nxt in zip(starts, starts[1:])]
    return [(start, window, lo, hi)
            for start, lo, hi in zip(starts, [0] + splits, splits + [size])]


# -- phrases -----------------------------------------------------------------
# -- the run -----------------------------------------------------------------
def run_scene(width: int,
              height: int,
              read_window: Callable[[int, int, int, int],
                                    Tuple[np.ndarray, np.ndarray]],
              predict_window: Callable[[np.ndarray], WindowPrediction],
              task: str = 'gcg',
              window: int = 1024,
              overlap: int = 128,
              write_mask: Optional[Callable] = None,
              progress: Optional[Callable[[int, int], None]] = None,
              merge_iou: float = 0.3) -> SceneResult:
    """Predict a scene window by window and stitch the windows.

    ``read_window(x0, y0, w, h)`` returns ``(rgb uint8 [h, w, 3], valid
    bool [h, w])``; a window with no valid pixel is skipped without calling
    ``predict_window(rgb)``, and nodata pixels never belong to a mask.
    ``write_mask(x0, y0, block)`` receives each core's block once, in
    window order: ``refer`` uint8 0/1 blocks as each window is done,
    ``gcg`` label blocks (:meth:`SceneResult.write_labels`) at the end,
    when merges are final. ``progress(done, total)`` follows the windows.
    ``merge_iou``: the ``gcg`` duplicate threshold (merge rule (a) of
    :class:`_ObjectStitcher`). A scene that is all nodata is an error.
    """
    if task not in TASKS:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}')
    if not (isinstance(merge_iou, numbers.Real) and 0 < merge_iou <= 1):
        raise ValueError(f'merge_iou must be in (0, 1], got {merge_iou!r}')
    plan = plan_windows(width, height, window, overlap)
    stitcher = (_MaskStitcher(write_mask)
                if task == 'refer' else _ObjectStitcher(plan, merge_iou))
    records = []
    for done, win in enumerate(plan, 1):
        start = time.perf_counter()
        rgb, valid = _read(read_window, win)
        read_s = time.perf_counter() - start
        if valid.any():
            start = time.perf_counter()
            pred = _predict(predict_window, rgb, win)
            timings = dict(pred.timings, read=read_s,
                           predict=time.perf_counter() - start)
            records.append(
                WindowRecord(win, 'run', pred.text, list(pred.phrases),
                             len(pred.masks), timings))
            stitcher.add(win, pred.phrases, pred.masks & valid[None])
        else:
            records.append(WindowRecord(win, 'nodata', timings=dict(
                read=read_s)))
            stitcher.skip(win)
        if progress is not None:
            progress(done, len(plan))
    run = sum(r.status == 'run' for r in records)
    if not run:
        raise ValueError(f'the {width} x {height} scene is all nodata '
                         f'(none of its {len(plan)} windows has a valid '
                         'pixel): nothing to predict')
    counts = dict(windows=len(plan), windows_run=run,
                  windows_skipped_nodata=len(plan) - run)
    result = SceneResult(task, width, height, window, overlap, records,
                         counts)
    stitcher.finish(result)
    if task == 'gcg' and write_mask is not None:
        result.write_labels(write_mask)
    return result


def _read(read_window: Callable, win: Window):
    """``read_window`` for ``win``, its output checked."""
    call = f'read_window({win.x0}, {win.y0}, {win.width}, {win.height})'
    out = read_window(win.x0, win.y0, win.width, win.height)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise ValueError(f'{call} must return (rgb, valid), got '
                         f'{type(out).__name__}')
    rgb, valid = out
    _check_array(rgb, f'{call} rgb', np.uint8, (win.height, win.width, 3))
    _check_array(valid, f'{call} valid', np.bool_, (win.height, win.width))
    return rgb, valid


def _predict(predict_window: Callable, rgb: np.ndarray,
             win: Window) -> WindowPrediction:
    """``predict_window`` on ``rgb``, its output checked."""
    call = f'predict_window on window {win.index} (box {win.box})'
    pred = predict_window(rgb)
    if not isinstance(pred, WindowPrediction):
        raise TypeError(f'{call} must return a WindowPrediction, got '
                        f'{type(pred).__name__}')
    if not isinstance(pred.text, str) or not isinstance(
            pred.phrases, (list, tuple)) or not all(
                isinstance(p, str) for p in pred.phrases):
        raise TypeError(f'{call}: text must be a string and phrases a list '
                        'of strings')
    _check_array(pred.masks, f'{call} masks', np.bool_,
                 (None, win.height, win.width))
    return pred


def _check_array(value, what: str, dtype, shape: tuple) -> None:
    """``value`` must be an array of ``dtype`` and ``shape`` (None: any
    length, shown as n)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f'{what} must be a numpy array, got '
                        f'{type(value).__name__}')
    if value.dtype != dtype or len(value.shape) != len(shape) or any(
            want is not None and got != want
            for got, want in zip(value.shape, shape)):
        expected = ['n' if s is None else s for s in shape]
        raise ValueError(f'{what} must be {np.dtype(dtype).name} of shape '
                         f'{expected}, got {value.dtype.name} of shape '
                         f'{list(value.shape)}')


# -- refer: one mask ---------------------------------------------------------
class _MaskStitcher:
    """One mask for the scene: the first mask of each window, cut to the
    core, written out at once and kept as connected pieces."""

    def __init__(self, write_mask: Optional[Callable]):
        self.write_mask = write_mask
        self.pieces: List[MaskPiece] = []
        self.without_mask = 0

    def add(self, win: Window, phrases: Sequence[str],
            masks: np.ndarray) -> None:
        if len(masks):
            self._keep(win, masks[0][win.core_slices])
        else:
            self.without_mask += 1
            self.skip(win)

    def skip(self, win: Window) -> None:
        self._keep(win, np.zeros((win.core_y1 - win.core_y0,
                                  win.core_x1 - win.core_x0), bool))

    def _keep(self, win: Window, core: np.ndarray) -> None:
        if self.write_mask is not None:
            self.write_mask(win.core_x0, win.core_y0, core.astype(np.uint8))
        self.pieces.extend(_components(core, win))

    def finish(self, result: SceneResult) -> None:
        area = sum(p.area for p in self.pieces)
        result.mask = SceneMask(area, _coco(_union_box(self.pieces)),
                                self.pieces)
        result.counts['windows_without_mask'] = self.without_mask


def _components(core: np.ndarray, win: Window) -> Iterator[MaskPiece]:
    """The 8-connected components of a core block, as pieces."""
    import cv2
    if not core.any():
        return
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        core.astype(np.uint8), connectivity=8)
    for label in range(1, count):
        x, y, w, h = (int(v) for v in stats[label, :4])
        yield MaskPiece(win.index, win.core_x0 + x, win.core_y0 + y,
                        labels[y:y + h, x:x + w] == label)


# -- gcg: objects ------------------------------------------------------------
@dataclass
class _Detection:
    window: int
    phrase: str
    category: str
    piece: Optional[MaskPiece]  # None: nothing in the core


class _ObjectStitcher:
    """Objects of all windows, merged across window borders.

    Two detections from different windows are one object when they have
    the same :func:`phrase_category` and (a) their window masks overlap in
    the two windows' shared region with IoU >= ``merge_iou`` (IoU over that
    region only), or (b) their core pieces touch across the split line
    between the two cores (4-neighbours). Merges are transitive
    (union-find). Detections of one window are never compared with each
    other. A window's masks over its shared regions with the windows still
    to come are kept, cropped, until those windows are done.
    """

    def __init__(self, plan: Sequence[Window], merge_iou: float):
        self.plan = plan
        self.cols = plan[-1].col + 1
        self.rows = plan[-1].row + 1
        self.merge_iou = merge_iou
        self.detections: List[_Detection] = []
        self.parent: List[int] = []
        self.by_window: Dict[int, List[int]] = {}
        # (earlier window, later window) -> [(detection, MaskPiece)]
        self.strips: Dict[Tuple[int, int], list] = {}
        self.unpaired_phrases = 0
        self.unpaired_masks = 0

    def add(self, win: Window, phrases: Sequence[str],
            masks: np.ndarray) -> None:
        pairs = min(len(phrases), len(masks))
        self.unpaired_phrases += len(phrases) - pairs
        self.unpaired_masks += len(masks) - pairs
        masks = masks[:pairs]
        ids = []
        for phrase, mask in zip(phrases, masks):
            ids.append(len(self.detections))
            self.parent.append(ids[-1])
            self.detections.append(_Detection(
                win.index, phrase, phrase_category(phrase),
                _crop(mask[win.core_slices], win.core_x0, win.core_y0,
                      win.index)))
        self.by_window[win.index] = ids
        for earlier in self._neighbours(win, later=False):
            for det, strip in self.strips.pop((earlier.index, win.index), ()):
                self._merge_overlapping(det, strip, win, ids, masks)
        self._merge_touching(win, ids)
        for later in self._neighbours(win, later=True):
            box = _intersect(win, later)
            if box is None:
                continue
            rows = slice(box[1] - win.y0, box[3] - win.y0)
            cols = slice(box[0] - win.x0, box[2] - win.x0)
            kept = [(det, _crop(mask[rows, cols], box[0], box[1], win.index))
                    for det, mask in zip(ids, masks)]
            self.strips[win.index, later.index] = [
                (det, strip) for det, strip in kept if strip is not None]

    def skip(self, win: Window) -> None:
        self.add(win, [], np.zeros((0, win.height, win.width), bool))

    def _neighbours(self, win: Window, later: bool) -> Iterator[Window]:
        """The (up to 4) neighbours before ``win`` in window order, or
        after it."""
        step = 1 if later else -1
        for dr, dc in ((0, step), (step, -1), (step, 0), (step, 1)):
            row, col = win.row + dr, win.col + dc
            if 0 <= row < self.rows and 0 <= col < self.cols:
                yield self.plan[row * self.cols + col]

    def _merge_overlapping(self, det: int, strip: MaskPiece, win: Window,
                           ids: Sequence[int], masks: np.ndarray) -> None:
        """Rule (a): ``strip`` is ``det``'s mask over the region shared by
        its window and ``win``, cropped to its box."""
        region = _intersect(self.plan[strip.window], win)
        rows = slice(region[1] - win.y0, region[3] - win.y0)
        cols = slice(region[0] - win.x0, region[2] - win.x0)
        near = (slice(strip.y0 - win.y0, strip.y1 - win.y0),
                slice(strip.x0 - win.x0, strip.x1 - win.x0))
        category = self.detections[det].category
        for other, mask in zip(ids, masks):
            if self.detections[other].category != category:
                continue
            inter = int((mask[near] & strip.mask).sum())
            union = strip.area + int(mask[rows, cols].sum()) - inter
            if inter and inter >= self.merge_iou * union:
                self._union(det, other)

    def _merge_touching(self, win: Window, ids: Sequence[int]) -> None:
        """Rule (b): pieces touching across the left and the upper split
        line of ``win``'s core."""
        for axis in (1, 0):  # the left neighbour, then the upper one
            row, col = win.row - (axis == 0), win.col - (axis == 1)
            if row < 0 or col < 0:
                continue
            earlier = self.by_window[self.plan[row * self.cols + col].index]
            for det in earlier:
                for other in ids:
                    if self._touch(det, other, axis):
                        self._union(det, other)

    def _touch(self, first: int, second: int, axis: int) -> bool:
        """Do the pieces of ``first`` (before the split) and ``second``
        (after it) hold 4-neighbour pixels across it? ``axis`` 1: a
        vertical split line, 0: a horizontal one."""
        a, b = self.detections[first], self.detections[second]
        if a.category != b.category or a.piece is None or b.piece is None:
            return False
        a, b = a.piece, b.piece
        if axis == 1:
            if a.x1 != b.x0:
                return False
            lo, hi = max(a.y0, b.y0), min(a.y1, b.y1)
            lines = (a.mask[lo - a.y0:hi - a.y0, -1],
                     b.mask[lo - b.y0:hi - b.y0, 0])
        else:
            if a.y1 != b.y0:
                return False
            lo, hi = max(a.x0, b.x0), min(a.x1, b.x1)
            lines = (a.mask[-1, lo - a.x0:hi - a.x0],
                     b.mask[0, lo - b.x0:hi - b.x0])
        return lo < hi and bool((lines[0] & lines[1]).any())

    def _find(self, det: int) -> int:
        while self.parent[det] != det:
            self.parent[det] = self.parent[self.parent[det]]
            det = self.parent[det]
        return det

    def _union(self, first: int, second: int) -> None:
        """Join two groups under the earlier detection, whose phrase the
        object keeps."""
        roots = sorted((self._find(first), self._find(second)))
        self.parent[roots[1]] = roots[0]

    def finish(self, result: SceneResult) -> None:
        groups: Dict[int, List[int]] = {}
        for det in range(len(self.detections)):
            groups.setdefault(self._find(det), []).append(det)
        objects, empty = [], 0
        for root, members in groups.items():
            dets = [self.detections[d] for d in members]
            per_window: Dict[int, List[MaskPiece]] = {}
            for det in dets:
                if det.piece is not None:
                    per_window.setdefault(det.window, []).append(det.piece)
            if not per_window:
                empty += 1
                continue
            pieces = [_merge_pieces(p) for p in per_window.values()]
            objects.append(SceneObject(
                phrase=self.detections[root].phrase,
                category=self.detections[root].category, pieces=pieces,
                bbox=_coco(_union_box(pieces)),
                area=sum(p.area for p in pieces),
                windows=sorted({d.window for d in dets})))
        result.objects = objects
        result.counts.update(
            detections=len(self.detections),
            merged=len(self.detections) - len(groups),
            dropped_empty=empty, objects=len(objects),
            unpaired_phrases=self.unpaired_phrases,
            unpaired_masks=self.unpaired_masks)


# -- crops -------------------------------------------------------------------
def _crop(mask: np.ndarray, x0: int, y0: int,
          window: int) -> Optional[MaskPiece]:
    """``mask`` (placed at scene ``x0, y0``) cut to its bounding box; None
    when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return MaskPiece(window, x0 + int(cols[0]), y0 + int(rows[0]),
                     mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy())


def _intersect(a: Window, b: Window) -> Optional[Box]:
    """The region two windows share, or None."""
    box = (max(a.x0, b.x0), max(a.y0, b.y0), min(a.x0 + a.width,
                                                 b.x0 + b.width),
           min(a.y0 + a.height, b.y0 + b.height))
    return box if box[0] < box[2] and box[1] < box[3] else None


def _piece_box(piece: MaskPiece) -> Box:
    return piece.x0, piece.y0, piece.x1, piece.y1


def _union_box(pieces: Sequence[MaskPiece]) -> Optional[Box]:
    if not pieces:
        return None
    boxes = np.array([_piece_box(p) for p in pieces])
    return (int(boxes[:, 0].min()), int(boxes[:, 1].min()),
            int(boxes[:, 2].max()), int(boxes[:, 3].max()))


def _coco(box: Optional[Box]) -> Optional[List[int]]:
    if box is None:
        return None
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


def _compose(pieces: Sequence[MaskPiece]) -> Tuple[int, int, np.ndarray]:
    """The union of pieces over their common bounding box."""
    if not pieces:
        raise ValueError('no pieces: the mask is empty')
    x0, y0, x1, y1 = _union_box(pieces)
    out = np.zeros((y1 - y0, x1 - x0), bool)
    for p in pieces:
        out[p.y0 - y0:p.y1 - y0, p.x0 - x0:p.x1 - x0] |= p.mask
    return x0, y0, out


def _merge_pieces(pieces: Sequence[MaskPiece]) -> MaskPiece:
    """Pieces of one core (detections of one window merged into one
    object through other windows) as one piece."""
    if len(pieces) == 1:
        return pieces[0]
    x0, y0, mask = _compose(pieces)
    return MaskPiece(pieces[0].window, x0, y0, mask)
