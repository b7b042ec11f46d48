"""DemoBackend: what the web demo shows, on the tiny model and synthetic
scenes, without a browser (tests/test_tools/test_demo_app.py drives the
page in headless Chromium)."""
import glob
import json
import shutil
import os.path as osp
import zipfile

import numpy as np
import pytest
from PIL import Image

from geopixel.apis import GeoPixelInferencer
from geopixel.apis.demo import (DemoBackend, DemoInputError, DemoLimits,
                                answer_html)
from geopixel.testing import demo_data, get_config, tiny_model
from geopixel.visualization import palette
from tests.test_apis.test_inferencer import GCG_CONFIG, seg_prone


@pytest.fixture(scope='module')
def backend(synthetic_root, tmp_path_factory):
    cfg = get_config(GCG_CONFIG, synthetic_root)
    model = tiny_model(cfg, generation_cfg=dict(max_new_tokens=24))
    model = seg_prone(model.eval(), demo_data(cfg, 'test', 2))
    inferencer = GeoPixelInferencer(model, cfg=cfg, device='cpu',
                                    show_progress=False)
    return DemoBackend(inferencer, DemoLimits(max_upload_mb=1,
                                              max_pixels=600 * 600),
                       out_dir=str(tmp_path_factory.mktemp('demo_out')))


@pytest.fixture(scope='module')
def scene(synthetic_root):
    """A synthetic test scene on which the [SEG]-prone model grounds."""
    return sorted(glob.glob(osp.join(synthetic_root, 'geopixeld/GeoPixelD',
                                     'test', '*.png')))[0]


def test_grounded_description_and_follow_up(backend, scene):
    first = backend.answer(scene, 'Grounded description')
    result = first.result
    assert result.task == 'gcg' and result.masks.shape[0] >= 1
    assert not first.image_cached
    assert first.labels == [f'{o.index + 1}: {o.phrase}'
                            for o in result.objects]
    assert first.colours == palette(len(first.labels))
    # one coloured chip per mask, in mask order
    for k in range(len(first.labels)):
        assert f'data-mask="{k}"' in first.html
    overlay = first.overlay()
    assert overlay.shape[0] >= 256 and overlay.shape[1] > 256
    # files: the JSON equals the result, the zip holds one PNG per mask
    json_path, zip_path = first.files
    with open(json_path) as f:
        assert json.load(f)['answer'] == result.answer
    with zipfile.ZipFile(zip_path) as zf:
        assert len(zf.namelist()) == len(first.labels)
    assert not first.georeferenced
    # a follow-up on the same bytes (another upload path) reuses the image
    copy = osp.join(osp.dirname(json_path), 'again.png')
    shutil.copy(scene, copy)
    follow = backend.answer(copy, 'Free question', 'What is in the image?')
    assert follow.image_cached
    assert follow.result.timings['vision'] == 0.0
    assert first.result.timings['vision'] > 0.0
    assert 'already encoded' in follow.timings_text()


def test_overlay_subset_keeps_colours(backend, scene):
    answer = backend.answer(scene, 'gcg')
    n = len(answer.labels)
    assert n >= 1
    h, w = answer.result.size
    # with no mask shown the image part is the image itself
    assert np.array_equal(answer.overlay([])[:h, :w], answer.result.image)
    # mask k alone is drawn in colour k, as in the full overlay
    last = n - 1
    alone = answer.overlay([last])[:h, :w].astype(int)
    mask = answer.result.masks[last]
    if mask.any():
        blend = (0.55 * answer.result.image[mask] +
                 0.45 * np.array(answer.colours[last]))
        inner = alone[mask]
        # most mask pixels are fill (the rest are the outline)
        close = np.abs(inner - blend).max(1) <= 1
        assert close.mean() > 0.3
    with pytest.raises(ValueError, match=f'no mask {n}'):
        answer.overlay([n])


def test_answer_html_colours_and_escapes():
    labels = ['1: tennis court', '2: <b>car</b>']
    colours = [(255, 0, 0), (0, 255, 0)]
    text = ('The <p> tennis court </p> [SEG] near the <p> <b>car</b> </p> '
            '[SEG] & more')
    out = answer_html(text, labels, colours)
    assert ('<span class="gp-phrase" data-mask="0" '
            'style="background:#ff0000">tennis court</span>') in out
    assert '&lt;b&gt;car&lt;/b&gt;</span>' in out
    assert '<b>' not in out and '&amp; more' in out
    # a [SEG] without a phrase (a referring answer) carries its label
    out = answer_html('Sure, it is [SEG].', ['1: the red ship'],
                      [(0, 0, 255)])
    assert '[1] the red ship</span>' in out
    assert '[1]</span>' in answer_html('It is [SEG].', ['1: mask 0'],
                                       [(0, 0, 255)])


def test_bad_uploads_get_messages(backend, tmp_path):
    text = tmp_path / 'notes.png'
    text.write_text('not an image at all')
    with pytest.raises(DemoInputError, match=r'notes\.png cannot be used'):
        backend.answer(str(text), 'gcg')
    other = tmp_path / 'table.csv'
    other.write_text('a,b\n1,2\n')
    with pytest.raises(DemoInputError, match=r'table\.csv'):
        backend.answer(str(other), 'gcg')
    big = tmp_path / 'big.png'
    Image.fromarray(np.zeros((700, 700, 3), np.uint8)).save(big)
    with pytest.raises(DemoInputError, match='over the limit'):
        backend.answer(str(big), 'gcg')
    heavy = tmp_path / 'heavy.png'
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (600, 600, 3), np.uint8)).save(heavy)
    with pytest.raises(DemoInputError, match='over the upload limit of 1 MB'):
        backend.answer(str(heavy), 'gcg')
    with pytest.raises(DemoInputError, match='Upload an image'):
        backend.answer(None, 'gcg')


def test_questions_are_checked(backend, scene):
    with pytest.raises(DemoInputError, match='Type the object'):
        backend.answer(scene, 'Referring segmentation', '  ')
    with pytest.raises(DemoInputError, match='Type a question'):
        backend.answer(scene, 'Free question', '')
    with pytest.raises(DemoInputError, match='Unknown task'):
        backend.answer(scene, 'translate')


def test_geotiff_gets_geojson(backend, tmp_path):
    pytest.importorskip('rasterio')
    from geopixel.datasets.synthetic import write_scene_geotiff
    tif = str(tmp_path / 'scene.tif')
    write_scene_geotiff(tif, 256, seed=7)
    answer = backend.answer(tif, 'gcg')
    assert answer.georeferenced
    geojson = [p for p in answer.files if p.endswith('.geojson')]
    assert len(geojson) == 1
    with open(geojson[0]) as f:
        features = json.load(f)['features']
    assert len(features) == len(answer.labels)


def test_limits_are_checked():
    with pytest.raises(ValueError, match='max_upload_mb'):
        DemoLimits(max_upload_mb=0)
    with pytest.raises(ValueError, match='max_pixels'):
        DemoLimits(max_pixels=-1)
