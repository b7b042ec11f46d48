"""Georeferenced mask GeoTIFFs, whole and window by window."""
import numpy as np
import pytest

from geopixel.gis import MaskRasterWriter, write_mask_geotiff

rasterio = pytest.importorskip('rasterio')


def read_back(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.profile


def test_blocks_are_written_where_they_belong(tmp_path, geo):
    labels = np.random.default_rng(0).integers(0, 600, (70, 100)) \
        .astype(np.uint16)
    path = str(tmp_path / 'labels.tif')
    with MaskRasterWriter(path, 100, 70, geo[1], geo[0],
                          dtype='uint16') as writer:
        for y0 in range(0, 70, 25):
            for x0 in range(0, 90, 30):  # columns 90-99 never written
                writer.write(x0, y0, labels[y0:y0 + 25, x0:x0 + 30])
    data, profile = read_back(path)
    np.testing.assert_array_equal(data[:, :90], labels[:, :90])
    assert (data[:, 90:] == 0).all()
    assert profile['crs'] == geo[0] and profile['transform'] == geo[1]
    assert profile['dtype'] == 'uint16' and profile['tiled']
    assert profile['compress'] == 'deflate'
    assert [p.name for p in tmp_path.iterdir()] == ['labels.tif']


def test_a_failed_run_leaves_the_old_file_and_no_temporary(tmp_path, geo):
    path = tmp_path / 'mask.tif'
    path.write_bytes(b'the previous result')
    with pytest.raises(RuntimeError):
        with MaskRasterWriter(str(path), 10, 10, geo[1], geo[0]) as writer:
            writer.write(0, 0, np.ones((5, 5), bool))
            raise RuntimeError('the model failed')
    assert path.read_bytes() == b'the previous result'
    assert [p.name for p in tmp_path.iterdir()] == ['mask.tif']


@pytest.mark.parametrize('x0, y0, block, problem', [
    (8, 0, np.ones((5, 5), bool), 'not inside'),
    (0, 0, np.full((2, 2), 256, np.int32), 'do not fit'),
    (0, 0, np.ones((2, 2), np.float32), 'cannot write a float32'),
    (0, 0, np.ones((2, 2, 2), bool), '2-D'),
])
def test_bad_blocks_are_refused(tmp_path, x0, y0, block, problem):
    with MaskRasterWriter(str(tmp_path / 'm.tif'), 10, 10) as writer:
        with pytest.raises(ValueError, match=problem):
            writer.write(x0, y0, block)


def test_a_mask_geotiff_is_0_1_and_georeferenced(tmp_path, geo):
    mask = np.zeros((30, 40), bool)
    mask[5:9, 10:30] = True
    path = str(tmp_path / 'mask.tif')
    write_mask_geotiff(path, mask, geo[1], geo[0])
    data, profile = read_back(path)
    assert profile['dtype'] == 'uint8' and profile['nodata'] is None
    np.testing.assert_array_equal(data, mask.astype(np.uint8))
    assert profile['crs'].to_epsg() == geo[0].to_epsg()
    assert profile['transform'] == geo[1]
