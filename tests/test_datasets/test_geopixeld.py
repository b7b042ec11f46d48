"""GeoPixelD reading: the real record, both layouts, and bad input."""
import hashlib
import json
import os.path as osp
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from geopixel.datasets import (
    FormatChat,
    GeoPixelDDataset,
    LoadGroundingMasks,
    LoadImageRGB,
    PackGeoPixelInputs,
    TileImage,
)
from geopixel.models.tilers import AdaptiveHDTiler
from geopixel.evaluation.functional.iou import iou_matrix
from geopixel.utils import BadRecordError, encode_rle

SAMPLE = 'P0224_0_800_0_800'


def pipeline(tokenizer, hd_num=9):
    return [
        dict(type=LoadImageRGB),
        dict(type=LoadGroundingMasks),
        dict(type=TileImage,
             tiler=dict(type=AdaptiveHDTiler, hd_num=hd_num, mode='train')),
        dict(type=FormatChat, tokenizer=tokenizer),
        dict(type=PackGeoPixelInputs),
    ]


def pil_rasterise(polygons, h, w):
    """An independent rasteriser (PIL), to check ours (cv2.fillPoly)."""
    canvas = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        draw.polygon([tuple(p) for p in poly], fill=1, outline=1)
    return np.asarray(canvas)


def test_real_record_loads_with_four_masks(geopixeld_sample_dir,
                                           parity_tokenizer, parity_dir):
    dataset = GeoPixelDDataset(
        ann_file=osp.join(geopixeld_sample_dir, 'GeoPixelD.json'),
        pipeline=pipeline(parity_tokenizer))
    assert len(dataset) == 1
    sample = dataset[0]
    data = sample['data_samples']
    masks = data.gt_masks.numpy()
    assert masks.shape == (4, 800, 800)
    assert data.input_ids.tolist().count(parity_tokenizer.token_id('[SEG]')) \
        == 4
    assert data.phrases == [f'tennis court-{k}' for k in range(1, 5)]
    with open(osp.join(geopixeld_sample_dir, 'GeoPixelD', 'train',
                       SAMPLE + '.json')) as f:
        polygons = json.load(f)['polygons']
    for mask, mask_polygons in zip(masks, polygons):
        assert iou_matrix([mask], [pil_rasterise(mask_polygons, 800,
                                                 800)])[0, 0] > 0.99
    # and bit-exact with the official loader's masks
    with open(osp.join(parity_dir, 'train.json')) as f:
        meta = json.load(f)
    assert [int(m.sum()) for m in masks] == meta['gt_mask_areas']
    assert hashlib.sha256(masks.tobytes()).hexdigest() == \
        meta['gt_masks_sha256']
    assert data.num_image_tokens == 4081
    assert data.hd_grid == (3, 3)
    assert sample['inputs']['hd_image'].shape == (3, 1680, 1680)
    assert sample['inputs']['image'].shape == (3, 800, 800)


def test_data_root_with_or_without_data_prefix(geopixeld_sample_dir):
    # paths in the JSON start with data/: the sample folder plays data/
    for root in (geopixeld_sample_dir, ''):
        dataset = GeoPixelDDataset(
            ann_file=osp.join(geopixeld_sample_dir, 'GeoPixelD.json'),
            data_root=root)
        assert dataset.get_data_info(0)['img_path'].endswith(SAMPLE + '.png')


def test_per_image_json_folder_layout(geopixeld_sample_dir, tmp_path):
    folder = tmp_path / 'test'
    shutil.copytree(osp.join(geopixeld_sample_dir, 'GeoPixelD', 'train'),
                    folder)
    dataset = GeoPixelDDataset(
        ann_file=str(folder),
        question='Describe.',
        pipeline=[dict(type=LoadImageRGB),
                  dict(type=LoadGroundingMasks)])
    info = dataset.get_data_info(0)
    assert info['conversations'][0] == ('user', 'Describe.')
    assert info['num_segs'] == 4
    assert dataset[0]['gt_masks'].shape == (4, 800, 800)


# ---------------------------------------------------------------------------
# Bad input: every error names the file, the record and the problem.


def make_dataset(tmp_path, records=None, polygons=None, image=True,
                 polygon_json=True):
    """A one-record GeoPixelD folder with a 64x48 image."""
    data = tmp_path / 'data'
    (data / 'GeoPixelD' / 'train').mkdir(parents=True)
    if image:
        Image.new('RGB', (64, 48), (10, 200, 30)).save(
            data / 'GeoPixelD' / 'train' / 'x.png')
    if polygons is None:
        polygons = [[[[2, 2], [20, 2], [20, 20], [2, 20]]],
                    [[[30, 30], [40, 30], [40, 40]]]]
    if polygon_json:
        with open(data / 'GeoPixelD' / 'train' / 'x.json', 'w') as f:
            json.dump(dict(id=0, polygons=polygons), f)
    if records is None:
        records = [
            dict(
                id=5,
                conversations=[
                    {'from': 'human', 'value': 'Q?'},
                    {'from': 'gpt',
                     'value': 'A <p> a </p> [SEG] and <p> b </p> [SEG].'}
                ],
                image='data/GeoPixelD/train/x.png',
                polygons='data/GeoPixelD/train/x.json')
        ]
    ann = data / 'GeoPixelD.json'
    with open(ann, 'w') as f:
        json.dump(records, f)
    return str(ann)


LOAD = [dict(type=LoadImageRGB), dict(type=LoadGroundingMasks)]


def test_good_synthetic_record(tmp_path):
    ann = make_dataset(tmp_path)
    ds = GeoPixelDDataset(ann_file=ann, pipeline=LOAD)
    masks = ds[0]['gt_masks']
    assert masks.shape == (2, 48, 64) and masks[0, 10, 10] == 1


def test_seg_count_differs_from_mask_count(tmp_path):
    ann = make_dataset(
        tmp_path, polygons=[[[[2, 2], [20, 2], [20, 20], [2, 20]]]])
    ds = GeoPixelDDataset(ann_file=ann, pipeline=LOAD)
    with pytest.raises(BadRecordError) as err:
        ds[0]
    msg = str(err.value)
    assert 'x.json' in msg and '#0 (id 5)' in msg
    assert '2 [SEG] token(s) but 1 mask(s)' in msg


def test_missing_image_is_named_at_load(tmp_path):
    ann = make_dataset(tmp_path, image=False)
    with pytest.raises(BadRecordError) as err:
        GeoPixelDDataset(ann_file=ann, pipeline=LOAD)
    msg = str(err.value)
    assert 'GeoPixelD.json' in msg and '#0 (id 5)' in msg
    assert "missing file 'data/GeoPixelD/train/x.png'" in msg


def test_corrupt_image_is_named(tmp_path):
    ann = make_dataset(tmp_path)
    png = tmp_path / 'data' / 'GeoPixelD' / 'train' / 'x.png'
    png.write_bytes(png.read_bytes()[:60])
    ds = GeoPixelDDataset(ann_file=ann, pipeline=LOAD)
    with pytest.raises(BadRecordError) as err:
        ds[0]
    assert 'x.png' in str(err.value) and 'record #0 (id 5)' in str(err.value)
    assert 'corrupt' in str(err.value) or 'not a readable image' in str(
        err.value)


@pytest.mark.parametrize('polygons,problem', [
    ([[], [[[1, 1], [5, 1], [5, 5]]]], 'mask 0: empty polygon list'),
    ([[[[1, 1], [5, 1]]], [[[1, 1], [5, 1], [5, 5]]]],
     'mask 0: degenerate polygon with 2 distinct point(s)'),
    ([[[[1, 1], [5, 5], [9, 9]]], [[[1, 1], [5, 1], [5, 5]]]],
     'mask 0: degenerate polygon with zero area'),
    ([[[[1, 1], [5, 1], [5, 5]]], [[[70, 50], [100, 50], [100, 80]]]],
     'mask 1: polygons lie entirely outside'),
    ([[[[1, 1], [5, 1], [5, 5]]], [[[500, 5], [600, 5], [600, 20]]]],
     'mask 1: polygon point 0 has x = 500, outside the allowed range '
     '[-64, 128] for a 64x48 image'),
])
def test_empty_or_degenerate_polygon(tmp_path, polygons, problem):
    ann = make_dataset(tmp_path, polygons=polygons)
    ds = GeoPixelDDataset(ann_file=ann, pipeline=LOAD)
    with pytest.raises(BadRecordError) as err:
        ds[0]
    assert problem in str(err.value)
    assert 'x.json' in str(err.value) and '#0 (id 5)' in str(err.value)


def test_rle_of_the_wrong_size(tmp_path):
    wrong = encode_rle(np.ones((10, 10), np.uint8))
    right = encode_rle(np.ones((48, 64), np.uint8))
    ann = make_dataset(tmp_path)
    records = json.load(open(ann))
    del records[0]['polygons']
    records[0]['segmentation'] = [right, wrong]
    json.dump(records, open(ann, 'w'))
    ds = GeoPixelDDataset(ann_file=ann, pipeline=LOAD)
    with pytest.raises(BadRecordError) as err:
        ds[0]
    assert ('mask 1: RLE size [10, 10] does not match the image size '
            '[48, 64]') in str(err.value)
    records[0]['segmentation'] = [right, right]
    json.dump(records, open(ann, 'w'))
    assert GeoPixelDDataset(ann_file=ann, pipeline=LOAD)[0]['gt_masks'].sum() \
        == 2 * 48 * 64


def test_skip_policy_counts_and_summarises(tmp_path):
    ann = make_dataset(tmp_path)
    records = json.load(open(ann))
    good = records[0]
    records = [
        good,
        dict(good, id=6, image='data/GeoPixelD/train/missing.png'),
        dict(good, id=7, conversations=[{'from': 'human', 'value': 'x'}]),
        dict(good, id=8, polygons=None),
    ]
    json.dump(records, open(ann, 'w'))
    with pytest.raises(BadRecordError, match='#1 \\(id 6\\)'):
        GeoPixelDDataset(ann_file=ann, pipeline=LOAD)
    ds = GeoPixelDDataset(ann_file=ann, pipeline=LOAD, on_bad_record='skip')
    assert len(ds) == 1
    summary = ds.bad_record_summary()
    assert summary['skipped_at_load'] == 3
    assert len(ds.load_skipped) == 3
    assert any('#3 (id 8)' in m and '"polygons" must be the path' in m
               for m in ds.load_skipped)


def test_runtime_skip_refetches_and_counts(tmp_path):
    ann = make_dataset(tmp_path)
    records = json.load(open(ann))
    # the second record points at a polygon file with one mask too few
    bad_json = tmp_path / 'data' / 'GeoPixelD' / 'train' / 'bad.json'
    json.dump(dict(polygons=[[[[1, 1], [5, 1], [5, 5]]]]), open(bad_json, 'w'))
    records.append(dict(records[0], id=9,
                        polygons='data/GeoPixelD/train/bad.json'))
    json.dump(records, open(ann, 'w'))
    ds = GeoPixelDDataset(ann_file=ann, pipeline=LOAD, on_bad_record='skip')
    assert len(ds) == 2
    sample = ds[1]  # bad: skipped, another record is returned instead
    assert sample['record_id'] == '#0 (id 5)'
    summary = ds.bad_record_summary()
    assert summary['skipped_at_runtime'] == 1
    assert summary['replaced_fetches'] >= 1
    assert ds.bad_record_summary()['replaced_fetches'] == 0  # reset
    test_ds = GeoPixelDDataset(
        ann_file=ann, pipeline=LOAD, on_bad_record='skip', test_mode=True)
    with pytest.raises(BadRecordError):
        test_ds[1]  # evaluation never skips silently


def test_skips_in_dataloader_workers_reach_the_main_process(tmp_path):
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader
    ann = make_dataset(tmp_path)
    records = json.load(open(ann))
    bad_json = tmp_path / 'data' / 'GeoPixelD' / 'train' / 'bad.json'
    json.dump(dict(polygons=[]), open(bad_json, 'w'))
    records += [dict(records[0], id=10 + k,
                     polygons='data/GeoPixelD/train/bad.json')
                for k in range(3)]
    json.dump(records, open(ann, 'w'))
    ds = GeoPixelDDataset(ann_file=ann, pipeline=LOAD, on_bad_record='skip')
    loader = DataLoader(ds, batch_size=1, num_workers=2,
                        collate_fn=pseudo_collate)
    batches = list(loader)
    assert len(batches) == 4
    assert all(b['record_id'] == ['#0 (id 5)'] for b in batches)
    assert ds.bad_record_summary()['skipped_at_runtime'] == 3


def test_mask_instance_counts_known_for_polygons_unknown_for_rle(tmp_path):
    """Polygon files count polygons per mask; RLE does not say: None."""
    ann = make_dataset(tmp_path, polygons=[
        [[[2, 2], [20, 2], [20, 20]], [[30, 30], [40, 30], [40, 40]]],
        [[[30, 5], [40, 5], [40, 15]]]])
    pack = [*LOAD, dict(type=PackGeoPixelInputs)]
    sample = GeoPixelDDataset(ann_file=ann, pipeline=pack)[0]
    assert sample['data_samples'].mask_instance_counts == [2, 1]
    records = json.load(open(ann))
    del records[0]['polygons']
    records[0]['segmentation'] = [encode_rle(np.ones((48, 64), np.uint8))
                                  ] * 2
    json.dump(records, open(ann, 'w'))
    results = GeoPixelDDataset(ann_file=ann, pipeline=LOAD)[0]
    assert results['mask_instance_counts'] is None
    sample = GeoPixelDDataset(ann_file=ann, pipeline=pack)[0]
    assert sample['data_samples'].mask_instance_counts is None
    assert sample['data_samples'].gt_masks.shape == (2, 48, 64)


def test_declared_sizes_are_checked(tmp_path):
    ann = make_dataset(tmp_path)
    records = json.load(open(ann))
    records[0]['height'] = 48  # width missing
    json.dump(records, open(ann, 'w'))
    with pytest.raises(BadRecordError, match='"height" and "width" must '
                       'both be positive integers'):
        GeoPixelDDataset(ann_file=ann, pipeline=LOAD)
    records[0].update(height=48, width=64)
    json.dump(records, open(ann, 'w'))
    assert GeoPixelDDataset(ann_file=ann, pipeline=LOAD)[0]['gt_masks'] \
        .shape == (2, 48, 64)
    # the per-image polygon file may declare a size too
    poly = tmp_path / 'data' / 'GeoPixelD' / 'train' / 'x.json'
    content = json.load(open(poly))
    content.update(height=64, width=48)
    json.dump(content, open(poly, 'w'))
    with pytest.raises(BadRecordError) as err:
        GeoPixelDDataset(ann_file=ann, pipeline=LOAD)[0]
    assert 'x.json' in str(err.value) and '#0 (id 5)' in str(err.value)
    assert 'the polygon file gives the image as 48x64' in str(err.value)


def test_patch_names_fix_the_size_unless_turned_off(tmp_path):
    ann = make_dataset(tmp_path)
    train = tmp_path / 'data' / 'GeoPixelD' / 'train'
    # "area_1_2_3_4" reads as an iSAID patch of 1 x 1 px: a 64x48 image
    # under that name is refused, unless the names mean something else
    (train / 'x.png').rename(train / 'area_1_2_3_4.png')
    records = json.load(open(ann))
    records[0]['image'] = 'data/GeoPixelD/train/area_1_2_3_4.png'
    json.dump(records, open(ann, 'w'))
    with pytest.raises(BadRecordError, match='check_patch_names=False'):
        GeoPixelDDataset(ann_file=ann, pipeline=LOAD)[0]
    ds = GeoPixelDDataset(ann_file=ann, pipeline=LOAD,
                          check_patch_names=False)
    assert ds[0]['gt_masks'].shape == (2, 48, 64)


def test_per_image_json_is_checked_at_load(tmp_path):
    make_dataset(tmp_path)
    folder = tmp_path / 'data' / 'GeoPixelD' / 'train'
    poly = folder / 'x.json'
    content = json.load(open(poly))
    good = dict(content, gcg_description='A <p> a </p> [SEG] and <p> b '
                '</p> [SEG].')
    for broken, problem in (
            (dict(good, gcg_description=['list']), 'must be text'),
            (dict(good, gcg_description='a \udfff'), 'position 2'),
            (dict(good, polygons='p.json'), '"polygons" must be a list')):
        json.dump(broken, open(poly, 'w'))
        with pytest.raises(BadRecordError) as err:
            GeoPixelDDataset(ann_file=str(folder), pipeline=LOAD)
        assert 'x.json' in str(err.value) and problem in str(err.value)
    json.dump(dict(good, height=48, width=64), open(poly, 'w'))
    ds = GeoPixelDDataset(ann_file=str(folder), pipeline=LOAD)
    assert ds[0]['gt_masks'].shape == (2, 48, 64)
