"""Georeferenced input and output (the ``gis`` extra: rasterio, shapely).

* ``raster.py``: :func:`open_image_source`, GeoTIFFs (any band count,
  stretch, nodata) and plain images read lazily as RGB windows.
* ``dependencies.py``: rasterio and shapely are imported when first needed;
  without them this package still imports and the functions that need them
  raise :class:`GISDependencyError`.

The rules are in ``docs/en/user_guides/gis.md``.
"""
from .dependencies import GISDependencyError
from .raster import ImageSource, open_image_source

__all__ = ['GISDependencyError', 'ImageSource', 'open_image_source']
