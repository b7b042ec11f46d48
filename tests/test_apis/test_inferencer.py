"""GeoPixelInferencer on the tiny model and the synthetic data.

The answers must be the model's own: the same ids and masks as
``GeoPixel.predict`` on the dataset's sample, one image at a time or
batched, fresh or from a cached image prefix.
"""
import copy
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from geopixel.apis import GeoPixelInferencer, InferenceResult
from geopixel.structures import seg_phrases
from geopixel.datasets.chat import (GCG_INFERENCE_QUESTION, INTERNLM2_CHAT,
                                    RRSIS_ANSWER, RRSIS_QUESTION)
from geopixel.datasets.transforms import FormatChat
from geopixel.registry import INFERENCERS
from geopixel.testing import demo_data, get_config, tiny_model
from geopixel.utils import BadRecordError, decode_rle
from geopixel.visualization import draw_grounded_masks, palette

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GCG_CONFIG = osp.join(REPO, 'geopixel/configs/geopixel/gcg_tiny.py')
RRSIS_CONFIG = osp.join(REPO, 'geopixel/configs/geopixel/rrsis_tiny.py')


def seg_prone(model, data):
    """Make [SEG] the answer wherever the untrained model would say its
    favourite token on ``data``, so generated answers hold masks, and end
    the answer where it would say its second favourite, so answers end at
    different lengths."""
    ids = torch.cat([ds.pred_ids for ds in model.test_step(data)])
    favourite, second = torch.bincount(ids).topk(2).indices.tolist()
    head = model.llm.llm.output.weight
    with torch.no_grad():
        head[model.seg_token_id] = head[favourite] * 1.05
        head[model.eos_token_ids[0]] = head[second] * 1.05
    return model


@pytest.fixture(scope='module')
def gcg_cfg(synthetic_root):
    return get_config(GCG_CONFIG, synthetic_root)


@pytest.fixture(scope='module')
def gcg_model(gcg_cfg):
    model = tiny_model(gcg_cfg, generation_cfg=dict(max_new_tokens=24))
    return seg_prone(model.eval(), demo_data(gcg_cfg, 'test', 2))


@pytest.fixture(scope='module')
def inferencer(gcg_cfg, gcg_model):
    return GeoPixelInferencer(gcg_model, cfg=gcg_cfg, device='cpu',
                              show_progress=False)


@pytest.fixture(scope='module')
def test_images(synthetic_root):
    """The test images first (the dataset's samples), then the others."""
    return [path for split in ('test', 'train') for path in sorted(
        glob.glob(osp.join(synthetic_root, 'geopixeld/GeoPixelD', split,
                           '*.png')))]


def same(a: InferenceResult, b: InferenceResult):
    assert a.ok and b.ok, (a.error, b.error)
    assert a.ids == b.ids
    assert a.answer == b.answer
    assert np.array_equal(a.masks, b.masks)


# -- the chat template's multi-turn prompt ---------------------------------
def test_prompt_after_continues_the_conversation():
    assert INTERNLM2_CHAT.prompt_after([], ' Hi ') == \
        INTERNLM2_CHAT.prompt('Hi')
    turns = [('user', 'What is it?'), ('assistant', 'A port.')]
    text = INTERNLM2_CHAT.prompt_after(turns, 'Where?')
    rendered = INTERNLM2_CHAT.render(turns)
    assert text.startswith(
        rendered[:-len(INTERNLM2_CHAT.end_of_conversation)])
    assert text.endswith(INTERNLM2_CHAT.prompt('Where?'))


def test_seg_phrases_label_every_seg():
    text = 'A <p>ship</p> [SEG] and [SEG] near <p>a pier</p>  [SEG].'
    assert seg_phrases(text) == ['ship', None, 'a pier']


# -- the pipeline ----------------------------------------------------------
def test_pipeline_drops_annotations_and_keeps_the_loader_settings(
        gcg_cfg, gcg_model, test_images):
    cfg = copy.deepcopy(gcg_cfg)
    cfg.test_dataloader.dataset.pipeline[0].update(max_pixels=100)
    inf = GeoPixelInferencer(gcg_model, cfg=cfg, show_progress=False)
    kinds = [s['type'].__name__ for s in inf.pipeline.steps]
    assert kinds == ['LoadInferenceImage', 'TileImage', 'PackGeoPixelInputs']
    with pytest.raises(BadRecordError, match='max_pixels=100'):
        inf.load(test_images[0], 'x')


def test_hd_num_rebuilds_the_tiler(inferencer, test_images):
    default = inferencer.load(test_images[0], 'a')
    four = inferencer.load(test_images[0], 'a', hd_num=4)
    assert default['packed']['data_samples'].hd_grid == (1, 1)
    assert four['packed']['data_samples'].hd_grid == (2, 2)
    assert four['num_image_tokens'] > default['num_image_tokens']
    result, = inferencer(test_images[0], hd_num=4)
    assert result.ok
    with pytest.raises(ValueError, match='hd_num'):
        inferencer.load(test_images[0], 'a', hd_num=0)


def test_tokenization_equals_the_dataset(inferencer, gcg_cfg, test_images):
    data = demo_data(gcg_cfg, 'test', 1)
    sample = data['data_samples'][0]
    item = inferencer.load(sample.img_path, 'x')
    encoded = inferencer.encode(item['num_image_tokens'],
                                GCG_INFERENCE_QUESTION, 'generate', 'x')
    assert encoded['ids'].tolist() == sample.input_ids.tolist()
    assert encoded['image_token_index'] == sample.image_token_index
    assert item['num_image_tokens'] == sample.num_image_tokens


# -- answers equal the model's own ------------------------------------------
def test_gcg_equals_predict_on_the_dataset_sample(inferencer, gcg_cfg,
                                                  gcg_model):
    data = demo_data(gcg_cfg, 'test', 2)
    expected = gcg_model.test_step(data)
    paths = [ds.img_path for ds in data['data_samples']]
    results = inferencer(paths, task='gcg')
    assert any(len(ds.pred_masks) for ds in expected)  # masks compared
    for ds, result in zip(expected, results):
        assert result.question == GCG_INFERENCE_QUESTION
        assert result.ids == ds.pred_ids.tolist()
        assert result.answer == ds.pred_text
        assert result.phrases == ds.pred_phrases
        assert np.array_equal(result.masks, (ds.pred_masks > 0).numpy())


def test_refer_teacher_forced_equals_predict(synthetic_root):
    cfg = get_config(RRSIS_CONFIG, synthetic_root)
    model = tiny_model(cfg).eval()
    assert model.predict_mode == 'teacher_forced'
    data = demo_data(cfg, 'test', 2)
    samples = [ds.clone() for ds in data['data_samples']]
    expected = model.test_step(data)
    inf = GeoPixelInferencer(model, cfg=cfg, show_progress=False)
    for ds, pred in zip(samples, expected):
        result, = inf(ds.img_path, task='refer', prompt=ds.ref_exp)
        assert result.answer_mode == 'teacher_forced'
        assert result.question == RRSIS_QUESTION.format(ref_exp=ds.ref_exp)
        assert result.answer == RRSIS_ANSWER and result.ids == []
        assert len(result.masks) == 1
        assert result.objects[0].phrase == ds.ref_exp
        assert np.array_equal(result.masks, (pred.pred_masks > 0).numpy())
    generated, = inf(samples[0].img_path, task='refer',
                     prompt=samples[0].ref_exp, answer_mode='generate')
    assert generated.answer_mode == 'generate' and generated.ids


def test_each_input_type_gives_the_same_answer(inferencer, test_images,
                                               tmp_path):
    path = test_images[0]
    by_path, = inferencer(path)
    rgb = np.asarray(Image.open(path).convert('RGB'))
    by_array, = inferencer(rgb)
    by_pil, = inferencer(Image.open(path))
    same(by_path, by_array)
    same(by_path, by_pil)
    assert by_path.name == osp.basename(path) and by_path.image_path == path
    assert by_array.name == 'image_0' and by_array.image_path is None
    folder = tmp_path / 'folder'
    folder.mkdir()
    for i, p in enumerate(test_images[:2]):
        Image.open(p).save(folder / f'{1 - i}.png')
    (folder / 'notes.txt').write_text('not an image')
    from_folder = inferencer(str(folder))
    assert [r.name for r in from_folder] == ['0.png', '1.png']
    same(from_folder[1], by_path)
    from_glob = inferencer(str(folder / '*.png'))
    assert [r.name for r in from_glob] == ['0.png', '1.png']


def test_batched_equals_one_at_a_time(inferencer, test_images):
    images = (test_images * 2)[:5]
    single = inferencer(images, batch_size=1)
    batched = inferencer(images, batch_size=4)
    assert len({len(r.ids) for r in single}) > 1  # answers of several lengths
    for a, b in zip(single, batched):
        same(a, b)


def test_questions_share_one_image_encoding(inferencer, test_images,
                                            monkeypatch):
    calls = []
    original = inferencer.model.image_contexts

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(inferencer.model, 'image_contexts', counting)
    questions = ['What is in the image?', 'How many ships?', 'Where?']
    results = inferencer(test_images[0], task='ask', prompt=questions)
    assert len(calls) == 1
    assert [r.question for r in results] == questions
    # the image stages count on the first answer only
    assert results[0].timings['vision'] > 0
    assert results[1].timings['vision'] == 0
    monkeypatch.undo()
    for question, result in zip(questions, results):
        same(result, inferencer(test_images[0], task='ask',
                                prompt=question)[0])


def test_session_cache_gives_the_fresh_answer(inferencer, test_images):
    session = inferencer.session(test_images[0])
    first = session.ask('Describe the harbour.')
    second = session.ask(task='gcg')
    fresh, = inferencer(test_images[0], task='gcg')
    same(second, fresh)
    same(first, inferencer(test_images[0], task='ask',
                           prompt='Describe the harbour.')[0])
    # chat: turn 2 from the cache equals turn 2 of a session without one
    one = session.chat('What is this?')
    two = session.chat('And next to it?')
    assert session.turns == [('user', 'What is this?'),
                             ('assistant', one.answer),
                             ('user', 'And next to it?'),
                             ('assistant', two.answer)]
    cold = inferencer.session(test_images[0])
    cold.turns = session.turns[:2]
    same(two, cold.chat('And next to it?'))
    session.reset()
    same(session.chat('What is this?'), one)


def test_chat_prompt_is_the_whole_conversation(inferencer, test_images):
    session = inferencer.session(test_images[0])
    one = session.chat('What is this?')
    item = session.item
    encoded = inferencer.encode(item['num_image_tokens'], 'Again?',
                                'generate', 'x', session.turns)
    chat = inferencer.chat_steps['generate']
    text = chat.tokenizer.decode(encoded['ids'].tolist())
    assert one.answer.strip() and one.answer.strip() in text
    assert text.count('What is this?') == 1
    assert text.endswith(INTERNLM2_CHAT.prompt('Again?'))


# -- results and their files -------------------------------------------------
def test_result_json_and_files(inferencer, test_images, tmp_path):
    result, = inferencer(test_images[0])
    assert len(result.masks) and result.masks.dtype == bool
    h, w = result.size
    for obj, mask in zip(result.objects, result.masks):
        assert np.array_equal(decode_rle(obj.rle, h, w), mask)
        assert obj.area == int(mask.sum())
        if obj.area:
            ys, xs = np.nonzero(mask)
            assert obj.bbox == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                ys.max() - ys.min() + 1]
    assert set(result.timings) == {'load', 'tiling', 'vision', 'grounding',
                                   'prefill', 'decode', 'masks'}
    paths = result.save(str(tmp_path), 'scene')
    data = json.load(open(tmp_path / 'scene.json'))
    assert data['answer'] == result.answer
    assert [m['rle'] for m in data['masks']] == [
        o.rle for o in result.objects]
    pngs = sorted(glob.glob(str(tmp_path / 'scene_mask*.png')))
    assert len(pngs) == len(result.masks)
    for k, png in enumerate(sorted(pngs, key=lambda p: int(
            osp.basename(p).split('_')[1][4:]))):
        pixels = np.asarray(Image.open(png))
        assert set(np.unique(pixels)) <= {0, 255}
        assert np.array_equal(pixels == 255, result.masks[k])
    overlay = np.asarray(Image.open(tmp_path / 'scene_overlay.png'))
    assert overlay.shape[0] >= h and overlay.shape[1] > w
    assert len(paths) == len(pngs) + 2
    # MMEngine's steps: overlays and JSON-ready predictions
    drawn, = inferencer.visualize([test_images[0]], [result])
    assert np.array_equal(drawn, overlay)
    assert inferencer.postprocess([result], [drawn])['predictions'] == [
        result.to_json()]


def test_outline_shows_on_a_scene_of_the_fill_colour():
    colour = palette(1)[0]
    image = np.empty((60, 60, 3), np.uint8)
    image[:] = colour
    mask = np.zeros((60, 60), bool)
    mask[20:40, 20:40] = True
    out = draw_grounded_masks(image, [mask], ['roof'], alpha=0.5)
    fill = out[30, 30].astype(int)
    assert np.abs(fill - colour).max() <= 1  # the fill alone is invisible
    for outline in (out[20, 30], out[21, 30]):  # outer and inner line
        assert np.abs(outline.astype(int) - colour).max() > 100
    assert tuple(out[5, 5]) == colour  # outside the mask, untouched


# -- bad inputs ---------------------------------------------------------------
def test_bad_images_are_named(inferencer, tmp_path):
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    garbage = tmp_path / 'garbage.png'
    garbage.write_bytes(b'not a png at all')
    with pytest.raises(BadRecordError, match='empty.png.*0 bytes'):
        inferencer(str(empty))
    with pytest.raises(BadRecordError, match='garbage.png'):
        inferencer(str(garbage))
    with pytest.raises(BadRecordError, match='image_0.*H x W x 3 uint8'):
        inferencer(np.zeros((8, 8), np.float32))
    with pytest.raises(BadRecordError, match='missing'):
        inferencer(str(tmp_path / 'nowhere.png'))


def test_folder_with_a_bad_file_answers_the_others(inferencer, test_images,
                                                   tmp_path):
    for i, p in enumerate(test_images[:2]):
        Image.open(p).save(tmp_path / f'{i}.png')
    (tmp_path / '1b.png').write_bytes(b'')
    results = inferencer(str(tmp_path), collect_errors=True, batch_size=2)
    assert [r.name for r in results] == ['0.png', '1.png', '1b.png']
    assert results[0].ok and results[1].ok
    assert not results[2].ok and '0 bytes' in results[2].error
    assert results[2].to_json()['error'] == results[2].error
    same(results[1], inferencer(test_images[1])[0])


def test_a_prompt_longer_than_the_context_is_named(gcg_cfg, gcg_model,
                                                   test_images):
    cfg = copy.deepcopy(gcg_cfg)
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] is FormatChat:
            step['max_length'] = 200
    inf = GeoPixelInferencer(gcg_model, cfg=cfg, show_progress=False)
    with pytest.raises(BadRecordError,
                       match=r'S000.*\.png.*\d+ tokens \(145 image \+ \d+ '
                       r'text\) exceeds max_length=200'):
        inf(test_images[0], task='ask', prompt='ship ' * 60)
    result, = inf(test_images[0], task='ask', prompt='ship ' * 60,
                  collect_errors=True)
    assert 'max_length=200' in result.error
    session = inf.session(test_images[0])
    with pytest.raises(BadRecordError, match='exceeds max_length=200'):
        for _ in range(20):
            session.chat('Tell me more about the ships in the harbour.')


def test_bad_arguments(inferencer, test_images):
    with pytest.raises(ValueError, match='task must be one of'):
        inferencer(test_images[0], task='caption')
    with pytest.raises(ValueError, match='needs a prompt'):
        inferencer(test_images[0], task='refer')
    with pytest.raises(ValueError, match='only task refer'):
        inferencer(test_images[0], answer_mode='teacher_forced')
    with pytest.raises(ValueError, match='cfg='):
        GeoPixelInferencer(inferencer.model)


# -- construction from a config and a checkpoint ------------------------------
def test_built_from_config_and_checkpoint(gcg_cfg, inferencer, test_images,
                                          tmp_path):
    from geopixel.checkpoint import CheckpointError
    path = str(tmp_path / 'model.pth')
    torch.save(inferencer.model.state_dict(), path)
    loaded = INFERENCERS.build(dict(type='GeoPixelInferencer', model=gcg_cfg,
                                    weights=path, show_progress=False))
    assert isinstance(loaded, GeoPixelInferencer)
    assert loaded.load_report == dict(missing=[], unexpected=[],
                                      mismatched=[])
    short = dict(max_new_tokens=24)  # as the fixture's model
    same(loaded(test_images[0], generation_cfg=short)[0],
         inferencer(test_images[0])[0])
    state = inferencer.model.state_dict()
    state.pop('seg_projector.fc.0.weight', None) or state.popitem()
    torch.save(state, path)
    with pytest.raises(CheckpointError, match='does not fit the model'):
        GeoPixelInferencer(gcg_cfg, weights=path)
    relaxed = GeoPixelInferencer(gcg_cfg, weights=path, strict=False,
                                 show_progress=False)
    assert len(relaxed.load_report['missing']) == 1


# -- scenes larger than a window ----------------------------------------------
def test_scene_mask_is_each_windows_own_answer_on_its_core(synthetic_root,
                                                          test_images,
                                                          tmp_path):
    rasterio = pytest.importorskip('rasterio')
    from geopixel.apis.scene import plan_windows
    cfg = get_config(RRSIS_CONFIG, synthetic_root)
    inf = GeoPixelInferencer(tiny_model(cfg).eval(), cfg=cfg,
                             show_progress=False)
    scene = np.concatenate([np.asarray(Image.open(p).convert('RGB'))
                            for p in test_images[:2]], axis=1)[:200]
    scene[:, -40:] = 0  # nodata on the right
    path = tmp_path / 'scene.tif'
    with rasterio.open(path, 'w', driver='GTiff', width=scene.shape[1],
                       height=scene.shape[0], count=3, dtype='uint8',
                       nodata=0) as ds:
        ds.write(scene.transpose(2, 0, 1))
    result = inf.predict_scene(str(path), 'refer', 'the ship', window=224,
                               overlap=48, out_dir=str(tmp_path / 'out'))
    plan = plan_windows(scene.shape[1], scene.shape[0], 224, 48)
    assert result.counts['windows'] == len(plan) == 3
    with rasterio.open(tmp_path / 'out' / 'scene_mask.tif') as ds:
        stitched = ds.read(1).astype(bool)
    for win in plan:
        rgb = scene[win.y0:win.y0 + win.height, win.x0:win.x0 + win.width]
        own, = inf(rgb, task='refer', prompt='the ship')
        expected = own.masks[0] & rgb.any(-1)
        core = stitched[win.core_y0:win.core_y1, win.core_x0:win.core_x1]
        assert np.array_equal(core, expected[win.core_slices])
    assert result.mask.area == int(stitched.sum())


@pytest.mark.parametrize('count', [1, 12])
def test_tiffs_of_1_or_12_bands_need_a_band_choice(inferencer, test_images,
                                                   tmp_path, count):
    """Without the GIS extra too: the config's loader reads the TIFF."""
    tifffile = pytest.importorskip('tifffile')
    rgb = np.asarray(Image.open(test_images[0]))
    bands = np.stack([rgb[..., i % 3] for i in range(count)]).astype(
        np.uint16) * 257
    path = str(tmp_path / f'b{count}.tif')
    if count == 1:
        tifffile.imwrite(path, bands[0], photometric='minisblack')
    else:  # one page of 12 samples per pixel
        tifffile.imwrite(path, bands, photometric='minisblack',
                         planarconfig='separate')
    problem = 'single-band raster.*bands=\\(1, 1, 1\\)' if count == 1 else \
        '12 bands.*bands=\\('
    with pytest.raises(BadRecordError, match=f'b{count}.tif.*{problem}'):
        inferencer(path)
    inf = GeoPixelInferencer(inferencer.model, cfg=inferencer.cfg,
                             bands=(1, 2, 3) if count > 1 else (1, 1, 1),
                             show_progress=False)
    result, = inf(path, generation_cfg=dict(max_new_tokens=2))
    assert result.ok and result.size == rgb.shape[:2]
