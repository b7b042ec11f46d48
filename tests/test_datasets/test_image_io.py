"""Image decoding rules: pixel cap, bit depth, stretch, bands, alpha."""
import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from geopixel.datasets import LoadImageRGB
from geopixel.datasets.transforms.image_io import read_image_rgb
from geopixel.utils import BadRecordError


def percentile_stretch(band):
    """The documented rule, written out independently of the library."""
    band = band.astype(float)
    finite = np.isfinite(band)
    lo, hi = np.percentile(band[finite], (2, 98))
    out = np.clip((band - lo) * 255 / (hi - lo), 0, 255)
    out[~finite] = 0
    return out


def assert_close(img, expected):
    assert np.abs(img.astype(float) - expected).max() <= 1


def test_our_pixel_cap_governs_not_pils(tmp_path, monkeypatch):
    path = tmp_path / 'x.png'
    Image.new('RGB', (64, 48), (1, 2, 3)).save(path)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)  # PIL alone refuses 3072 px at this limit
    for cap in (None, 3072):
        img = read_image_rgb(str(path), 'r', max_pixels=cap)
        assert img.shape == (48, 64, 3) and img[0, 0].tolist() == [1, 2, 3]
    with pytest.raises(BadRecordError) as err:
        read_image_rgb(str(path), 'r', max_pixels=3071)
    assert '64x48 = 3,072 pixels' in str(err.value)
    assert 'max_pixels=3,071' in str(err.value)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored


def test_truncated_file_is_an_error_even_if_pil_was_told_to_pad(
        tmp_path, monkeypatch):
    from PIL import ImageFile
    path = tmp_path / 'x.png'
    noise = np.random.default_rng(5).integers(0, 255, (64, 64, 3))
    Image.fromarray(noise.astype(np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
    Image.open(path).load()  # PIL alone pads the missing rows silently
    with pytest.raises(BadRecordError, match='truncated'):
        read_image_rgb(str(path), 'r')
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_cap_is_checked_from_a_tiff_header(tmp_path):
    path = tmp_path / 'x.tif'
    tifffile.imwrite(path, np.zeros((40, 50, 4), np.uint16),
                     photometric='minisblack', planarconfig='contig')
    with pytest.raises(BadRecordError, match='50x40 = 2,000 pixels'):
        read_image_rgb(str(path), max_pixels=1999)


def test_single_band_16bit_png_keeps_the_stretch_rule(tmp_path):
    band = np.random.default_rng(0).integers(0, 4000, (30, 40)) \
        .astype(np.uint16)
    path = tmp_path / 'g.png'
    Image.fromarray(band).save(path)
    img = read_image_rgb(str(path))
    assert img.shape == (30, 40, 3)
    assert (img[..., 0] == img[..., 1]).all()
    assert_close(img[..., 0], percentile_stretch(band))


def test_float_raster_nan_nodata_and_constant_band(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(500, 100, (30, 40, 3)).astype(np.float32)
    data[:5, :5, 0] = np.nan
    data[..., 2] = 7.0  # constant
    path = tmp_path / 'f.tif'
    tifffile.imwrite(path, data, photometric='rgb')
    img = read_image_rgb(str(path))
    assert (img[:5, :5, 0] == 0).all()
    assert_close(img[..., 0], percentile_stretch(data[..., 0]))
    assert_close(img[..., 1], percentile_stretch(data[..., 1]))
    assert (img[..., 2] == 0).all()


def test_range_stretch_uses_the_type_range(tmp_path):
    data = np.random.default_rng(2).integers(0, 65535, (20, 30, 3)) \
        .astype(np.uint16)
    path = tmp_path / 'r.tif'
    tifffile.imwrite(path, data, photometric='rgb')
    img = LoadImageRGB(stretch='range')(dict(img_path=str(path)))['img']
    assert_close(img, data * 255.0 / 65535)


def test_16bit_rgba_png_drops_alpha_and_keeps_channel_order(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint16)
    rgba[..., 0] = np.arange(30) * 100  # R varies along x
    rgba[..., 1] = (np.arange(20) * 100)[:, None]  # G along y
    rgba[..., 2] = 1000
    rgba[..., 3] = 65535
    path = tmp_path / 'a.png'
    cv2.imwrite(str(path), rgba[..., [2, 1, 0, 3]])  # OpenCV writes BGRA
    img = read_image_rgb(str(path))
    assert img.shape == (20, 30, 3)
    assert_close(img[..., 0], percentile_stretch(rgba[..., 0]))
    assert_close(img[..., 1], percentile_stretch(rgba[..., 1]))
    assert (img[..., 2] == 0).all()  # constant band


def test_16bit_tiff_alpha_and_planar_layouts(tmp_path):
    data = np.random.default_rng(3).integers(0, 4000, (20, 30, 3)) \
        .astype(np.uint16)
    alpha = np.full((20, 30, 1), 65535, np.uint16)
    tifffile.imwrite(tmp_path / 'a.tif', np.concatenate([data, alpha], -1),
                     photometric='rgb', extrasamples=['unassalpha'])
    tifffile.imwrite(tmp_path / 'p.tif', np.moveaxis(data, -1, 0),
                     photometric='rgb', planarconfig='separate')
    expected = np.stack([percentile_stretch(data[..., c]) for c in range(3)],
                        -1)
    for name in ('a.tif', 'p.tif'):
        assert_close(read_image_rgb(str(tmp_path / name)), expected)


def test_bands_on_8bit_images_are_taken_as_they_are(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 255, (20, 30, 3)) \
        .astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'x.png')
    load = LoadImageRGB(bands=(3, 2, 1))
    img = load(dict(img_path=str(tmp_path / 'x.png')))['img']
    np.testing.assert_array_equal(img, rgb[..., ::-1])
    eight = np.concatenate([rgb, rgb[..., :1]], axis=-1)
    tifffile.imwrite(tmp_path / 'n.tif', eight, photometric='minisblack',
                     planarconfig='contig')
    with pytest.raises(BadRecordError, match='4 bands'):
        read_image_rgb(str(tmp_path / 'n.tif'))
    img = read_image_rgb(str(tmp_path / 'n.tif'), bands=(4, 2, 3))
    np.testing.assert_array_equal(img, rgb[..., [0, 1, 2]])


def test_8bit_palette_and_grey_as_before(tmp_path):
    grey = np.arange(600, dtype=np.uint8).reshape(20, 30)
    Image.fromarray(grey).save(tmp_path / 'g.png')
    Image.fromarray(grey).convert('P').save(tmp_path / 'p.png')
    for name in ('g.png', 'p.png'):
        img = read_image_rgb(str(tmp_path / name))
        expected = np.array(Image.open(tmp_path / name).convert('RGB'))
        np.testing.assert_array_equal(img, expected)
        assert img.flags.writeable


@pytest.mark.parametrize('kwargs', [
    dict(bands=(0, 1, 2)),
    dict(bands=(1, 2)),
    dict(stretch='minmax'),
    dict(max_pixels=0),
])
def test_options_are_checked(kwargs):
    with pytest.raises(ValueError):
        LoadImageRGB(**kwargs)
