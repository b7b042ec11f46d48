"""tools/infer.py on the tiny model: inputs, output files, chat, failures.

Most tests call the tool's ``main`` in-process (a working directory holding
``data/synthetic``, as the shipped configs expect); the chat over piped
stdin and the exit status of a partly failed run go through a real
subprocess.
"""
import glob
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from geopixel.testing import demo_data, get_config, tiny_model
from geopixel.utils import BadRecordError, decode_rle
from tests.test_apis.test_inferencer import seg_prone

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'infer.py')
GCG_CONFIG = osp.join(REPO, 'geopixel/configs/geopixel/gcg_tiny.py')
RRSIS_CONFIG = osp.join(REPO, 'geopixel/configs/geopixel/rrsis_tiny.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('infer_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return load_tool()


@pytest.fixture(scope='module')
def workspace(synthetic_root, tmp_path_factory):
    """``data/synthetic``, a checkpoint of the tiny model per config and a
    folder of images."""
    root = tmp_path_factory.mktemp('infer')
    (root / 'data').mkdir()
    os.symlink(synthetic_root, root / 'data' / 'synthetic')
    for name, config in (('gcg', GCG_CONFIG), ('rrsis', RRSIS_CONFIG)):
        cfg = get_config(config, synthetic_root)
        model = tiny_model(cfg).eval()
        if name == 'gcg':  # generated answers with masks
            seg_prone(model, demo_data(cfg, 'test', 2))
        torch.save(model.state_dict(), root / f'{name}.pth')
    images = root / 'images'
    images.mkdir()
    for path in sorted(glob.glob(osp.join(
            synthetic_root, 'geopixeld/GeoPixelD/test/*.png'))):
        shutil.copy(path, images)
    return root


def images_of(workspace):
    return sorted(glob.glob(str(workspace / 'images' / '*.png')))


@pytest.fixture
def run_in(workspace, monkeypatch, tool):
    monkeypatch.chdir(workspace)

    def run(*argv):
        return tool.main([str(a) for a in argv])
    return run


def test_refer_writes_json_mask_pngs_and_overlay(run_in, workspace):
    image = images_of(workspace)[0]
    out = workspace / 'out_refer'
    run_in(RRSIS_CONFIG, workspace / 'rrsis.pth', image, '--task', 'refer',
           '--prompt', 'the small ship', '--out', out)
    stem = osp.splitext(osp.basename(image))[0]
    data = json.load(open(out / f'{stem}.json'))
    assert data['task'] == 'refer' and data['answer_mode'] == 'teacher_forced'
    assert 'the small ship' in data['question']
    mask_meta, = data['masks']
    assert mask_meta['phrase'] == 'the small ship'
    assert set(data['timings']) >= {'tiling', 'vision', 'grounding',
                                    'prefill', 'decode', 'masks'}
    png = out / f'{stem}_mask0_the_small_ship.png'
    pixels = np.asarray(Image.open(png))
    assert set(np.unique(pixels)) <= {0, 255}
    rle_mask = decode_rle(mask_meta['rle'], data['height'], data['width'])
    assert np.array_equal(pixels == 255, rle_mask.astype(bool))
    assert mask_meta['area'] == int(rle_mask.sum())
    overlay = Image.open(out / f'{stem}_overlay.png')
    assert overlay.size[0] > data['width']
    assert sorted(os.listdir(out)) == sorted(
        [f'{stem}.json', png.name, f'{stem}_overlay.png'])


def test_folder_and_glob_inputs(run_in, workspace, tmp_path):
    names = [osp.basename(p) for p in images_of(workspace)]
    run_in(GCG_CONFIG, workspace / 'gcg.pth', workspace / 'images',
           '--out', tmp_path / 'folder', '--batch-size', '2')
    run_in(GCG_CONFIG, workspace / 'gcg.pth', workspace / 'images' / '*.png',
           '--out', tmp_path / 'glob')
    for out in ('folder', 'glob'):
        written = sorted(p for p in os.listdir(tmp_path / out)
                         if p.endswith('.json'))
        assert written == sorted(n.replace('.png', '.json') for n in names)
    for name in names:
        stem = name.replace('.png', '')
        a = json.load(open(tmp_path / 'folder' / f'{stem}.json'))
        b = json.load(open(tmp_path / 'glob' / f'{stem}.json'))
        assert a['answer'] == b['answer'] and a['ids'] == b['ids']
        assert a['question'].startswith('Can you provide a thorough')


def test_same_stem_keeps_both(tool):
    assert tool.unique_stems(['a/x.png', 'b/x.tif', 'c/y.png', 'd/y.png']) \
        == ['x_png', 'x_tif', 'y_png', 'y_png_1']


def test_bad_single_input_stops_with_its_name(run_in, workspace, tmp_path):
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(BadRecordError, match='empty.png.*0 bytes'):
        run_in(GCG_CONFIG, workspace / 'gcg.pth', empty, '--out', tmp_path)


def test_usage_errors(tool):
    for argv in (['c', 'k', 'i', '--task', 'refer'],
                 ['c', 'k', 'i', '--prompt', 'x'],
                 ['c', 'k', 'i', '--chat', '--prompt', 'x']):
        with pytest.raises(SystemExit) as exit_info:
            tool.parse_args(argv)
        assert exit_info.value.code == 2


def run_tool(args, cwd, stdin=None):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, TOOL] + [str(a) for a in args],
                          cwd=cwd, env=env, input=stdin, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_folder_with_bad_files_finishes_the_others(workspace, tmp_path):
    folder = tmp_path / 'mixed'
    shutil.copytree(workspace / 'images', folder)
    (folder / 'a_empty.png').write_bytes(b'')
    (folder / 'b_text.jpg').write_text('not an image')
    proc = run_tool([GCG_CONFIG, workspace / 'gcg.pth', folder, '--out',
                     tmp_path / 'out'], workspace)
    assert proc.returncode == 3, proc.stderr[-2000:]
    written = sorted(p for p in os.listdir(tmp_path / 'out')
                     if p.endswith('.json'))
    assert written == sorted(osp.basename(p).replace('.png', '.json')
                             for p in images_of(workspace))
    failures = proc.stderr[proc.stderr.index('2 input(s) failed'):]
    assert 'a_empty.png' in failures and '0 bytes' in failures
    assert 'b_text.jpg' in failures and 'not a readable image' in failures


@pytest.mark.slow
def test_chat_over_piped_stdin_keeps_the_conversation(workspace, tmp_path):
    image = images_of(workspace)[0]
    stem = osp.splitext(osp.basename(image))[0]
    out = tmp_path / 'chat'
    proc = run_tool([GCG_CONFIG, workspace / 'gcg.pth', image, '--chat',
                     '--out', out],
                    workspace, stdin='What is this?\nAnd next to it?\n')
    assert proc.returncode == 0, proc.stderr[-2000:]
    first = json.load(open(out / f'{stem}_turn0.json'))
    second = json.load(open(out / f'{stem}_turn1.json'))
    assert not (out / f'{stem}_turn2.json').exists()
    assert proc.stdout.index(first['answer']) < proc.stdout.rindex(
        second['answer'])
    # the second turn's prompt is the whole conversation so far
    assert first['answer'] and first['answer'] in second['prompt']
    assert second['prompt'].index('What is this?') < second['prompt'].index(
        first['answer']) < second['prompt'].index('And next to it?')
    # an empty line ends the chat
    proc = run_tool([GCG_CONFIG, workspace / 'gcg.pth', image, '--chat',
                     '--out', tmp_path / 'short'],
                    workspace, stdin='What is this?\n\nNot asked\n')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p for p in os.listdir(tmp_path / 'short')
                  if p.endswith('.json')) == [f'{stem}_turn0.json']


# -- GeoTIFFs and huge scenes -------------------------------------------------
EPSG = 32633
ORIGIN = (500000.0, 4100000.0)  # map x, y of the top-left corner
PIXEL = 0.5  # metres


def write_geotiff(path, bands, nodata=None, transform=True):
    """``bands`` ([count, h, w]) as a GeoTIFF in UTM 33N, 0.5 m pixels."""
    rasterio = pytest.importorskip('rasterio')
    from rasterio.transform import from_origin
    count, h, w = bands.shape
    profile = dict(driver='GTiff', width=w, height=h, count=count,
                   dtype=bands.dtype.name, nodata=nodata)
    if transform:
        profile.update(crs=f'EPSG:{EPSG}',
                       transform=from_origin(*ORIGIN, PIXEL, PIXEL))
    with rasterio.open(path, 'w', **profile) as ds:
        ds.write(bands)
    return path


def rgb_bands(workspace, height=None, width=None):
    """A test image as [3, h, w] uint8, tiled to ``height x width``."""
    rgb = np.asarray(Image.open(images_of(workspace)[0]).convert('RGB'))
    if height:
        reps = (-(-height // rgb.shape[0]), -(-width // rgb.shape[1]), 1)
        rgb = np.tile(rgb, reps)[:height, :width]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def test_geotiff_to_geojson_keeps_the_crs(run_in, workspace, tmp_path):
    rasterio = pytest.importorskip('rasterio')
    tif = write_geotiff(tmp_path / 'scene.tif', rgb_bands(workspace))
    out = tmp_path / 'out'
    run_in(RRSIS_CONFIG, workspace / 'rrsis.pth', tif, '--task', 'refer',
           '--prompt', 'the ship', '--geojson', '--out', out)
    data = json.load(open(out / 'scene.json'))
    collection = json.load(open(out / 'scene.geojson'))
    assert collection['crs']['properties']['name'] == \
        f'urn:ogc:def:crs:EPSG::{EPSG}'
    feature, = collection['features']
    props = feature['properties']
    assert props['phrase'] == 'the ship' and props['mask_index'] == 0
    mask_meta, = data['masks']
    assert props['area_px'] == mask_meta['area']
    assert props['area'] == pytest.approx(mask_meta['area'] * PIXEL**2)
    if mask_meta['area']:  # the box in pixels lands on map coordinates
        x, y, w, h = mask_meta['bbox']
        points = np.array([p for ring in _rings(feature['geometry'])
                           for p in ring])
        assert points[:, 0].min() == pytest.approx(
            ORIGIN[0] + x * PIXEL, abs=PIXEL)
        assert points[:, 0].max() == pytest.approx(
            ORIGIN[0] + (x + w) * PIXEL, abs=PIXEL)
        assert points[:, 1].max() == pytest.approx(
            ORIGIN[1] - y * PIXEL, abs=PIXEL)
        assert points[:, 1].min() == pytest.approx(
            ORIGIN[1] - (y + h) * PIXEL, abs=PIXEL)
    with rasterio.open(out / 'scene_mask0.tif') as ds:
        assert ds.crs.to_epsg() == EPSG
        assert ds.transform.c == ORIGIN[0] and ds.transform.f == ORIGIN[1]
        png = np.asarray(Image.open(out / 'scene_mask0_the_ship.png'))
        assert np.array_equal(ds.read(1), (png == 255).astype(np.uint8))


def _rings(geometry):
    polygons = (geometry['coordinates'] if geometry['type'] == 'MultiPolygon'
                else [geometry['coordinates']])
    return [ring for polygon in polygons for ring in polygon]


def test_bad_geotiffs_are_named(run_in, workspace, tmp_path):
    pytest.importorskip('rasterio')
    rng = np.random.default_rng(0)
    one = write_geotiff(tmp_path / 'one_band.tif',
                        rng.integers(0, 4000, (1, 64, 64), np.uint16))
    twelve = write_geotiff(tmp_path / 'twelve.tif',
                           rng.integers(0, 4000, (12, 64, 64), np.uint16))
    empty = write_geotiff(tmp_path / 'nodata.tif',
                          np.zeros((3, 64, 64), np.uint16), nodata=0)
    plain = write_geotiff(tmp_path / 'plain.tif', rgb_bands(workspace),
                          transform=False)
    args = [GCG_CONFIG, workspace / 'gcg.pth']
    for path, problem in ((one, '1 band'), (twelve, '12 band'),
                          (empty, 'nodata'), (plain, 'not georeferenced')):
        with pytest.raises(BadRecordError, match=osp.basename(path)) as err:
            run_in(*args, path, '--geojson', '--out', tmp_path / 'out')
        assert problem in str(err.value)
    # a band choice makes the 12-band image usable
    run_in(*args, twelve, '--geojson', '--bands', '4,3,2', '--out',
           tmp_path / 'out')
    assert (tmp_path / 'out' / 'twelve.geojson').exists()


def test_gis_options_need_the_extra(tool, monkeypatch):
    import geopixel.gis.dependencies as dependencies
    from geopixel.gis import GISDependencyError

    def missing(name, *args, **kwargs):
        raise ImportError(f'No module named {name!r}')

    monkeypatch.setattr(dependencies.importlib, 'import_module', missing)
    with pytest.raises(GISDependencyError, match=r'geopixel\[gis\]'):
        tool.main(['c.py', 'k.pth', 'x.tif', '--geojson'])


def run_big_scene(run_in, workspace, out, config, checkpoint, *task):
    """A 400 x 300 GeoTIFF in 256 px windows (2 x 2) through the tool."""
    tif = write_geotiff(out.parent / 'big.tif',
                        rgb_bands(workspace, 300, 400))
    run_in(config, workspace / checkpoint, tif, *task, '--window', '256',
           '--overlap', '64', '--geojson', '--out', out)
    return json.load(open(out / 'big.json'))


def test_a_scene_larger_than_a_window(run_in, workspace, tmp_path):
    rasterio = pytest.importorskip('rasterio')
    out = tmp_path / 'out'
    scene = run_big_scene(run_in, workspace, out, RRSIS_CONFIG, 'rrsis.pth',
                          '--task', 'refer', '--prompt', 'the ship')
    assert scene['counts']['windows'] == 4 and scene['width'] == 400
    assert scene['crs'] == f'urn:ogc:def:crs:EPSG::{EPSG}'
    with rasterio.open(out / 'big_mask.tif') as ds:
        assert (ds.width, ds.height) == (400, 300)
        assert ds.crs.to_epsg() == EPSG
        assert int(ds.read(1).sum()) == scene['mask']['area']
    feature, = json.load(open(out / 'big.geojson'))['features']
    assert feature['properties']['area_px'] == scene['mask']['area']


def test_a_described_scene_labels_its_objects(run_in, workspace, tmp_path):
    rasterio = pytest.importorskip('rasterio')
    out = tmp_path / 'out'
    scene = run_big_scene(run_in, workspace, out, GCG_CONFIG, 'gcg.pth')
    objects = scene['objects']
    assert objects and len(scene['windows']) == 4
    assert all(w['text'] for w in scene['windows'])
    features = json.load(open(out / 'big.geojson'))['features']
    assert [f['properties']['phrase'] for f in features] == [
        o['phrase'] for o in objects]
    assert [f['properties']['area_px'] for f in features] == [
        o['area'] for o in objects]
    with rasterio.open(out / 'big_mask.tif') as ds:
        labels = ds.read(1)
    assert ds.crs.to_epsg() == EPSG
    # object i is labelled i + 1; where objects overlap the later one wins
    for i, obj in enumerate(objects):
        assert int((labels == i + 1).sum()) <= obj['area']
    assert int((labels == len(objects)).sum()) == objects[-1]['area']
    assert labels.max() == len(objects)
