"""The optional GIS packages, imported when a function first needs them.

``import geopixel.gis`` works without them; a function that needs one
raises :class:`GISDependencyError` at once, naming the extra to install.
"""
import importlib
import os

INSTALL_HINT = ('pip install "geopixel[gis]" (or pip install -r '
                'requirements/gis.txt)')


class GISDependencyError(ImportError):
    """rasterio or shapely is missing for a GIS input or output."""


def require(module: str, purpose: str):
    """The imported ``module`` (e.g. ``'rasterio.features'``).

    Raises :class:`GISDependencyError` saying that ``purpose`` (e.g.
    ``'reading GeoTIFF files'``) needs it and how to install it.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split('.')[0]
        raise GISDependencyError(
            f'{purpose} needs {package}, which cannot be imported ({exc}): '
            f'{INSTALL_HINT}') from None


#: GDAL's raster block cache, in MiB, unless ``GDAL_CACHEMAX`` is set in
#: the environment. GDAL's own default (5% of RAM) fills up as a huge scene
#: is read window by window, so a run's memory would grow with the scene.
GDAL_CACHE_MB = 128
_gdal_cache_bounded = False


def require_raster(purpose: str):
    """rasterio (as :func:`require`), with GDAL's block cache bounded to
    :data:`GDAL_CACHE_MB` once per process unless the user set
    ``GDAL_CACHEMAX``."""
    global _gdal_cache_bounded
    rasterio = require('rasterio', purpose)
    if not _gdal_cache_bounded and 'GDAL_CACHEMAX' not in os.environ:
        from rasterio.env import set_gdal_config
        set_gdal_config('GDAL_CACHEMAX', GDAL_CACHE_MB)
    _gdal_cache_bounded = True
    return rasterio
