"""The optional GIS packages, imported when a function first needs them.

``import geopixel.gis`` works without them; a function that needs one
raises :class:`GISDependencyError` at once, naming the extra to install.
"""
import importlib

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
