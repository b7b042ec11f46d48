"""Preprocessing: large instance-annotated images to iSAID-devkit patches.

The iSAID devkit (``preprocess/split.py``) cuts every image into 800 x 800
patches with stride 600; along an axis the last patch is shifted back so
that it ends at the border, so patches overlap by at least 200 px and
repeated windows are written once. A patch is named
``{stem}_{y0}_{y1}_{x0}_{x1}.png`` where ``stem`` is the source file name
without its extension (``P0224``) and the end coordinates are exclusive:
the patch is ``image[y0:y1, x0:x1]`` (``P0224_0_800_0_800.png`` is 800 px
high), the convention the dataset readers' size check already assumes.

Two deliberate differences from the devkit, both documented in
docs/en/user_guides/annotation.md:

* Small sides. As split.py (and the pipeline issue), an image with a side
  <= 800 is kept whole (``small_images='whole'``, the default); where
  split.py keeps the source's name, the copy is named by the scheme above
  (``P0001_0_500_0_3000.png``), so every patch states its offset.
  ``small_images='per_side'`` keeps only that side whole and cuts the other
  one, so a 500 x 3000 strip gives 500 x 800 patches.
* Instances. The devkit re-extracts contours from cut instance-id PNGs
  and drops those of pixel area <= 10. Here the source polygons are
  clipped exactly to the patch rectangle (:func:`clip_polygon`; a polygon
  may come out in several parts) and an instance is dropped when its
  clipped area (exact polygon area, summed over parts) is <= ``min_area``
  (default 10, as the devkit). The dropped pieces are counted, never lost
  without a trace.

Polygon coordinates use the COCO convention: pixel ``(i, j)`` covers
``[i, i + 1) x [j, j + 1)``, so a patch is the rectangle
``[x0, x1] x [y0, y1]`` and clipped coordinates lie in ``[0, width]``.
"""
import bisect
import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from geopixel.utils import BadRecordError, read_json
from geopixel.utils.files import atomic_write, is_int, write_png
from geopixel.utils.masks import validate_polygon

PATCH_SIZE = 800
PATCH_STRIDE = 600
MIN_AREA = 10.0
SMALL_IMAGE_RULES = ('per_side', 'whole')
# Decoding limit for source images: DOTA scenes reach ~20000 x 20000.
SOURCE_MAX_PIXELS = 2**30

Point = Tuple[float, float]


@dataclass(frozen=True)
class PatchWindow:
    """A patch ``image[y0:y1, x0:x1]`` (ends exclusive)."""
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


@dataclass
class PatchInstance:
    """One source instance clipped to a patch, in patch coordinates."""
    ann_id: int
    category_id: int
    polygons: List[np.ndarray]
    area: float
    iscrowd: int = 0

    @property
    def bbox(self) -> List[float]:
        """COCO ``[x, y, w, h]`` of all parts."""
        points = np.concatenate(self.polygons)
        lo, hi = points.min(axis=0), points.max(axis=0)
        return [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]),
                float(hi[1] - lo[1])]

    def segmentation(self, decimals: int = 2) -> List[List[float]]:
        """COCO polygons (flat ``[x1, y1, x2, y2, ...]`` lists)."""
        return [[round(float(v), decimals) for v in part.reshape(-1)]
                for part in self.polygons]


@dataclass
class Patch:
    """A cut patch: its name, window, pixels and instances.

    ``dropped`` lists ``(ann_id, clipped_area)`` of the instances that
    reach into the patch but whose clipped area is <= ``min_area``.
    """
    name: str
    window: PatchWindow
    image: np.ndarray
    instances: List[PatchInstance] = field(default_factory=list)
    dropped: List[Tuple[int, float]] = field(default_factory=list)


def patch_starts(length: int,
                 patch_size: int = PATCH_SIZE,
                 stride: int = PATCH_STRIDE) -> List[int]:
    """Patch starts along one axis (the devkit rule).

    Starts are ``0, stride, 2 * stride, ...`` below ``length``, each
    shifted back to ``length - patch_size`` where it would run past the
    border, duplicates removed. An axis no longer than ``patch_size`` has
    the single start 0 (the patch is then the whole axis).
    """
    for name, value in (('length', length), ('patch_size', patch_size),
                        ('stride', stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got '
                             f'{value!r}')
    if length <= patch_size:
        return [0]
    return sorted({min(s, length - patch_size)
                   for s in range(0, length, stride)})


def patch_windows(height: int,
                  width: int,
                  patch_size: int = PATCH_SIZE,
                  stride: int = PATCH_STRIDE,
                  small_images: str = 'whole') -> List[PatchWindow]:
    """The windows of an image, row by row (top to bottom, left to right).

    ``small_images``: ``'per_side'`` keeps a side <= ``patch_size`` whole
    and cuts the other side as usual; ``'whole'`` (the devkit's split.py)
    keeps the whole image as one patch when either side is <= patch_size.
    """
    if small_images not in SMALL_IMAGE_RULES:
        raise ValueError(f'small_images must be one of {SMALL_IMAGE_RULES}, '
                         f'got {small_images!r}')
    ys = patch_starts(height, patch_size, stride)
    xs = patch_starts(width, patch_size, stride)
    if small_images == 'whole' and min(height, width) <= patch_size:
        return [PatchWindow(0, height, 0, width)]
    return [
        PatchWindow(y, min(y + patch_size, height), x,
                    min(x + patch_size, width)) for y in ys for x in xs
    ]


def patch_name(stem: str, window: PatchWindow, suffix: str = '.png') -> str:
    """``{stem}_{y0}_{y1}_{x0}_{x1}{suffix}`` (the devkit's file name)."""
    return (f'{stem}_{window.y0}_{window.y1}_{window.x0}_{window.x1}'
            f'{suffix}')


# --------------------------------------------------------------- clipping


def _signed_area(ring: Sequence[Point]) -> float:
    """Shoelace area; positive when the ring turns counter-clockwise in
    the (x, y) plane (clockwise as drawn with y pointing down)."""
    pts = np.asarray(ring, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def polygon_area(points) -> float:
    """Area of a polygon given as ``[[x, y], ...]`` or a flat list."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3:
        return 0.0
    return abs(_signed_area(pts))


def _dedupe(ring: Sequence[Point]) -> List[Point]:
    """Drop repeated consecutive points (the closing one included)."""
    out = []
    for point in ring:
        if not out or point != out[-1]:
            out.append(point)
    while len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out


def _crossing(inner: Point, inner_depth: float, outer: Point,
              outer_depth: float, axis: int, bound: float,
              direction: Point) -> Tuple[Point, Tuple[float, float]]:
    """Where edge ``inner``-``outer`` meets the clip line, and its sort key.

    The key orders crossings along the line in ``direction``. Its second
    entry breaks ties between crossings at one point (a vertex on the
    line) by where they would lie if the line moved an infinitesimal step
    inwards: a vertex on the line counts as outside (depth 0 is not > 0),
    and this symbolic shift keeps that choice consistent.
    """
    if outer_depth == 0:
        point = outer
    else:
        t = inner_depth / (inner_depth - outer_depth)
        xy = [inner[0] + t * (outer[0] - inner[0]),
              inner[1] + t * (outer[1] - inner[1])]
        xy[axis] = bound  # exactly on the line, whatever the rounding
        point = (xy[0], xy[1])
    along = point[0] * direction[0] + point[1] * direction[1]
    inner_along = inner[0] * direction[0] + inner[1] * direction[1]
    outer_along = outer[0] * direction[0] + outer[1] * direction[1]
    slope = (inner_along - outer_along) / (inner_depth - outer_depth)
    return point, (along, slope)


def _clip_half_plane(ring: List[Point], axis: int, bound: float,
                     keep_below: bool) -> List[List[Point]]:
    """Parts of a counter-clockwise ring on one side of an axis line.

    Keeps ``p[axis] < bound`` (``keep_below``) or ``p[axis] > bound``.
    The ring's boundary is cut into chains that run inside from an entry
    crossing to an exit crossing. Along the clip line, taken in the
    direction that has the kept side on its left, the polygon covers
    intervals from an exit to the next entry, so each chain's exit is
    joined to the first entry after it; following these links closes
    every part (Weiler-Atherton for one straight edge).
    """
    sign = 1.0 if keep_below else -1.0
    normal = [0.0, 0.0]
    normal[axis] = sign
    direction = (-normal[1], normal[0])
    depth = [sign * (bound - p[axis]) for p in ring]
    inside = [d > 0 for d in depth]
    if all(inside):
        return [ring]
    if not any(inside):
        return []
    n = len(ring)
    start = inside.index(False)
    chains = []  # (points, entry key, exit key)
    current, entry_key = None, None
    for k in range(n):
        i = (start + k) % n
        j = (i + 1) % n
        if inside[i] and inside[j]:
            current.append(ring[j])
        elif inside[j]:  # entering
            point, entry_key = _crossing(ring[j], depth[j], ring[i],
                                         depth[i], axis, bound, direction)
            current = [point, ring[j]]
        elif inside[i]:  # leaving
            point, exit_key = _crossing(ring[i], depth[i], ring[j],
                                        depth[j], axis, bound, direction)
            current.append(point)
            chains.append((current, entry_key, exit_key))
            current = None
    by_entry = sorted(range(len(chains)), key=lambda c: chains[c][1])
    entry_keys = [chains[c][1] for c in by_entry]
    following = {}
    for c, (_, _, exit_key) in enumerate(chains):
        # Wrapping round only happens for self-intersecting input.
        pos = bisect.bisect_right(entry_keys, exit_key) % len(by_entry)
        following[c] = by_entry[pos]
    parts, used = [], set()
    for first in range(len(chains)):
        part, c = [], first
        while c not in used:
            used.add(c)
            part.extend(chains[c][0])
            c = following[c]
        if part:
            parts.append(part)
    return parts


def clip_polygon(points, x0: float, y0: float, x1: float,
                 y1: float) -> List[np.ndarray]:
    """Exact intersection of a simple polygon with ``[x0, x1] x [y0, y1]``.

    Returns the parts as float ``[N, 2]`` arrays in the input's
    orientation; a concave polygon crossing the rectangle's border several
    times gives several parts. Parts of zero area (a polygon only touching
    the rectangle) are not returned. Self-intersecting polygons give a
    result but not a guaranteed one.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    ring = _dedupe([(float(x), float(y)) for x, y in pts])
    if len(ring) < 3:
        return []
    area = _signed_area(ring)
    if area == 0:
        return []
    clockwise = area < 0
    if clockwise:
        ring = ring[::-1]
    parts = [ring]
    for axis, bound, keep_below in ((0, x1, True), (0, x0, False),
                                    (1, y1, True), (1, y0, False)):
        parts = [
            piece for part in parts
            for piece in _clip_half_plane(part, axis, bound, keep_below)
        ]
        if not parts:
            return []
    out = []
    for part in parts:
        part = _dedupe(part)
        if len(part) >= 3 and _signed_area(part) > 0:
            out.append(np.asarray(part[::-1] if clockwise else part))
    return out


def clip_polygon_to_window(points, window: PatchWindow) -> List[np.ndarray]:
    """:func:`clip_polygon` to a patch, shifted into patch coordinates."""
    offset = np.array([window.x0, window.y0], dtype=np.float64)
    return [
        part - offset for part in clip_polygon(points, window.x0, window.y0,
                                               window.x1, window.y1)
    ]


# ------------------------------------------------------------- instances


@dataclass
class _SourceInstance:
    ann_id: int
    category_id: int
    polygons: List[np.ndarray]
    iscrowd: int
    lo: np.ndarray  # bbox min (x, y)
    hi: np.ndarray  # bbox max (x, y)


def _parse_instance(ann, file: Optional[str], label: str,
                    height: Optional[int], width: Optional[int],
                    category_ids: Optional[set]) -> _SourceInstance:
    if not isinstance(ann, dict):
        raise BadRecordError(
            f'annotation must be a dict, got {type(ann).__name__}', file,
            label)
    if not is_int(ann.get('id')):
        raise BadRecordError(
            f'annotation "id" must be an integer, got {ann.get("id")!r}',
            file, label)
    category = ann.get('category_id')
    if not is_int(category):
        raise BadRecordError(
            f'category_id must be an integer, got {category!r}', file, label)
    if category_ids is not None and category not in category_ids:
        raise BadRecordError(
            f'category_id {category} is not in the file\'s "categories" '
            f'(ids {sorted(category_ids)})', file, label)
    segmentation = ann.get('segmentation')
    if isinstance(segmentation, dict):
        raise BadRecordError(
            'RLE segmentations cannot be clipped into patches; patching '
            'needs polygons', file, label)
    if not isinstance(segmentation, list) or not segmentation:
        raise BadRecordError(
            'annotation needs a "segmentation" list of polygons, got '
            f'{segmentation!r}', file, label)
    polygons = []
    for k, polygon in enumerate(segmentation):
        where = f'{label} polygon {k}'
        validate_polygon(polygon, file, where, height=height, width=width)
        polygons.append(
            np.asarray(polygon, dtype=np.float64).reshape(-1, 2))
    points = np.concatenate(polygons)
    iscrowd = ann.get('iscrowd', 0)
    return _SourceInstance(int(ann['id']), int(category), polygons,
                           int(iscrowd) if is_int(iscrowd) else 0,
                           points.min(axis=0), points.max(axis=0))


def _clip_instance(inst: _SourceInstance,
                   window: PatchWindow) -> Optional[PatchInstance]:
    """The instance inside ``window``, None when it does not reach in."""
    if (inst.hi[0] <= window.x0 or inst.lo[0] >= window.x1
            or inst.hi[1] <= window.y0 or inst.lo[1] >= window.y1):
        return None
    parts = []
    for polygon in inst.polygons:
        parts.extend(clip_polygon_to_window(polygon, window))
    if not parts:
        return None
    area = sum(polygon_area(part) for part in parts)
    return PatchInstance(inst.ann_id, inst.category_id, parts, area,
                         inst.iscrowd)


def _cut(image: np.ndarray, instances: Sequence[_SourceInstance], stem: str,
         patch_size: int, stride: int, min_area: float,
         small_images: str) -> List[Patch]:
    height, width = image.shape[:2]
    lo = np.array([i.lo for i in instances]).reshape(-1, 2)
    hi = np.array([i.hi for i in instances]).reshape(-1, 2)
    patches = []
    for window in patch_windows(height, width, patch_size, stride,
                                small_images):
        patch = Patch(
            patch_name(stem, window), window,
            image[window.y0:window.y1, window.x0:window.x1])
        reaching = np.flatnonzero((hi[:, 0] > window.x0)
                                  & (lo[:, 0] < window.x1)
                                  & (hi[:, 1] > window.y0)
                                  & (lo[:, 1] < window.y1))
        for k in reaching:
            clipped = _clip_instance(instances[k], window)
            if clipped is None:
                continue
            if clipped.area <= min_area:
                patch.dropped.append((clipped.ann_id, clipped.area))
            else:
                patch.instances.append(clipped)
        patches.append(patch)
    return patches


def split_image(image: np.ndarray,
                annotations: Sequence[dict],
                stem: str,
                patch_size: int = PATCH_SIZE,
                stride: int = PATCH_STRIDE,
                min_area: float = MIN_AREA,
                small_images: str = 'whole',
                category_ids: Optional[Sequence[int]] = None,
                file: Optional[str] = None,
                record: Optional[str] = None) -> List[Patch]:
    """Cut an in-memory image and its COCO annotations into patches.

    Args:
        image: H x W or H x W x C array; patches are views into it.
        annotations: COCO annotation dicts (``id``, ``category_id``,
            ``segmentation`` as polygons) in image coordinates.
        stem: the image's name part of the patch names.
        min_area: an instance whose clipped area is <= this is dropped
            from that patch (listed in ``Patch.dropped``).
        category_ids: when given, other category ids are an error.
        file, record: named in error messages.

    Bad annotations raise :class:`BadRecordError` naming ``file`` and the
    annotation (``record`` is its prefix).
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ValueError('image must be an H x W or H x W x C array')
    if not isinstance(stem, str) or not stem:
        raise ValueError(f'stem must be a non-empty string, got {stem!r}')
    height, width = image.shape[:2]
    known = set(category_ids) if category_ids is not None else None
    prefix = f'{record} ' if record else ''
    instances = []
    for k, ann in enumerate(annotations):
        ann_id = ann.get('id') if isinstance(ann, dict) else None
        label = f'{prefix}annotation #{k} (id {ann_id})'
        instances.append(
            _parse_instance(ann, file, label, height, width, known))
    return _cut(image, instances, stem, patch_size, stride, min_area,
                small_images)


# ------------------------------------------------------------------ files


def _read_coco(ann_file: str) -> dict:
    coco = read_json(ann_file, 'annotation file')
    if not isinstance(coco, dict):
        raise BadRecordError(
            f'expected a COCO JSON object, got a JSON '
            f'{type(coco).__name__}', ann_file)
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco.get(key), list):
            raise BadRecordError(
                f'not a COCO file: "{key}" must be a list, got '
                f'{type(coco.get(key)).__name__}', ann_file)
    return coco


def _check_categories(coco: dict, ann_file: str) -> set:
    ids = set()
    for k, cat in enumerate(coco['categories']):
        label = f'category #{k}'
        if not (isinstance(cat, dict) and is_int(cat.get('id'))
                and isinstance(cat.get('name'), str)):
            raise BadRecordError(
                f'a category needs an integer "id" and a "name", got {cat!r}',
                ann_file, label)
        if cat['id'] in ids:
            raise BadRecordError(f'category id {cat["id"]} appears twice',
                                 ann_file, label)
        ids.add(cat['id'])
    return ids


def _check_images(coco: dict, ann_file: str, image_dir: str) -> Dict:
    """image id -> (entry, label, stem, path); every file must exist."""
    images, stems = {}, {}
    for k, image in enumerate(coco['images']):
        label = f'image #{k}'
        if not isinstance(image, dict):
            raise BadRecordError(
                f'image must be a dict, got {type(image).__name__}',
                ann_file, label)
        label = f'image #{k} (id {image.get("id")})'
        if not is_int(image.get('id')):
            raise BadRecordError(
                f'image "id" must be an integer, got {image.get("id")!r}',
                ann_file, label)
        if image['id'] in images:
            raise BadRecordError(f'image id {image["id"]} appears twice',
                                 ann_file, label)
        name = image.get('file_name')
        if not isinstance(name, str) or not name:
            raise BadRecordError(
                f'image "file_name" must be text, got {name!r}', ann_file,
                label)
        for key in ('height', 'width'):
            value = image.get(key)
            if value is not None and not (is_int(value) and value > 0):
                raise BadRecordError(
                    f'image "{key}" must be a positive integer, got '
                    f'{value!r}', ann_file, label)
        stem = osp.splitext(osp.basename(name))[0]
        if stem in stems:
            raise BadRecordError(
                f'file name stem {stem!r} is also the stem of '
                f'{stems[stem]}; patch names would collide', ann_file,
                label)
        stems[stem] = label
        path = osp.join(image_dir, name)
        if not osp.isfile(path):
            raise BadRecordError(f'image file {path} is missing', ann_file,
                                 label)
        images[image['id']] = (image, label, stem, path)
    return images


def _group_annotations(coco: dict, ann_file: str, images: Dict,
                       category_ids: set) -> Dict[int, list]:
    by_image = {image_id: [] for image_id in images}
    seen = set()
    for k, ann in enumerate(coco['annotations']):
        ann_id = ann.get('id') if isinstance(ann, dict) else None
        label = f'annotation #{k} (id {ann_id})'
        if not isinstance(ann, dict):
            raise BadRecordError(
                f'annotation must be a dict, got {type(ann).__name__}',
                ann_file, label)
        image_id = ann.get('image_id')
        if not (is_int(image_id) and image_id in images):
            raise BadRecordError(
                f'image_id {image_id!r} is not in the file\'s "images"',
                ann_file, label)
        if ann_id in seen:
            raise BadRecordError(f'annotation id {ann_id} appears twice',
                                 ann_file, label)
        image = images[image_id][0]
        inst = _parse_instance(ann, ann_file, label, image.get('height'),
                               image.get('width'), category_ids)
        seen.add(ann_id)
        by_image[image_id].append(inst)
    return by_image


class CocoPatchSource:
    """A checked COCO instance file whose images are cut on demand.

    The whole file is checked, and every image file looked for, when the
    source is made, so a bad record stops a run before any output;
    iterating reads one source image at a time and yields
    ``(image_id, entry, patches)``. ``split=False`` takes the images as
    patches already (an iSAID devkit output, or your own tiles): each
    image is one patch named after its file.
    """

    def __init__(self,
                 ann_file: str,
                 image_dir: str,
                 patch_size: int = PATCH_SIZE,
                 stride: int = PATCH_STRIDE,
                 min_area: float = MIN_AREA,
                 small_images: str = 'whole',
                 max_pixels: Optional[int] = SOURCE_MAX_PIXELS,
                 split: bool = True):
        if not min_area >= 0:
            raise ValueError(f'min_area must be >= 0, got {min_area!r}')
        patch_windows(1, 1, patch_size, stride, small_images)  # checks args
        self.ann_file, self.image_dir = ann_file, image_dir
        self.patch_size, self.stride = patch_size, stride
        self.min_area, self.small_images = min_area, small_images
        self.max_pixels, self.split = max_pixels, split
        self.coco = _read_coco(ann_file)
        category_ids = _check_categories(self.coco, ann_file)
        self.categories = {c['id']: c['name']
                           for c in self.coco['categories']}
        self.images = _check_images(self.coco, ann_file, image_dir)
        self.by_image = _group_annotations(self.coco, ann_file, self.images,
                                           category_ids)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_instances(self) -> int:
        return sum(len(v) for v in self.by_image.values())

    def __iter__(self):
        from geopixel.datasets.transforms.image_io import read_image_rgb
        for image_id, (entry, label, stem, path) in self.images.items():
            pixels = read_image_rgb(path, label, max_pixels=self.max_pixels)
            declared = (entry.get('height'), entry.get('width'))
            if declared != (None, None) and declared != pixels.shape[:2]:
                raise BadRecordError(
                    f'the image entry says {declared[0]}x{declared[1]} '
                    f'(h x w) but {path} is {pixels.shape[0]}x'
                    f'{pixels.shape[1]}', self.ann_file, label)
            if self.split:
                patches = _cut(pixels, self.by_image[image_id], stem,
                               self.patch_size, self.stride, self.min_area,
                               self.small_images)
            else:
                patches = _cut(pixels, self.by_image[image_id], stem,
                               max(pixels.shape[:2]), self.stride,
                               self.min_area, 'whole')
                patches[0].name = stem + '.png'
            yield image_id, entry, patches


def split_coco_file(ann_file: str,
                    image_dir: str,
                    out_dir: str,
                    patch_size: int = PATCH_SIZE,
                    stride: int = PATCH_STRIDE,
                    min_area: float = MIN_AREA,
                    small_images: str = 'whole',
                    json_name: str = 'instances_patches.json',
                    image_subdir: str = 'images',
                    skip_empty: bool = False,
                    max_pixels: Optional[int] = SOURCE_MAX_PIXELS) -> dict:
    """Cut every image of a COCO instance file into patches on disk.

    Writes ``out_dir/{image_subdir}/{stem}_{y0}_{y1}_{x0}_{x1}.png`` (RGB,
    as :func:`read_image_rgb` decodes the source) and one COCO JSON
    ``out_dir/{json_name}`` whose images are the patches, with the
    source's categories, the clipped instances and an ``info`` block with
    the settings and counts; the devkit's ``instancesonly_filtered_*.json``
    has the same shape, so :class:`ISAIDDataset` reads it when the
    categories are iSAID's. Patch images carry ``source_image_id`` and
    ``window`` ([y0, y1, x0, x1]); annotations ``source_annotation_id``.

    The whole annotation file is checked, and every image file looked
    for, before anything is written; bad input raises
    :class:`BadRecordError` naming the file and the record.
    ``skip_empty`` leaves out patches without instances. Returns the
    counts (also in the JSON's ``info``).
    """
    source = CocoPatchSource(ann_file, image_dir, patch_size, stride,
                             min_area, small_images, max_pixels)
    coco = source.coco
    patch_dir = osp.join(out_dir, image_subdir)
    os.makedirs(patch_dir, exist_ok=True)
    out_images, out_anns = [], []
    counts = dict(images=len(source), patches=0, empty_patches=0,
                  instances=source.num_instances,
                  patch_instances=0, dropped_small=0)
    for image_id, entry, patches in source:
        for patch in patches:
            counts['dropped_small'] += len(patch.dropped)
            if not patch.instances:
                counts['empty_patches'] += 1
                if skip_empty:
                    continue
            write_png(patch.image, osp.join(patch_dir, patch.name))
            patch_id = len(out_images) + 1
            w = patch.window
            out_images.append(
                dict(id=patch_id, file_name=patch.name, height=w.height,
                     width=w.width, source_image_id=image_id,
                     source_file_name=entry['file_name'],
                     window=[w.y0, w.y1, w.x0, w.x1]))
            for inst in patch.instances:
                out_anns.append(
                    dict(id=len(out_anns) + 1, image_id=patch_id,
                         category_id=inst.category_id,
                         segmentation=inst.segmentation(),
                         area=round(inst.area, 2), bbox=inst.bbox,
                         iscrowd=inst.iscrowd,
                         source_annotation_id=inst.ann_id))
    counts['patches'] = len(out_images)
    counts['patch_instances'] = len(out_anns)
    info = dict(description='iSAID-devkit patches (geopixel.annotation)',
                source=osp.abspath(ann_file), patch_size=patch_size,
                stride=stride, min_area=min_area, small_images=small_images,
                **counts)
    json_path = osp.join(out_dir, json_name)
    atomic_write(
        json.dumps(dict(info=info, images=out_images, annotations=out_anns,
                        categories=coco['categories'])), json_path)
    return dict(counts, json=json_path, image_dir=patch_dir)
