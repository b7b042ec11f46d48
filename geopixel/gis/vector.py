"""Masks as polygons, and polygons as GeoJSON in map coordinates.

The rules (also in ``docs/en/user_guides/gis.md``):

* **Polygons.** Each 4-connected region of a mask is one polygon, traced
  along pixel edges as GDAL does (pixel ``(col, row)`` covers the square
  from corner ``(col, row)`` to ``(col + 1, row + 1)``), holes kept. It is
  simplified by ``tolerance`` pixels (Douglas-Peucker, topology kept;
  0 keeps every corner), then moved by the window ``offset`` and mapped
  through the geotransform to map coordinates. Exterior rings run
  counter-clockwise and holes clockwise (RFC 7946).
* **Features.** One per mask, in order: the union of its polygons (a
  Polygon, or a MultiPolygon when there are several parts; ``null`` for an
  empty mask) with properties ``phrase``, ``mask_index`` (from 0),
  ``area_px`` (pixels of the mask), ``area`` (``area_px`` times the area
  of one pixel in map units, exact, not the simplified outline's) and
  ``area_unit`` (e.g. ``metre^2``; ``pixel^2`` without a geotransform).
* **GeoJSON file.** A FeatureCollection whose legacy ``crs`` member names
  the CRS (``urn:ogc:def:crs:EPSG::<code>`` when it has an EPSG code, its
  WKT otherwise), as GDAL and QGIS read it; without a CRS there is no
  ``crs`` member, and without a geotransform the coordinates are pixels.
"""
import json
from typing import List, Sequence, Union

import numpy as np

from geopixel.utils.files import atomic_write

from .dependencies import require

RESERVED_PROPERTIES = ('phrase', 'mask_index', 'area', 'area_px',
                       'area_unit')


def mask_to_polygons(mask: np.ndarray,
                     transform=None,
                     tolerance: float = 1.0,
                     offset: Sequence[int] = (0, 0)) -> list:
    """The connected regions of a 2-D ``mask`` as shapely Polygons, in map
    coordinates when ``transform`` (``affine.Affine``, pixel -> map) is
    given, else in pixels; ``offset`` is the ``(x0, y0)`` of the window
    the mask covers. See the module docstring for the rules."""
    purpose = 'turning masks into polygons'
    features = require('rasterio.features', purpose)
    geometry = require('shapely.geometry', purpose)
    affinity = require('shapely.affinity', purpose)
    from affine import Affine
    from shapely.geometry.polygon import orient
    if not tolerance >= 0:
        raise ValueError(f'tolerance must be >= 0 pixels, got {tolerance!r}')
    mask = as_binary_mask(mask)
    to_map = Affine.translation(*offset)
    if transform is not None:
        to_map = transform @ to_map
    matrix = [to_map.a, to_map.b, to_map.d, to_map.e, to_map.c, to_map.f]
    polygons = []
    for shape, _ in features.shapes(mask.view(np.uint8), mask=mask,
                                    connectivity=4):
        polygon = geometry.shape(shape)
        if tolerance:
            polygon = polygon.simplify(tolerance, preserve_topology=True)
        polygons.append(
            orient(affinity.affine_transform(polygon, matrix), 1.0))
    return polygons


def masks_to_features(masks: Union[np.ndarray, Sequence[np.ndarray]],
                      phrases: Sequence[str],
                      transform,
                      crs,
                      tolerance: float = 1.0,
                      offset: Sequence[int] = (0, 0),
                      properties: Union[None, dict, Sequence[dict]] = None
                      ) -> List[dict]:
    """One GeoJSON Feature (a dict) per mask of ``masks`` ([n, h, w]).

    ``phrases`` holds one phrase per mask; ``transform`` and ``crs`` are
    the image's (None for a plain image: pixel coordinates); ``properties``
    adds properties to every feature (a dict) or to each (one dict per
    mask). See the module docstring for the rules.
    """
    purpose = 'turning masks into GeoJSON'
    shapely = require('shapely', purpose)
    geometry = require('shapely.geometry', purpose)
    from shapely.geometry.polygon import orient
    if len(phrases) != len(masks):
        raise ValueError(f'{len(masks)} mask(s) but {len(phrases)} '
                         'phrase(s): give one phrase per mask')
    extras = _per_mask_properties(properties, len(masks))
    pixel_area = abs(transform.determinant) if transform is not None else 1
    area_unit = _area_unit(transform, crs)
    result = []
    for index, (mask, phrase, extra) in enumerate(
            zip(masks, phrases, extras)):
        polygons = mask_to_polygons(mask, transform, tolerance, offset)
        shape = None
        if polygons:
            union = shapely.union_all(polygons)
            parts = [orient(p, 1.0) for p in getattr(union, 'geoms',
                                                     [union])]
            union = (parts[0] if len(parts) == 1 else
                     geometry.MultiPolygon(parts))
            shape = geometry.mapping(union)
        area_px = int(np.count_nonzero(mask))
        result.append({
            'type': 'Feature',
            'geometry': shape,
            'properties': {
                'phrase': phrase,
                'mask_index': index,
                'area': area_px * pixel_area,
                'area_px': area_px,
                'area_unit': area_unit,
                **extra
            }
        })
    return result


def write_geojson(path: str, features: Sequence[dict], crs) -> None:
    """Write ``features`` as a GeoJSON FeatureCollection to ``path``,
    atomically, with ``crs`` (rasterio CRS, ``'EPSG:32633'``..., or None)
    named in the legacy ``crs`` member."""
    collection = {'type': 'FeatureCollection'}
    if crs is not None:
        collection['crs'] = {
            'type': 'name',
            'properties': {
                'name': crs_name(crs)
            }
        }
    collection['features'] = list(features)
    atomic_write(json.dumps(collection, ensure_ascii=False, allow_nan=False),
                 path)


def crs_name(crs) -> str:
    """The OGC URN of ``crs`` when it has an EPSG code, else its WKT."""
    crs = _as_crs(crs)
    epsg = crs.to_epsg()
    return f'urn:ogc:def:crs:EPSG::{epsg}' if epsg else crs.to_wkt()


def as_binary_mask(mask) -> np.ndarray:
    """A 2-D bool mask of a bool or integer array (nonzero: in the mask).

    Floats are refused: logits and probabilities need a threshold first.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'a mask must be 2-D (h, w); got shape {mask.shape}')
    if mask.dtype.kind not in 'biu':
        raise ValueError(
            f'a mask must be bool or integers, got {mask.dtype}; threshold '
            'logits or probabilities first (e.g. logits > 0)')
    return mask.astype(bool, copy=False)


def _as_crs(crs):
    CRS = require('rasterio.crs', 'naming a CRS').CRS
    return CRS.from_user_input(crs)


def _area_unit(transform, crs) -> str:
    if transform is None:
        return 'pixel^2'
    if crs is None:
        return 'map unit^2'
    return f'{_as_crs(crs).units_factor[0]}^2'


def _per_mask_properties(properties, count: int) -> List[dict]:
    if properties is None:
        extras = [{}] * count
    elif isinstance(properties, dict):
        extras = [properties] * count
    else:
        extras = list(properties)
        if len(extras) != count:
            raise ValueError(f'{count} mask(s) but {len(extras)} property '
                             'dict(s): give one per mask, or one dict for '
                             'all')
    for extra in extras:
        clash = sorted(set(extra) & set(RESERVED_PROPERTIES))
        if clash:
            raise ValueError(f'properties {clash} are written by '
                             'masks_to_features itself; rename them')
    return extras
