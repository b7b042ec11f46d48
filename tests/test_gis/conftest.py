"""A synthetic georeferenced GeoTIFF writer shared by the GIS tests."""
import numpy as np
import pytest

EPSG = 32633  # WGS 84 / UTM zone 33N, metres
ORIGIN_X, ORIGIN_Y, PIXEL = 500000.0, 4100000.0, 0.5  # north-up, 0.5 m


@pytest.fixture
def geo():
    """(crs, transform) of the synthetic scenes."""
    pytest.importorskip('rasterio')
    from affine import Affine
    from rasterio.crs import CRS
    return CRS.from_epsg(EPSG), Affine(PIXEL, 0, ORIGIN_X, 0, -PIXEL,
                                       ORIGIN_Y)


@pytest.fixture
def write_tif(tmp_path, geo):
    """``write_tif(data [C, H, W], name, colorinterp=None, **profile)``:
    the path of a GeoTIFF in tmp_path, georeferenced by ``geo`` unless the
    profile says otherwise."""
    import rasterio

    def write(data, name='scene.tif', colorinterp=None, **profile):
        data = np.asarray(data)
        path = str(tmp_path / name)
        profile = {
            'driver': 'GTiff', 'count': data.shape[0],
            'height': data.shape[1], 'width': data.shape[2],
            'dtype': data.dtype.name, 'crs': geo[0], 'transform': geo[1],
            **profile
        }
        with rasterio.open(path, 'w', **profile) as ds:
            ds.write(data)
            if colorinterp is not None:
                ds.colorinterp = colorinterp
        return path

    return write
