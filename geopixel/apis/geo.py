"""Georeferenced outputs of the inferencer: GeoJSON and mask GeoTIFFs.

Needs the ``gis`` extra (rasterio, shapely) through :mod:`geopixel.gis`,
which raises ``GISDependencyError`` naming it when they are missing.
"""
import os
import os.path as osp
from typing import List, Sequence

from geopixel.utils import BadRecordError

from .results import InferenceResult


def require_georeferenced(src) -> None:
    """GeoJSON and mask GeoTIFFs need map coordinates: refuse an
    ``ImageSource`` without a geotransform, naming its file."""
    if src.transform is None:
        raise BadRecordError(
            'has no geotransform (not georeferenced): GeoJSON and mask '
            'GeoTIFFs need a georeferenced image such as a GeoTIFF',
            src.path)


def write_result_gis(result: InferenceResult, transform, crs, out_dir: str,
                     stem: str, tolerance: float = 1.0) -> List[str]:
    """``{stem}.geojson`` (one feature per mask, in map coordinates, with
    its phrase, index and area) and ``{stem}_mask{k}.tif`` (0/1,
    georeferenced) per mask, in ``out_dir``; returns the paths."""
    from geopixel.gis import (masks_to_features, write_geojson,
                              write_mask_geotiff)
    os.makedirs(out_dir, exist_ok=True)
    features = masks_to_features(result.masks,
                                 [o.phrase for o in result.objects],
                                 transform, crs, tolerance)
    paths = [osp.join(out_dir, f'{stem}.geojson')]
    write_geojson(paths[0], features, crs)
    for k, mask in enumerate(result.masks):
        paths.append(osp.join(out_dir, f'{stem}_mask{k}.tif'))
        write_mask_geotiff(paths[-1], mask, transform, crs)
    return paths


def pieces_feature(pieces: Sequence, phrase: str, index: int, transform,
                   crs, tolerance: float = 1.0, properties=None) -> dict:
    """One GeoJSON feature for a mask held as pieces (each a ``mask``
    cropped at scene pixel ``x0, y0``, as a stitched scene keeps them):
    each piece is traced by ``masks_to_features`` and the outlines are
    joined, so no array of the mask's full extent is built."""
    import numpy as np
    import shapely
    from shapely.geometry import MultiPolygon, mapping, shape
    from shapely.geometry.polygon import orient

    from geopixel.gis import masks_to_features
    # an empty mask is traced as one empty pixel: no geometry, area 0
    crops = [(p.mask, (p.x0, p.y0)) for p in pieces] or [
        (np.zeros((1, 1), bool), (0, 0))
    ]
    parts = [
        masks_to_features([mask], [phrase], transform, crs, tolerance,
                          offset=offset)[0] for mask, offset in crops
    ]
    geometry = None
    shapes = [shape(p['geometry']) for p in parts if p['geometry']]
    if shapes:
        union = shapely.union_all(shapes)
        polygons = [orient(g, 1.0) for g in getattr(union, 'geoms', [union])]
        geometry = mapping(polygons[0] if len(polygons) == 1 else
                           MultiPolygon(polygons))
    return {
        'type': 'Feature',
        'geometry': geometry,
        'properties': {
            'phrase': phrase,
            'mask_index': index,
            'area': sum(p['properties']['area'] for p in parts),
            'area_px': sum(p['properties']['area_px'] for p in parts),
            'area_unit': parts[0]['properties']['area_unit'],
            **(properties or {})
        }
    }
