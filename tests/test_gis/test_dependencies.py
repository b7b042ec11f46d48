"""Without rasterio or shapely: the package imports, and the functions that
need them say what to install."""
import importlib
import sys

import numpy as np
import pytest

import geopixel
from geopixel.gis import (
    GISDependencyError,
    mask_to_polygons,
    open_image_source,
    write_mask_geotiff,
)

HINT = 'pip install "geopixel[gis]"'


def hide(monkeypatch, package):
    """Make ``import package`` (and its submodules) fail, as when it is
    not installed."""
    for name in [n for n in sys.modules
                 if n == package or n.startswith(package + '.')]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


def test_the_package_imports_without_rasterio_and_shapely(monkeypatch):
    hide(monkeypatch, 'rasterio')
    hide(monkeypatch, 'shapely')
    monkeypatch.setattr(geopixel, 'gis', geopixel.gis)
    for name in [n for n in sys.modules if n.startswith('geopixel.gis')]:
        monkeypatch.delitem(sys.modules, name)
    gis = importlib.import_module('geopixel.gis')
    with pytest.raises(gis.GISDependencyError, match='rasterio'):
        gis.mask_to_polygons(np.ones((2, 2), bool))
    # plain images need neither
    with gis.open_image_source(np.zeros((4, 4, 3), np.uint8)) as src:
        assert src.read()[0].shape == (4, 4, 3)


@pytest.mark.parametrize('package', ['rasterio', 'shapely'])
def test_each_function_names_the_extra(monkeypatch, tmp_path, package):
    hide(monkeypatch, package)
    tif = tmp_path / 'x.tif'
    tif.write_bytes(b'II*\x00' + bytes(100))
    calls = [lambda: mask_to_polygons(np.ones((2, 2), bool))]
    if package == 'rasterio':
        calls += [
            lambda: open_image_source(str(tif)),
            lambda: write_mask_geotiff(str(tmp_path / 'm.tif'),
                                       np.ones((2, 2), bool)),
        ]
    for call in calls:
        with pytest.raises(GISDependencyError) as err:
            call()
        assert isinstance(err.value, ImportError)
        assert HINT in str(err.value) and package in str(err.value)
