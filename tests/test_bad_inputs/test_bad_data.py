"""Bad data inputs: images, annotations, refs (the data part of the corpus).

Each case copies the synthetic dataset (every layout) into ``tmp_path``,
breaks one thing, and says what must happen:

* ``file``: the whole file is unusable; both policies raise a
  ``BadRecordError`` naming the file and the problem;
* ``load``: one record is bad; ``'raise'`` names file, record and problem
  while loading, ``'skip'`` counts it and keeps every other sample;
* ``runtime``: found while a sample is read; ``'raise'`` names it on that
  sample only, ``'skip'`` counts it and serves every other sample;
* ``ok``: an input that used to be decoded wrongly now reads correctly.
"""
import json
import pickle
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np
import pytest
from PIL import Image

from geopixel.datasets import (
    GeoPixelDDataset,
    ISAIDDataset,
    LoadGroundingMasks,
    LoadImageRGB,
    LoadInstanceAnnotations,
    RRSISDDataset,
)
from geopixel.utils import BadRecordError

GEO_IMAGE = 'S00000_0_256_0_256'  # the image of GeoPixelD record #0
GEO_RECORD = '#0 (id 0)'


@dataclass
class Expect:
    layout: str  # 'geopixeld', 'rrsisd' or 'isaid'
    level: str  # 'file', 'load', 'runtime' or 'ok'
    file: str  # a fragment of the file the message names
    record: Optional[str] = None  # a fragment of the record it names
    words: Tuple[str, ...] = ()  # words for the problem
    lost: int = 1  # samples the bad record accounts for
    skipped: int = 1  # records counted as skipped at load
    image_kw: dict = field(default_factory=dict)  # LoadImageRGB options
    check: Optional[Callable] = None  # 'ok': check(img); 'file': check()


# -- datasets ---------------------------------------------------------------
def pipeline(image_kw, annotations=LoadGroundingMasks):
    return [dict(type=LoadImageRGB, **image_kw), dict(type=annotations)]


def geopixeld(root, policy, **image_kw):
    return GeoPixelDDataset(
        ann_file=str(root / 'geopixeld' / 'GeoPixelD.json'),
        pipeline=pipeline(image_kw), on_bad_record=policy)


def rrsisd(root, policy, **image_kw):
    return RRSISDDataset(
        data_root=str(root / 'rrsisd'), split='train',
        pipeline=pipeline(image_kw), on_bad_record=policy)


def isaid(root, policy, **image_kw):
    return ISAIDDataset(
        data_root=str(root / 'isaid'),
        ann_file='annotations/instancesonly_filtered_train.json',
        data_prefix=dict(img_path='images/train/'),
        pipeline=pipeline(image_kw, LoadInstanceAnnotations),
        on_bad_record=policy)


LAYOUTS = dict(geopixeld=geopixeld, rrsisd=rrsisd, isaid=isaid)


# -- editing helpers --------------------------------------------------------
def edit_json(path: Path, fn):
    with open(path) as f:
        content = json.load(f)
    content = fn(content)
    with open(path, 'w') as f:
        json.dump(content, f)  # NaN/Infinity/\ud800 written as JSON allows


def geo_dir(root):
    return root / 'geopixeld' / 'GeoPixelD' / 'train'


def edit_geo_records(root, fn):
    edit_json(root / 'geopixeld' / 'GeoPixelD.json', fn)


def edit_first_polygons(root, fn):
    def edit(content):
        content['polygons'] = fn(content['polygons'])
        return content

    edit_json(geo_dir(root) / f'{GEO_IMAGE}.json', edit)


def original_image(root):
    return np.array(Image.open(geo_dir(root) / f'{GEO_IMAGE}.png'))


def use_image_for_first_record(root, name):
    def edit(records):
        records[0]['image'] = f'data/GeoPixelD/train/{name}'
        return records

    edit_geo_records(root, edit)


def refs_path(root):
    return root / 'rrsisd' / 'rrsisd' / 'refs(unc).p'


def edit_refs(root, fn):
    with open(refs_path(root), 'rb') as f:
        refs = pickle.load(f)
    fn(refs)
    with open(refs_path(root), 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    return refs


def first_train_ref(refs):
    return next(r for r in refs if r['split'] == 'train')


def instances_path(root):
    return root / 'rrsisd' / 'rrsisd' / 'instances.json'


def isaid_ann(root):
    return (root / 'isaid' / 'annotations' /
            'instancesonly_filtered_train.json')


def png_header(width, height):
    """A PNG whose header declares ``width`` x ``height`` (no pixels)."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data)))

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
            chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


def write_tiff(root, bands, name=f'{GEO_IMAGE}.tif'):
    """The first image as 12-bit values in uint16, plus random bands."""
    import tifffile
    rgb = original_image(root).astype(np.uint16) * 16 + 100
    rng = np.random.default_rng(0)
    extra = rng.integers(0, 4096, rgb.shape[:2] + (max(bands - 3, 0), ))
    data = np.concatenate([rgb, extra.astype(np.uint16)], axis=-1)
    data = data[..., :bands]
    kwargs = (dict(photometric='rgb') if bands == 3 else
              dict(photometric='minisblack', planarconfig='contig'))
    tifffile.imwrite(geo_dir(root) / name, data, **kwargs)
    use_image_for_first_record(root, name)
    return geo_dir(root) / name, data


def stretched_from(data):
    """Check: each band's 2nd-98th percentiles mapped linearly to 0-255.

    (PIL alone keeps the high byte: these 12-bit values were near-black.)
    """
    def check(img):
        assert img.shape == data.shape and img.dtype == np.uint8
        for c in range(3):
            band = data[..., c].astype(float)
            lo, hi = np.percentile(band, (2, 98))
            expected = np.clip((band - lo) * 255 / (hi - lo), 0, 255)
            assert np.abs(img[..., c] - expected).max() <= 1
        assert img.mean() > 60 and (data >> 8).mean() < 20

    return check


# -- image cases ------------------------------------------------------------
def png_header_60000(root):
    (geo_dir(root) / f'{GEO_IMAGE}.png').write_bytes(png_header(60000, 60000))
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.png', GEO_RECORD,
                  ('60000x60000', 'max_pixels', 'raise the limit'))


def png_truncated(root):
    path = geo_dir(root) / f'{GEO_IMAGE}.png'
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.png', GEO_RECORD,
                  ('corrupt image', 'truncated'))


def image_zero_bytes(root):
    (geo_dir(root) / f'{GEO_IMAGE}.png').write_bytes(b'')
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.png', GEO_RECORD,
                  ('empty', '0 bytes'))


def text_file_named_png(root):
    (geo_dir(root) / f'{GEO_IMAGE}.png').write_text('not an image\n')
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.png', GEO_RECORD,
                  ('not a readable image', ))


def tiff_16bit_3band(root):
    _, data = write_tiff(root, 3)
    return Expect('geopixeld', 'ok', f'{GEO_IMAGE}.tif', GEO_RECORD,
                  check=stretched_from(data))


def tiff_16bit_4band_without_bands(root):
    write_tiff(root, 4)
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.tif', GEO_RECORD,
                  ('4 bands', 'uint16', 'bands=(r, g, b)', 'from 1'))


def tiff_16bit_4band_with_bands(root):
    _, data = write_tiff(root, 4)
    return Expect('geopixeld', 'ok', f'{GEO_IMAGE}.tif', GEO_RECORD,
                  image_kw=dict(bands=(3, 2, 1)),
                  check=stretched_from(data[..., [2, 1, 0]]))


def tiff_16bit_2band(root):
    write_tiff(root, 2)
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.tif', GEO_RECORD,
                  ('2 bands', 'bands=(r, g, b)'))


def tiff_compression_needs_imagecodecs(root):
    """A multi-band TIFF marked LZW, which tifffile needs imagecodecs for."""
    path, _ = write_tiff(root, 4)
    data = bytearray(path.read_bytes())
    assert data[:4] == b'II*\x00'
    ifd = struct.unpack('<I', data[4:8])[0]
    for k in range(struct.unpack('<H', data[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack('<H', data[entry:entry + 2])[0] == 259:
            data[entry + 8:entry + 10] = struct.pack('<H', 5)  # LZW
    path.write_bytes(bytes(data))
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.tif', GEO_RECORD,
                  ('LZW', 'pip install imagecodecs'))


def size_disagrees_with_patch_name(root):
    path = geo_dir(root) / f'{GEO_IMAGE}.png'
    Image.fromarray(original_image(root)[:240]).save(path)
    return Expect('geopixeld', 'runtime', 'GeoPixelD.json', GEO_RECORD,
                  ('iSAID patch name', 'gives the image as 256x256',
                   f'{GEO_IMAGE}.png is 256x240'))


def size_disagrees_with_record(root):
    def edit(records):
        records[0].update(height=300, width=256)
        return records

    edit_geo_records(root, edit)
    return Expect('geopixeld', 'runtime', 'GeoPixelD.json', GEO_RECORD,
                  ("record's height/width", 'as 256x300', 'is 256x256'))


def isaid_size_disagrees_with_coco(root):
    def edit(coco):
        coco['images'][0]['height'] = 300
        return coco

    edit_json(isaid_ann(root), edit)
    return Expect('isaid', 'runtime', 'instancesonly_filtered_train.json',
                  'image_id 0',
                  ('COCO image entry', 'as 256x300', 'is 256x256'))


def rrsisd_size_disagrees_with_instances(root):
    refs = edit_refs(root, lambda refs: None)
    image_id = first_train_ref(refs)['image_id']

    def edit(coco):
        image = next(i for i in coco['images'] if i['id'] == image_id)
        image['width'] = 999
        return coco

    edit_json(instances_path(root), edit)
    lost = sum(len(r['sentences']) for r in refs
               if r['split'] == 'train' and r['image_id'] == image_id)
    return Expect('rrsisd', 'runtime', 'refs(unc).p', 'ref_id',
                  ('instances.json (image', 'as 999x256', 'is 256x256'),
                  lost=lost)


# -- annotation cases (GeoPixelD) --------------------------------------------
def set_first_point(root, value):
    def edit(polygons):
        polygons[0][0][1] = value
        return polygons

    edit_first_polygons(root, edit)


def coordinate_1e30(root):
    set_first_point(root, [1e30, 5])
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.json', GEO_RECORD,
                  ('mask 0', 'x = 1e+30', 'outside the allowed range',
                   '[-256, 512]'))


def coordinate_minus_1e30(root):
    set_first_point(root, [5, -1e30])
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.json', GEO_RECORD,
                  ('mask 0', 'y = -1e+30', 'outside the allowed range'))


def coordinate_nan(root):
    set_first_point(root, [float('nan'), 5])
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.json', GEO_RECORD,
                  ('mask 0', 'x = nan', 'must be finite'))


def coordinate_inf(root):
    set_first_point(root, [5, float('inf')])
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.json', GEO_RECORD,
                  ('mask 0', 'y = inf', 'must be finite'))


def coordinate_as_string(root):
    set_first_point(root, ['12', 5])
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.json', GEO_RECORD,
                  ('mask 0', 'must be numbers', "str '12'"))


def polygon_not_nested(root):
    edit_first_polygons(root, lambda p: [p[0][0]] + p[1:])
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.json', GEO_RECORD,
                  ('mask 0', 'single point', 'nesting'))


def empty_polygon_list(root):
    edit_first_polygons(root, lambda p: [[]] + p[1:])
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.json', GEO_RECORD,
                  ('mask 0: empty polygon list', ))


def seg_count_differs_from_masks(root):
    edit_first_polygons(root, lambda p: p[:-1])
    return Expect('geopixeld', 'runtime', f'{GEO_IMAGE}.json', GEO_RECORD,
                  ('[SEG] token(s) but', 'mask(s)'))


def rle_counts_too_short(root):
    def edit(records):
        record = records[0]
        segs = sum(t['value'].count('[SEG]')
                   for t in record['conversations'])
        del record['polygons']
        record['segmentation'] = [dict(size=[256, 256], counts=[10, 20])
                                  ] * segs
        return records

    edit_geo_records(root, edit)
    return Expect('geopixeld', 'runtime', 'GeoPixelD.json', GEO_RECORD,
                  ('mask 0', 'counts sum to 30', '65536 pixels'))


def annotation_json_is_a_number(root):
    edit_geo_records(root, lambda records: 42)
    return Expect('geopixeld', 'file', 'GeoPixelD.json', None,
                  ('expected a JSON list of records', ))


def conversations_as_string(root):
    def edit(records):
        records[0]['conversations'] = 'Describe the image.'
        return records

    edit_geo_records(root, edit)
    return Expect('geopixeld', 'load', 'GeoPixelD.json', GEO_RECORD,
                  ('"conversations" must be a non-empty list', ))


def lone_surrogate_in_answer(root):
    def edit(records):
        records[0]['conversations'][1]['value'] += ' \ud800'
        return records

    edit_geo_records(root, edit)
    return Expect('geopixeld', 'load', 'GeoPixelD.json', GEO_RECORD,
                  ('conversation turn 1', "'\\ud800'", 'position',
                   'surrogates not allowed'))


# -- refs and instances (RRSIS-D, iSAID) -------------------------------------
def instances_json_is_a_list(root):
    edit_json(instances_path(root), lambda coco: coco['annotations'])
    return Expect('rrsisd', 'file', 'instances.json', None,
                  ('expected a COCO JSON object', 'got a JSON list'))


def annotation_without_id(root):
    refs = edit_refs(root, lambda refs: None)
    ann_id = first_train_ref(refs)['ann_id']
    position = {}

    def edit(coco):
        k = next(k for k, a in enumerate(coco['annotations'])
                 if a['id'] == ann_id)
        position['k'] = k
        del coco['annotations'][k]['id']
        return coco

    edit_json(instances_path(root), edit)
    pointing = [r for r in refs
                if r['split'] == 'train' and r['ann_id'] == ann_id]
    # the annotation itself, and each train ref that points at it
    return Expect('rrsisd', 'load', 'instances.json',
                  f'annotation #{position["k"]}', ('has no "id"', ),
                  lost=sum(len(r['sentences']) for r in pointing),
                  skipped=1 + len(pointing))


def first_ref_case(edit, words, lost_fn=None, record_suffix=''):
    """A load-level case that edits the first train ref with ``edit``."""
    def case(root):
        holder = {}

        def apply(refs):
            ref = first_train_ref(refs)
            holder['lost'] = (lost_fn(ref) if lost_fn else
                              len(ref['sentences']))
            holder['record'] = (f'ref_id {ref["ref_id"]} '
                                f'(#{refs.index(ref)}){record_suffix}')
            edit(ref)

        edit_refs(root, apply)
        return Expect('rrsisd', 'load', 'refs(unc).p', holder['record'],
                      words, lost=holder['lost'])

    case.__name__ = edit.__name__
    return case


def sentences_as_string(ref):
    ref['sentences'] = 'the swimming pool'


def sentence_without_text(ref):
    del ref['sentences'][0]['raw'], ref['sentences'][0]['sent']


def lone_surrogate_in_sentence(ref):
    ref['sentences'][-1]['raw'] = 'the pool \ud800 at left'


def ref_ann_id_is_a_list(ref):
    ref['ann_id'] = [ref['ann_id']]


def ref_without_split(ref):
    del ref['split']


def refs_pickle_with_code(root):
    marker = root / 'pwned'

    class Evil:
        def __reduce__(self):
            return (shutil.copyfile, (str(refs_path(root)), str(marker)))

    with open(refs_path(root), 'wb') as f:
        pickle.dump([Evil()], f)
    return Expect('rrsisd', 'file', 'refs(unc).p', None,
                  ('refusing to load shutil.copyfile', ),
                  check=lambda: not marker.exists())


def refs_pickle_truncated(root):
    data = refs_path(root).read_bytes()
    refs_path(root).write_bytes(data[:len(data) // 2])
    return Expect('rrsisd', 'file', 'refs(unc).p', None,
                  ('cannot read refs pickle', ))


def rrsisd_coordinate_1e30(root):
    refs = edit_refs(root, lambda refs: None)
    ann_id = first_train_ref(refs)['ann_id']

    def edit(coco):
        ann = next(a for a in coco['annotations'] if a['id'] == ann_id)
        ann['segmentation'][0][0] = 1e30
        return coco

    edit_json(instances_path(root), edit)
    lost = sum(len(r['sentences']) for r in refs
               if r['split'] == 'train' and r['ann_id'] == ann_id)
    return Expect('rrsisd', 'runtime', 'instances.json',
                  f'annotation {ann_id}',
                  ('x = 1e+30', 'outside the allowed range'), lost=lost)


def isaid_annotation_without_id(root):
    position = {}

    def edit(coco):
        k = next(k for k, a in enumerate(coco['annotations'])
                 if a['image_id'] == 0)
        del coco['annotations'][k]['id']
        position['k'] = k
        return coco

    edit_json(isaid_ann(root), edit)
    return Expect('isaid', 'load', 'instancesonly_filtered_train.json',
                  f'image_id 0 annotation #{position["k"]}',
                  ('annotation "id" must be an integer', ))


def isaid_annotation_of_unknown_image(root):
    def edit(coco):
        coco['annotations'][0]['image_id'] = 9999
        return coco

    edit_json(isaid_ann(root), edit)
    return Expect('isaid', 'load', 'instancesonly_filtered_train.json',
                  'annotation #0', ('points at image 9999', 'not in'),
                  lost=0)


CASES = [
    png_header_60000,
    png_truncated,
    image_zero_bytes,
    text_file_named_png,
    tiff_16bit_3band,
    tiff_16bit_4band_without_bands,
    tiff_16bit_4band_with_bands,
    tiff_16bit_2band,
    tiff_compression_needs_imagecodecs,
    size_disagrees_with_patch_name,
    size_disagrees_with_record,
    isaid_size_disagrees_with_coco,
    rrsisd_size_disagrees_with_instances,
    coordinate_1e30,
    coordinate_minus_1e30,
    coordinate_nan,
    coordinate_inf,
    coordinate_as_string,
    polygon_not_nested,
    empty_polygon_list,
    seg_count_differs_from_masks,
    rle_counts_too_short,
    annotation_json_is_a_number,
    conversations_as_string,
    lone_surrogate_in_answer,
    instances_json_is_a_list,
    annotation_without_id,
    first_ref_case(sentences_as_string, ('"sentences" must be a list', )),
    first_ref_case(sentence_without_text, ('has no text', '"raw"'),
                   lambda ref: 1, ' sentence 0'),
    first_ref_case(lone_surrogate_in_sentence,
                   ("'\\ud800'", 'position 9', 'not encodable'),
                   lambda ref: 1),
    first_ref_case(ref_ann_id_is_a_list,
                   ('"ann_id" must be an integer id', )),
    first_ref_case(ref_without_split, ('needs a "split"', )),
    refs_pickle_with_code,
    refs_pickle_truncated,
    rrsisd_coordinate_1e30,
    isaid_annotation_without_id,
    isaid_annotation_of_unknown_image,
]


def assert_names(message: str, expect: Expect):
    assert expect.file in message, message
    if expect.record is not None:
        assert expect.record in message, message
    for word in expect.words:
        assert word in message, message


def record_ids(dataset):
    return [
        dataset.get_data_info(i)['record_id'] for i in range(len(dataset))
    ]


@pytest.mark.parametrize('case', CASES, ids=[c.__name__ for c in CASES])
def test_bad_data(case, synthetic_root, tmp_path):
    if case is tiff_compression_needs_imagecodecs:
        try:
            import imagecodecs  # noqa: F401
            pytest.skip('imagecodecs is installed: LZW decodes')
        except ImportError:
            pass
    root = tmp_path / 'data'
    shutil.copytree(synthetic_root, root)
    pil_limit = Image.MAX_IMAGE_PIXELS
    expect = case(root)
    make = LAYOUTS[expect.layout]
    clean_ids = record_ids(
        make(Path(synthetic_root), 'raise', **expect.image_kw))

    if expect.level == 'file':
        for policy in ('raise', 'skip'):
            with pytest.raises(BadRecordError) as err:
                make(root, policy, **expect.image_kw)
            assert_names(str(err.value), expect)
        if expect.check is not None:
            assert expect.check()
    elif expect.level == 'load':
        with pytest.raises(BadRecordError) as err:
            make(root, 'raise', **expect.image_kw)
        assert_names(str(err.value), expect)
        dataset = make(root, 'skip', **expect.image_kw)
        assert dataset.bad_record_summary()['skipped_at_load'] == \
            expect.skipped
        assert any(expect.record in m for m in dataset.load_skipped)
        kept = record_ids(dataset)
        assert len(kept) == len(clean_ids) - expect.lost
        assert set(kept) <= set(clean_ids)
        for idx in range(len(dataset)):  # and every kept sample reads
            assert dataset[idx]['record_id'] == kept[idx]
    elif expect.level == 'runtime':
        dataset = make(root, 'raise', **expect.image_kw)
        assert record_ids(dataset) == clean_ids
        bad = []
        for idx in range(len(dataset)):
            try:
                dataset[idx]
            except BadRecordError as err:
                assert_names(str(err), expect)
                bad.append(idx)
        assert len(bad) == expect.lost
        dataset = make(root, 'skip', **expect.image_kw)
        for idx in range(len(dataset)):
            sample = dataset[idx]  # a bad one is replaced by another
            if idx not in bad:
                assert sample['record_id'] == clean_ids[idx]
        assert dataset.bad_record_summary()['skipped_at_runtime'] == \
            len(bad)
    else:
        dataset = make(root, 'raise', **expect.image_kw)
        assert record_ids(dataset) == clean_ids
        checked = 0
        for idx in range(len(dataset)):
            sample = dataset[idx]
            if expect.record in sample['record_id']:
                assert sample['img_path'].endswith(expect.file)
                expect.check(sample['img'])
                checked += 1
        assert checked == 1
    assert Image.MAX_IMAGE_PIXELS == pil_limit  # PIL's global untouched
