"""The browsable report of an annotation output folder: page content,
overlay images, the deterministic sample and the errors."""
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
from PIL import Image

from geopixel.annotation.report import SIDE_BY_SIDE_GAP, write_report
from geopixel.utils import BadRecordError

H, W = 96, 128
SHIP = [[[10, 10], [30, 10], [30, 30], [10, 30]]]  # one instance
CARS = [  # a group of two squares, one mask
    [[60, 10], [80, 10], [80, 25], [60, 25]],
    [[60, 40], [80, 40], [80, 55], [60, 55]],
]
FREE = (slice(70, H), slice(90, W))  # far from every mask and marker
GCG_QUESTION = 'Could you perform an in-depth analysis of this photo?'


def patch_pixels(seed):
    """A smooth RGB patch in [30, 200], different per seed."""
    ys, xs = np.mgrid[0:H, 0:W]
    image = np.stack(
        [30 + (ys + seed * 7) % 170, 30 + (xs * 2) % 170,
         30 + (ys + xs + seed) % 170], -1)
    return image.astype(np.uint8)


def write_output(out, num=3, marked=(0, ), summary=True):
    """An annotation output folder as the spec lays it out, one ship
    (instance, marker 1) and one group of two small vehicles per patch."""
    split = osp.join(out, 'GeoPixelD', 'train')
    os.makedirs(split)
    os.makedirs(osp.join(out, 'marked'))
    records = []
    for i in range(num):
        stem = f'P{i:04d}_0_{H}_0_{W}'
        description = (f'The image {i} shows a harbour. The <p> ship-1 </p> '
                       '[SEG] lies at the top left. Two <p> small vehicles-2 '
                       '</p> [SEG] are parked at the top right.')
        Image.fromarray(patch_pixels(i)).save(osp.join(split, stem + '.png'))
        if i in marked:
            Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(
                osp.join(out, 'marked', stem + '.png'))
        content = {
            'id': i, 'img': f'GeoPixelD/train/{stem}.png', 'height': H,
            'width': W, 'gcg_description': description,
            'polygons': [SHIP, CARS], 'num_instances': [1, 2],
            'phrases': [
                {'phrase': 'ship-1', 'level': 'instance',
                 'category': 'ship', 'num_instances': 1,
                 'position': 'top left', 'marker': 1,
                 'annotation_ids': [7]},
                {'phrase': 'small vehicles-2', 'level': 'group',
                 'category': 'small vehicle', 'num_instances': 2,
                 'position': 'top right', 'marker': None,
                 'annotation_ids': [8, 9]}],
            'markers': [{'number': 1, 'x': 20, 'y': 20, 'small': False,
                         'box': [13, 13, 27, 27]}],
            'texts': {'holistic': f'Docks <north> & piers {i}.',
                      'instances': ['A grey <p> ship-1 </p>.'],
                      'groups': ['Two small vehicles.'],
                      'unified': 'unified text', 'final': description},
            'annotation': {'backend': {'type': 'template'},
                           'paraphrase_attempts': 2,
                           'paraphrase_fallback': True,
                           'filtered': {'marker ids': 1}}}
        with open(osp.join(split, stem + '.json'), 'w') as f:
            json.dump(content, f)
        records.append({
            'id': i,
            'conversations': [{'from': 'human', 'value': GCG_QUESTION},
                              {'from': 'bot', 'value': description}],
            'image': f'GeoPixelD/train/{stem}.png',
            'polygons': f'GeoPixelD/train/{stem}.json'})
    with open(osp.join(out, 'GeoPixelD.json'), 'w') as f:
        json.dump(records, f)
    if summary:
        with open(osp.join(out, 'summary.json'), 'w') as f:
            json.dump({'images': num, 'phrases': 2 * num,
                       'objects': 3 * num, 'holistic': num,
                       'instance': num, 'group': num,
                       'categories': {'ship': num, 'small vehicle': 2 * num},
                       'backend': 'template'}, f)
    return out


def stems_in(page):
    return re.findall(r'<h2>(P\d{4}_[\d_]+)</h2>', page)


def span_colours(page):
    """phrase text -> background colour of its first coloured span."""
    found = re.findall(r'background:#([0-9a-f]{6})"[^>]*>([^<]+)</span>',
                       page)
    return {text: tuple(int(c[i:i + 2], 16) for i in (0, 2, 4))
            for c, text in reversed(found)}


def test_report_page_shows_samples_phrases_texts_and_summary(tmp_path):
    out = write_output(str(tmp_path / 'out'))
    index = write_report(out)
    assert index == osp.join(out, 'report', 'index.html')
    page = open(index, encoding='utf-8').read()
    assert stems_in(page) == [f'P{i:04d}_0_{H}_0_{W}' for i in range(3)]
    # phrases with their kind, escaped raw texts, annotation info
    assert page.count('ship-1 (instance)</span>') == 3
    assert page.count('small vehicles-2 (group of 2)</span>') == 3
    assert 'Docks &lt;north&gt; &amp; piers 0.' in page
    assert '<north>' not in page
    assert 'paraphrase attempts</dt><dd>2</dd>' in page
    assert 'paraphrase fallback</dt><dd>True</dd>' in page
    assert 'The image 1 shows a harbour. The ' in page
    # summary numbers, including a nested dict of counts
    for key, value in (('images', 3), ('phrases', 6), ('objects', 9),
                       ('group', 3), ('categories / small vehicle', 6)):
        assert f'<tr><th>{key}</th><td>{value}</td></tr>' in page
    # self-contained: no external resources
    assert 'http' not in page.replace(osp.abspath(out), '')
    assert '<script' not in page and '<link' not in page


def test_overlays_colour_the_masks_and_leave_the_rest(tmp_path):
    out = write_output(str(tmp_path / 'out'), marked=(0, ))
    page = open(write_report(out), encoding='utf-8').read()
    colours = span_colours(page)
    images = osp.join(out, 'report', 'images')
    for i in range(3):
        stem = f'P{i:04d}_0_{H}_0_{W}'
        assert f'src="images/{stem}.png"' in page
        overlay = np.asarray(Image.open(osp.join(images, stem + '.png')))
        # patch 0 has a marked image beside it
        width = 2 * W + SIDE_BY_SIDE_GAP if i == 0 else W
        assert overlay.shape == (H, width, 3)
        if i == 0:
            assert (overlay[:, W + SIDE_BY_SIDE_GAP:] == 0).all()
            assert (overlay[:, W:W + SIDE_BY_SIDE_GAP] == 255).all()
        source = patch_pixels(i).astype(int)
        left = overlay[:, :W].astype(int)
        assert (left[FREE] == source[FREE]).all()
        # inside each mask (away from its outline) the pixels changed, to
        # the average of the patch and the phrase's colour
        for phrase, (ys, xs) in (('ship-1 (instance)', (slice(12, 29),
                                                        slice(28, 29))),
                                 ('small vehicles-2 (group of 2)',
                                  (slice(12, 24), slice(62, 79)))):
            inside = (ys, xs)
            assert (left[inside] != source[inside]).any(-1).all()
            colour = 2 * left[inside] - source[inside]
            assert np.abs(colour - colours[phrase]).max() <= 2
        # the marker box is drawn (black fill, white digit)
        box = left[13:27, 13:27]
        assert (box == 0).all(-1).mean() > 0.5


def test_sample_is_deterministic_and_of_the_asked_size(tmp_path):
    out = write_output(str(tmp_path / 'out'), num=7)
    pages = [
        open(write_report(out, str(tmp_path / name), num_samples=3, seed=5),
             encoding='utf-8').read() for name in ('a', 'b')
    ]
    stems = stems_in(pages[0])
    assert len(stems) == 3 and stems == stems_in(pages[1])
    assert stems == sorted(stems)
    assert '3 of 7 patches, sampled with seed 5' in pages[0]
    images = sorted(os.listdir(tmp_path / 'a' / 'images'))
    assert images == [s + '.png' for s in stems]
    others = {
        tuple(stems_in(open(write_report(out, str(tmp_path / f's{seed}'),
                                         num_samples=3, seed=seed),
                            encoding='utf-8').read()))
        for seed in range(6)
    }
    assert len(others) > 1  # the seed does choose


def test_report_without_summary_or_marked_images(tmp_path):
    out = write_output(str(tmp_path / 'out'), num=2, marked=(),
                       summary=False)
    page = open(write_report(out), encoding='utf-8').read()
    assert 'No summary.json' in page
    image = Image.open(
        osp.join(out, 'report', 'images', f'P0000_0_{H}_0_{W}.png'))
    assert image.size == (W, H)


def edit_json(path, change):
    with open(path) as f:
        content = json.load(f)
    change(content)
    with open(path, 'w') as f:
        json.dump(content, f)


def test_missing_annotation_file_is_named(tmp_path):
    with pytest.raises(BadRecordError, match='GeoPixelD.json.*missing'):
        write_report(str(tmp_path))


@pytest.mark.parametrize('suffix', ['.json', '.png'])
def test_missing_per_image_file_names_record(tmp_path, suffix):
    out = write_output(str(tmp_path / 'out'))
    missing = osp.join(out, 'GeoPixelD', 'train', f'P0002_0_{H}_0_{W}')
    os.remove(missing + suffix)
    # even a record the sample leaves out must exist
    with pytest.raises(BadRecordError) as err:
        write_report(out, num_samples=1)
    message = str(err.value)
    assert f'P0002_0_{H}_0_{W}{suffix}' in message
    assert 'record #2 (id 2)' in message
    assert not osp.exists(osp.join(out, 'report', 'index.html'))


def test_polygon_count_must_match_seg_count(tmp_path):
    out = write_output(str(tmp_path / 'out'))
    path = osp.join(out, 'GeoPixelD', 'train', f'P0001_0_{H}_0_{W}.json')
    edit_json(path, lambda c: c['polygons'].append(SHIP))
    with pytest.raises(BadRecordError) as err:
        write_report(out)
    message = str(err.value)
    assert path in message and 'record #1 (id 1)' in message
    assert '2 [SEG] token(s)' in message and '3 mask(s)' in message
    # nothing written before the check
    assert not osp.exists(osp.join(out, 'report'))


def test_phrase_metadata_must_match_the_description(tmp_path):
    out = write_output(str(tmp_path / 'out'), num=1)
    path = osp.join(out, 'GeoPixelD', 'train', f'P0000_0_{H}_0_{W}.json')
    edit_json(path, lambda c: c['phrases'][1].update(phrase='cars-2'))
    with pytest.raises(BadRecordError, match="phrase 1 is 'cars-2'"):
        write_report(out)
