"""Reading GeoTIFFs and images as RGB windows: bands, stretch, nodata."""
import numpy as np
import pytest
from PIL import Image

from geopixel.gis import open_image_source, raster
from geopixel.utils import BadRecordError

from .conftest import EPSG, ORIGIN_X, ORIGIN_Y, PIXEL


def percentile_stretch(values, band):
    """The documented rule, written out: ``band`` mapped linearly from the
    2nd-98th percentiles of ``values`` to 0-255, clipped."""
    lo, hi = np.percentile(values.astype(float), (2, 98))
    return np.clip((band.astype(float) - lo) * 255 / (hi - lo), 0, 255)


def assert_close(img, expected):
    assert np.abs(img.astype(float) - expected).max() <= 1


def random_bands(count, h=40, w=50, seed=0, high=4000):
    rng = np.random.default_rng(seed)
    return rng.integers(100, high, (count, h, w)).astype(np.uint16)


def test_geotiff_keeps_crs_and_transform_and_reads_rgb(write_tif):
    data = np.random.default_rng(1).integers(0, 255, (3, 40, 50)) \
        .astype(np.uint8)
    path = write_tif(data)
    with open_image_source(path) as src:
        assert (src.width, src.height, src.band_count) == (50, 40, 3)
        assert src.path == path
        assert src.crs.to_epsg() == EPSG
        assert tuple(src.transform)[:6] == (PIXEL, 0, ORIGIN_X, 0, -PIXEL,
                                            ORIGIN_Y)
        assert src.stretch_bounds is None  # 8-bit: used as it is
        rgb, valid = src.read()
    np.testing.assert_array_equal(rgb, np.moveaxis(data, 0, -1))
    assert rgb.dtype == np.uint8 and valid.all()


def test_window_read_equals_the_crop_of_a_full_read(write_tif):
    path = write_tif(random_bands(3, seed=2), nodata=0)
    with open_image_source(path) as src:
        full, full_valid = src.read()
        rgb, valid = src.read(7, 11, 20, 25)
        tail, _ = src.read(30, 20)  # to the right and bottom edges
    assert rgb.shape == (25, 20, 3)
    np.testing.assert_array_equal(rgb, full[11:36, 7:27])
    np.testing.assert_array_equal(valid, full_valid[11:36, 7:27])
    np.testing.assert_array_equal(tail, full[20:, 30:])
    with pytest.raises(ValueError, match='not inside'):
        src.read(40, 0, 20, 10)


def test_12_bands_need_a_band_choice(write_tif):
    data = random_bands(12, seed=3)
    path = write_tif(data, 's2.tif')
    with pytest.raises(BadRecordError) as err:
        open_image_source(path)
    message = str(err.value)
    assert path in message and '12 band(s)' in message
    assert 'bands=(4, 3, 2)' in message
    with open_image_source(path, bands=(4, 3, 2)) as src:
        rgb, valid = src.read()
        assert src.bands == (4, 3, 2)
    assert valid.all()
    for c, band in enumerate((4, 3, 2)):
        assert_close(rgb[..., c],
                     percentile_stretch(data[band - 1], data[band - 1]))
    with pytest.raises(BadRecordError, match='band 13.*12 band'):
        open_image_source(path, bands=(13, 3, 2))


def test_one_band_needs_a_band_choice(write_tif):
    data = random_bands(1, seed=4)
    path = write_tif(data, 'dem.tif')
    with pytest.raises(BadRecordError, match=r'1 band\(s\).*bands=\(1, 1, 1\)'
                       ) as err:
        open_image_source(path)
    assert path in str(err.value)
    with open_image_source(path, bands=(1, 1, 1)) as src:
        rgb, _ = src.read()
    assert_close(rgb[..., 0], percentile_stretch(data[0], data[0]))
    assert (rgb == rgb[..., :1]).all()  # grey


def test_alpha_band_is_dropped_and_masks_pixels(write_tif):
    from rasterio.enums import ColorInterp as CI
    rgb = np.random.default_rng(5).integers(1, 255, (3, 30, 40)) \
        .astype(np.uint8)
    alpha = np.full((1, 30, 40), 255, np.uint8)
    alpha[0, :, :10] = 0
    path = write_tif(np.concatenate([rgb, alpha]), 'rgba.tif',
                     colorinterp=[CI.red, CI.green, CI.blue, CI.alpha])
    with open_image_source(path) as src:
        assert src.bands == (1, 2, 3)
        out, valid = src.read()
    assert not valid[:, :10].any() and valid[:, 10:].all()
    assert (out[:, :10] == 0).all()
    np.testing.assert_array_equal(out[:, 10:], np.moveaxis(rgb, 0, -1)[:,
                                                                       10:])


def test_nodata_is_kept_out_of_the_stretch(write_tif):
    data = random_bands(3, seed=6)
    valid_px = np.ones(data.shape[1:], bool)
    valid_px[:8] = False  # a nodata border of 65535, the huge value
    data[:, ~valid_px] = 65535
    expected = np.stack([
        percentile_stretch(band[valid_px], band) for band in data], -1)
    declared = write_tif(data, 'declared.tif', nodata=65535)
    undeclared = write_tif(data, 'undeclared.tif')
    for path, nodata in ((declared, None), (undeclared, 65535)):
        with open_image_source(path, nodata=nodata) as src:
            rgb, valid = src.read()
        np.testing.assert_array_equal(valid, valid_px)
        assert (rgb[~valid_px] == 0).all()
        assert_close(rgb[valid_px], expected[valid_px])
    # not declared: the huge value takes part in the stretch
    with open_image_source(undeclared) as src:
        rgb, valid = src.read()
    assert valid.all()
    assert np.abs(rgb[valid_px].astype(float) - expected[valid_px]).max() > 1


def test_nan_is_nodata_in_float_images(write_tif):
    data = np.random.default_rng(7).random((3, 20, 30)).astype(np.float32)
    data[:, 5, :] = np.nan
    data[1, 6, 0] = np.nan  # one band only: the pixel stays valid
    path = write_tif(data, 'f.tif')
    with open_image_source(path, stretch='range') as src:
        rgb, valid = src.read()
    assert not valid[5].any() and valid[6].all()
    assert rgb[6, 0, 1] == 0 and (rgb[5] == 0).all()
    assert_close(rgb[7], np.moveaxis(data, 0, -1)[7] * 255)


def test_an_all_nodata_image_is_refused(write_tif):
    path = write_tif(np.zeros((3, 20, 30), np.uint16), 'empty.tif',
                     nodata=0)
    with pytest.raises(BadRecordError, match='every pixel is nodata') as err:
        open_image_source(path)
    assert path in str(err.value)


def test_the_stretch_is_computed_once_from_a_bounded_sample(
        write_tif, monkeypatch):
    monkeypatch.setattr(raster, 'STATS_PIXELS', 48)  # 1 pixel in 10 x 10
    data = random_bands(3, h=60, w=80, seed=8)
    with open_image_source(write_tif(data, 'big.tif')) as src:
        bounds = src.stretch_bounds.copy()
        left, _ = src.read(0, 0, 40, 60)
        right, _ = src.read(40, 0, 40, 60)
    # every window is stretched by the same bounds, from the sample
    sample = data[:, 5::10, 5::10]  # 6 x 8, nearest to the block centres
    np.testing.assert_allclose(
        bounds, np.percentile(sample.reshape(3, -1), (2, 98), axis=1).T)
    whole = np.concatenate([left, right], axis=1)
    for c in range(3):
        lo, hi = bounds[c]
        expected = np.clip((data[c] - lo) * 255 / (hi - lo), 0, 255)
        assert_close(whole[..., c], expected)


def test_thin_valid_areas_missed_by_the_sample_are_found(
        write_tif, monkeypatch):
    monkeypatch.setattr(raster, 'STATS_PIXELS', 100)
    data = np.zeros((3, 60, 80), np.uint16)
    data[:, 1, :] = random_bands(3, h=1, w=80, seed=9)[:, 0]  # one row
    with open_image_source(write_tif(data, 'strip.tif', nodata=0)) as src:
        rgb, valid = src.read()
    assert valid[1].all() and valid.sum() == 80
    for c in range(3):
        assert_close(rgb[1, :, c], percentile_stretch(data[c, 1],
                                                      data[c, 1]))


@pytest.mark.parametrize('content, problem', [
    (b'', 'empty'),
    (bytes(np.random.default_rng(0).integers(0, 256, 500, np.uint8)),
     'not a readable image'),
    (b'II*\x00' + bytes(200), 'not a readable TIFF'),
])
def test_bad_files_are_named(tmp_path, content, problem):
    path = tmp_path / 'bad.tif'
    path.write_bytes(content)
    with pytest.raises(BadRecordError, match=problem) as err:
        open_image_source(str(path))
    assert str(path) in str(err.value)
    with pytest.raises(BadRecordError, match='missing'):
        open_image_source(str(tmp_path / 'nowhere.tif'))


def test_a_truncated_geotiff_is_named(write_tif, tmp_path):
    path = write_tif(random_bands(3, h=200, w=200, seed=10), 'cut.tif',
                     tiled=True, blockxsize=64, blockysize=64,
                     compress='deflate')
    with open(path, 'rb') as f:
        head = f.read()
    cut = tmp_path / 'truncated.tif'
    cut.write_bytes(head[:len(head) // 2])
    with pytest.raises(BadRecordError, match='TIFFReadEncodedTile') as err:
        with open_image_source(str(cut)) as src:
            src.read()
    assert str(cut) in str(err.value)


def test_arrays_pil_images_and_pngs(tmp_path):
    rgb = np.random.default_rng(11).integers(0, 255, (20, 30, 3)) \
        .astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'x.png')
    Image.fromarray(rgb).convert('RGBA').save(tmp_path / 'rgba.png')
    sources = [rgb, Image.fromarray(rgb), str(tmp_path / 'x.png'),
               str(tmp_path / 'rgba.png')]
    for source in sources:
        with open_image_source(source) as src:
            assert src.crs is None and src.transform is None
            out, valid = src.read()
        np.testing.assert_array_equal(out, rgb)
        assert valid.all()
    with open_image_source(rgb, bands=(3, 2, 1)) as src:
        np.testing.assert_array_equal(src.read(2, 3, 4, 5)[0],
                                      rgb[3:8, 2:6, ::-1])
    with pytest.raises(BadRecordError, match=r'4 band\(s\)'):
        open_image_source(np.zeros((5, 5, 4), np.uint8))


@pytest.mark.filterwarnings('ignore::UserWarning')  # writing it
def test_a_tiff_without_geotransform_is_not_georeferenced(write_tif):
    data = random_bands(3, seed=12)
    path = write_tif(data, 'plain.tif', crs=None, transform=None)
    with open_image_source(path) as src:
        assert src.crs is None and src.transform is None


def test_max_pixels_is_checked_from_the_header(write_tif):
    path = write_tif(random_bands(3, seed=13))
    with pytest.raises(BadRecordError, match='max_pixels=1,999'):
        open_image_source(path, max_pixels=1999)
    open_image_source(path, max_pixels=2000).close()


@pytest.mark.parametrize('kwargs', [
    dict(bands=(0, 1, 2)),
    dict(bands=(1, 2)),
    dict(stretch='minmax'),
    dict(max_pixels=0),
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        open_image_source(np.zeros((4, 4, 3), np.uint8), **kwargs)


def test_small_images_look_as_the_training_pipeline_shows_them(write_tif):
    """Without nodata, up to STATS_PIXELS pixels: read_image_rgb's output,
    so the model sees a GeoTIFF as it saw its training images."""
    from geopixel.datasets.transforms.image_io import read_image_rgb
    data = random_bands(3, seed=14)
    path = write_tif(data, 'rgb16.tif', photometric='RGB')
    with open_image_source(path) as src:
        rgb, _ = src.read()
    np.testing.assert_array_equal(rgb, read_image_rgb(path))


def test_a_window_read_reads_only_that_window(write_tif, monkeypatch):
    windows = []
    samples = raster._RasterioReader.samples

    def spy(reader, indexes, window, out_shape):
        windows.append((window, out_shape))
        return samples(reader, indexes, window, out_shape)

    monkeypatch.setattr(raster._RasterioReader, 'samples', spy)
    with open_image_source(write_tif(random_bands(3, seed=15))) as src:
        windows.clear()  # opening read the stretch sample
        src.read(10, 5, 20, 15)
    assert windows == [((10, 5, 20, 15), (15, 20))]


def test_an_internal_mask_band_marks_invalid_pixels(write_tif):
    import rasterio
    data = random_bands(3, seed=16)
    path = write_tif(data, 'masked.tif')
    mask = np.full(data.shape[1:], 255, np.uint8)
    mask[:, 40:] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, 'r+') as ds:
            ds.write_mask(mask)
    with open_image_source(path) as src:
        rgb, valid = src.read()
    np.testing.assert_array_equal(valid, mask > 0)
    assert (rgb[:, 40:] == 0).all()
    inside = data[:, :, :40]
    for c in range(3):
        assert_close(rgb[:, :40, c], percentile_stretch(inside[c],
                                                        inside[c]))


def test_gdal_block_cache_is_bounded_unless_the_user_sets_it(write_tif):
    """GDAL's default cache (5% of RAM) would grow a run's memory with the
    scene as windows are read; geopixel bounds it, once per process."""
    import os

    from rasterio.env import get_gdal_config

    from geopixel.gis.dependencies import GDAL_CACHE_MB
    if 'GDAL_CACHEMAX' in os.environ:
        pytest.skip('GDAL_CACHEMAX is set in the environment: it wins')
    with open_image_source(write_tif(np.zeros((3, 8, 8), np.uint8))):
        pass
    assert int(get_gdal_config('GDAL_CACHEMAX')) == GDAL_CACHE_MB
