"""Procedural top-down remote-sensing scenes with exact instance polygons.

A scene is textured ground (grassland, farmland, urban or desert), optional
water (a coast or a lake), roads, and non-overlapping objects of iSAID
categories: vehicles on roads, storage tanks, ships on water, planes on an
apron, tennis and basketball courts, swimming pools. Every object is drawn
by filling its own polygon, so the polygon *is* its ground-truth mask.
Everything is deterministic given the seed.
"""
import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

COLOURS = {
    'white': (235, 235, 232),
    'gray': (128, 130, 134),
    'black': (38, 38, 42),
    'red': (190, 40, 36),
    'blue': (40, 80, 170),
    'yellow': (222, 190, 40),
    'orange': (220, 120, 30),
    'green': (50, 140, 70),
}

CATEGORY_COLOURS = {
    'Small_Vehicle': ('white', 'black', 'red', 'blue', 'gray'),
    'Large_Vehicle': ('white', 'gray', 'orange', 'yellow'),
    'storage_tank': ('white', 'gray'),
    'ship': ('white', 'gray', 'red'),
    'plane': ('white', 'gray'),
    'tennis_court': ('green', 'blue', 'red'),
    'basketball_court': ('orange', 'blue', 'gray'),
    'Swimming_pool': ('blue', ),
}

BIOMES = {
    'grassland': ((96, 128, 70), 'green grassland'),
    'farmland': ((140, 140, 90), 'agricultural farmland'),
    'urban': ((150, 146, 138), 'dense urban'),
    'desert': ((196, 170, 128), 'arid desert'),
}

ROOF_COLOURS = ((170, 166, 160), (120, 118, 116), (176, 92, 70),
                (196, 186, 166), (96, 104, 112))

POSITIONS = (('top left', 'top', 'top right'), ('left', 'center', 'right'),
             ('bottom left', 'bottom', 'bottom right'))


@dataclass
class Instance:
    """One object: its category, polygon (int [[x, y]...]) and attributes."""
    category: str
    polygon: List[List[int]]
    colour: str
    size: float  # characteristic length in pixels
    center: Tuple[float, float]
    size_word: Optional[str] = None  # 'large' / 'small' within its category

    @property
    def bbox(self) -> List[int]:
        pts = np.asarray(self.polygon)
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        return [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]


@dataclass
class Scene:
    image: np.ndarray  # H x W x 3 uint8 RGB
    biome: str
    has_water: str  # '', 'coast' or 'lake'
    num_roads: int
    instances: List[Instance] = field(default_factory=list)

    @property
    def size(self) -> Tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]

    def position_of(self, inst: Instance) -> str:
        w, h = self.size
        col = min(int(inst.center[0] / w * 3), 2)
        row = min(int(inst.center[1] / h * 3), 2)
        return POSITIONS[row][col]


def _smooth_noise(rng, h, w, cells, channels=1):
    grid = rng.standard_normal((cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def _rotated_rect(cx, cy, length, width, angle):
    c, s = math.cos(angle), math.sin(angle)
    pts = []
    for dx, dy in ((-length / 2, -width / 2), (length / 2, -width / 2),
                   (length / 2, width / 2), (-length / 2, width / 2)):
        pts.append((cx + dx * c - dy * s, cy + dx * s + dy * c))
    return pts


def _transform(points, cx, cy, angle, scale=1.0):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + scale * (x * c - y * s), cy + scale * (x * s + y * c))
            for x, y in points]


def _to_int_polygon(points) -> List[List[int]]:
    return [[int(round(x)), int(round(y))] for x, y in points]


class SceneGenerator:
    """Draws one scene per call; all randomness comes from ``rng``.

    Args:
        width / height: image size in pixels.
        max_objects: upper bound on objects per scene.
    """

    def __init__(self, width: int = 512, height: int = 512,
                 max_objects: int = 14):
        self.width = width
        self.height = height
        self.max_objects = max_objects
        self.scale = min(width, height) / 512.0

    # -- background -------------------------------------------------------
    def _ground(self, rng, biome):
        h, w = self.height, self.width
        base = np.array(BIOMES[biome][0], np.float32)
        img = np.empty((h, w, 3), np.float32)
        img[:] = base
        img += 16 * _smooth_noise(rng, h, w, 6, 1)  # brightness
        img += 5 * _smooth_noise(rng, h, w, 4, 3)  # slight hue drift
        img += 7 * rng.standard_normal((h, w, 1)).astype(np.float32)
        if biome == 'farmland':
            for _ in range(rng.integers(4, 8)):
                x0, y0 = rng.integers(0, w), rng.integers(0, h)
                fw, fh = rng.integers(w // 6, w // 2), rng.integers(
                    h // 6, h // 2)
                tint = np.array([rng.uniform(-20, 15), rng.uniform(-10, 25),
                                 rng.uniform(-25, 5)], np.float32)
                field_view = img[y0:y0 + fh, x0:x0 + fw]
                field_view += tint
                stripe = (np.arange(field_view.shape[0]) //
                          max(2, int(4 * self.scale)) % 2)
                field_view += 6 * stripe.astype(np.float32)[:, None, None]
        elif biome == 'urban':
            for _ in range(rng.integers(10, 20)):
                x0, y0 = rng.integers(0, w), rng.integers(0, h)
                bw = int(rng.integers(20, 60) * self.scale)
                bh = int(rng.integers(20, 60) * self.scale)
                roof = ROOF_COLOURS[int(rng.integers(len(ROOF_COLOURS)))]
                img[y0:y0 + bh, x0:x0 + bw] = np.array(roof, np.float32) + \
                    rng.uniform(-12, 12)
        return img

    def _water(self, rng, img, kind):
        h, w = self.height, self.width
        water = np.zeros((h, w), np.uint8)
        if kind == 'coast':
            side = rng.integers(4)
            depth = rng.uniform(0.3, 0.45)
            t = np.linspace(0, 1, 24)
            wobble = 0.05 * np.sin(t * rng.uniform(4, 9) + rng.uniform(0, 6))
            if side in (0, 1):  # top / bottom band
                edge = (depth + wobble) * h
                ys = edge if side == 0 else h - edge
                line = [(x * w, y) for x, y in zip(t, ys)]
                corner = [(w, 0), (0, 0)] if side == 0 else [(w, h), (0, h)]
            else:  # left / right band
                edge = (depth + wobble) * w
                xs = edge if side == 2 else w - edge
                line = [(x, y * h) for x, y in zip(xs, t)]
                corner = [(0, h), (0, 0)] if side == 2 else [(w, h), (w, 0)]
            poly = np.array(_to_int_polygon(line + corner), np.int32)
        else:
            cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
            r = rng.uniform(0.2, 0.3) * min(w, h)
            ang = np.linspace(0, 2 * np.pi, 40, endpoint=False)
            rad = r * (1 + 0.12 * np.sin(ang * 3 + rng.uniform(0, 6)))
            poly = np.stack([cx + rad * np.cos(ang), cy + 0.8 * rad *
                             np.sin(ang)], 1).round().astype(np.int32)
        cv2.fillPoly(water, [poly], 1)
        colour = np.array((38, 78, 104), np.float32)
        ripple = 6 * _smooth_noise(rng, h, w, 24, 1)
        sel = water.astype(bool)
        img[sel] = colour + ripple[sel]
        return water

    def _roads(self, rng, img, water, n):
        h, w = self.height, self.width
        roads = []
        road_mask = np.zeros((h, w), np.uint8)
        width = max(8, int(rng.integers(16, 24) * self.scale))
        for _ in range(n):
            if rng.random() < 0.5:
                y = rng.uniform(0.15, 0.85) * h
                p0, p1 = (0, y), (w, y + rng.uniform(-0.2, 0.2) * h)
            else:
                x = rng.uniform(0.15, 0.85) * w
                p0, p1 = (x, 0), (x + rng.uniform(-0.2, 0.2) * w, h)
            p0 = tuple(int(v) for v in p0)
            p1 = tuple(int(v) for v in p1)
            cv2.line(road_mask, p0, p1, 1, width)
            roads.append((p0, p1, width))
        road_mask[water.astype(bool)] = 0
        sel = road_mask.astype(bool)
        noise = rng.standard_normal((int(sel.sum()), 1)).astype(np.float32)
        img[sel] = np.array((92, 92, 96), np.float32) + 4 * noise
        for p0, p1, _ in roads:  # dashed centre line
            length = math.dist(p0, p1)
            steps = int(length // (12 * self.scale))
            for i in range(0, steps, 2):
                a = i / steps
                b = min((i + 1) / steps, 1)
                q0 = (int(p0[0] + (p1[0] - p0[0]) * a),
                      int(p0[1] + (p1[1] - p0[1]) * a))
                q1 = (int(p0[0] + (p1[0] - p0[0]) * b),
                      int(p0[1] + (p1[1] - p0[1]) * b))
                if water[min(q0[1], h - 1), min(q0[0], w - 1)]:
                    continue
                cv2.line(img, q0, q1, (215, 215, 200), 1)
        return roads, road_mask

    # -- objects ----------------------------------------------------------
    def _place(self, rng, occupied, polygon_fn, allowed, tries=40):
        """Sample a polygon inside ``allowed`` that overlaps nothing."""
        h, w = occupied.shape
        for _ in range(tries):
            points = polygon_fn()
            poly = np.array(_to_int_polygon(points), np.int32)
            if (poly[:, 0].min() < 1 or poly[:, 1].min() < 1
                    or poly[:, 0].max() >= w - 1
                    or poly[:, 1].max() >= h - 1):
                continue
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(mask, [poly], 1)
            area = mask.sum()
            if area < 12:
                continue
            if (mask & occupied).any():
                continue
            if (mask & allowed).sum() < 0.95 * area:
                continue
            margin = cv2.dilate(mask, np.ones((5, 5), np.uint8))
            occupied |= margin
            return poly.tolist()
        return None

    def _draw(self, img, polygon, colour, shadow_offset, detail=None):
        poly = np.array(polygon, np.int32)
        shadow = poly + np.array(shadow_offset, np.int32)
        overlay = img.copy()
        cv2.fillPoly(overlay, [shadow], (0, 0, 0))
        img[:] = 0.65 * img + 0.35 * overlay
        cv2.fillPoly(img, [poly], COLOURS[colour])
        if detail is not None:
            detail(img, poly)

    def __call__(self, rng: np.random.Generator) -> Scene:
        h, w = self.height, self.width
        s = self.scale
        biome = str(rng.choice(list(BIOMES)))
        water_kind = str(rng.choice(['', 'coast', 'lake'], p=[0.4, 0.35,
                                                              0.25]))
        img = self._ground(rng, biome)
        water = (self._water(rng, img, water_kind) if water_kind else
                 np.zeros((h, w), np.uint8))
        n_roads = int(rng.integers(0, 3))
        roads, road_mask = self._roads(rng, img, water, n_roads)
        land = (1 - water).astype(np.uint8)
        land_free = land & (1 - road_mask)
        occupied = np.zeros((h, w), np.uint8)
        shadow = (int(round(3 * s)), int(round(3 * s)))
        instances: List[Instance] = []

        def add(category, points_fn, allowed, size, colour=None, detail=None):
            colour = colour or str(rng.choice(CATEGORY_COLOURS[category]))
            polygon = self._place(rng, occupied, points_fn, allowed)
            if polygon is None:
                return None
            self._draw(img, polygon, colour, shadow, detail)
            pts = np.asarray(polygon, np.float64)
            inst = Instance(category, polygon, colour, size,
                            (float(pts[:, 0].mean()), float(pts[:, 1].mean())))
            instances.append(inst)
            return inst

        budget = int(rng.integers(4, self.max_objects + 1))
        plans = []
        if water_kind:
            plans += ['ship'] * int(rng.integers(1, 4))
        if roads:
            plans += ['Small_Vehicle'] * int(rng.integers(2, 7))
            plans += ['Large_Vehicle'] * int(rng.integers(0, 3))
        extras = ['storage_tank', 'plane', 'tennis_court', 'basketball_court',
                  'Swimming_pool']
        for cat in rng.choice(extras, size=2, replace=False):
            plans += [str(cat)] * int(rng.integers(1, 4))
        plans = plans[:budget]

        for cat in plans:
            if cat in ('Small_Vehicle', 'Large_Vehicle') and roads:
                p0, p1, rw = roads[int(rng.integers(len(roads)))]
                ang = math.atan2(p1[1] - p0[1], p1[0] - p0[0])
                length = (rng.uniform(14, 20) if cat == 'Small_Vehicle' else
                          rng.uniform(30, 44)) * s
                width = length * (0.45 if cat == 'Small_Vehicle' else 0.32)

                def fn(p0=p0, p1=p1, ang=ang, length=length, width=width,
                       rw=rw):
                    t = rng.uniform(0.05, 0.95)
                    off = rng.choice([-1, 1]) * rw * 0.25
                    cx = p0[0] + (p1[0] - p0[0]) * t - off * math.sin(ang)
                    cy = p0[1] + (p1[1] - p0[1]) * t + off * math.cos(ang)
                    return _rotated_rect(cx, cy, length, width, ang)

                def windshield(img, poly):
                    c = poly.mean(0)
                    cv2.circle(img, (int(c[0]), int(c[1])),
                               max(1, int(2 * s)), (60, 70, 80), -1)

                add(cat, fn, road_mask | land_free, length, detail=windshield)
            elif cat == 'ship' and water_kind:
                length = rng.uniform(40, 90) * s
                beam = length * rng.uniform(0.18, 0.26)
                hull = [(-0.5, -0.5), (0.25, -0.5), (0.5, 0.0), (0.25, 0.5),
                        (-0.5, 0.5)]

                def fn(length=length, beam=beam, hull=hull):
                    ang = rng.uniform(0, math.pi)
                    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
                    return _transform(
                        [(x * length, y * beam) for x, y in hull], cx, cy,
                        ang)

                def deck(img, poly):
                    c = poly.mean(0).astype(int)
                    cv2.circle(img, (int(c[0]), int(c[1])), max(1, int(3 * s)),
                               (170, 170, 175), -1)

                add('ship', fn, water, length, detail=deck)
            elif cat == 'storage_tank':
                radius = rng.uniform(10, 28) * s
                ang = np.linspace(0, 2 * np.pi, 32, endpoint=False)

                def fn(radius=radius, ang=ang):
                    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
                    return [(cx + radius * math.cos(a), cy + radius *
                             math.sin(a)) for a in ang]

                def roof(img, poly, radius=radius):
                    c = poly.mean(0)
                    cv2.circle(img, (int(c[0]), int(c[1])),
                               max(1, int(radius * 0.6)), (200, 200, 200), 1)

                add('storage_tank', fn, land_free, 2 * radius, detail=roof)
            elif cat == 'plane':
                span = rng.uniform(40, 70) * s
                shape = [(0.5, 0), (0.35, 0.06), (0.1, 0.06), (0.0, 0.5),
                         (-0.1, 0.5), (-0.05, 0.06), (-0.35, 0.06),
                         (-0.45, 0.2), (-0.5, 0.2), (-0.45, 0), (-0.5, -0.2),
                         (-0.45, -0.2), (-0.35, -0.06), (-0.05, -0.06),
                         (-0.1, -0.5), (0.0, -0.5), (0.1, -0.06),
                         (0.35, -0.06)]

                def fn(span=span, shape=shape):
                    ang = rng.uniform(0, 2 * math.pi)
                    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
                    return _transform(shape, cx, cy, ang, span)

                add('plane', fn, land_free, span)
            elif cat in ('tennis_court', 'basketball_court'):
                length = (rng.uniform(36, 50) if cat == 'tennis_court' else
                          rng.uniform(40, 56)) * s
                width = length * 0.5
                court_ang = rng.uniform(0, math.pi)

                def fn(length=length, width=width, ang=court_ang):
                    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
                    return _rotated_rect(cx, cy, length, width, ang)

                def lines(img, poly):
                    # Outline plus the net across the middle of the long side.
                    cv2.polylines(img, [poly], True, (245, 245, 245), 1)
                    a = (poly[0] + poly[1]) // 2
                    b = (poly[2] + poly[3]) // 2
                    cv2.line(img, tuple(int(v) for v in a),
                             tuple(int(v) for v in b), (245, 245, 245), 1)

                add(cat, fn, land_free, length, detail=lines)
            elif cat == 'Swimming_pool':
                length = rng.uniform(20, 40) * s

                def fn(length=length):
                    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
                    return _rotated_rect(cx, cy, length,
                                         length * rng.uniform(0.45, 0.7),
                                         rng.uniform(0, math.pi))

                add('Swimming_pool', fn, land_free, length, colour='blue')

        _assign_size_words(instances)
        image = np.clip(img, 0, 255).astype(np.uint8)
        return Scene(image, biome, water_kind, len(roads), instances)


def _assign_size_words(instances: Sequence[Instance]) -> None:
    """'large'/'small' for the biggest/smallest of a category (ratio >=
    1.3)."""
    by_cat = {}
    for inst in instances:
        by_cat.setdefault(inst.category, []).append(inst)
    for group in by_cat.values():
        if len(group) < 2:
            continue
        ordered = sorted(group, key=lambda i: i.size)
        if ordered[-1].size >= 1.3 * ordered[-2].size:
            ordered[-1].size_word = 'large'
        if ordered[1].size >= 1.3 * ordered[0].size:
            ordered[0].size_word = 'small'
