"""Georeferenced input and output (the ``gis`` extra: rasterio, shapely).

* ``raster.py``: :func:`open_image_source`, GeoTIFFs (any band count,
  stretch, nodata) and plain images read lazily as RGB windows.
* ``vector.py``: masks as polygons and GeoJSON in map coordinates.
* ``writers.py``: georeferenced mask GeoTIFFs, whole or window by window.
* ``dependencies.py``: rasterio and shapely are imported when first needed;
  without them this package still imports and the functions that need them
  raise :class:`GISDependencyError`.

The rules are in ``docs/en/user_guides/gis.md``.
"""
from .dependencies import GISDependencyError
from .raster import ImageSource, open_image_source
from .vector import (
                     crs_name,
                     mask_to_polygons,
                     masks_to_features,
                     write_geojson,
)
from .writers import MaskRasterWriter, write_mask_geotiff

__all__ = [
    'GISDependencyError', 'ImageSource', 'open_image_source',
    'mask_to_polygons', 'masks_to_features', 'write_geojson', 'crs_name',
    'MaskRasterWriter', 'write_mask_geotiff'
]
