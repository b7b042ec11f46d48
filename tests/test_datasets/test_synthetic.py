"""The synthetic generator: deterministic, and every layout loads back."""
import hashlib
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from geopixel.datasets import (
    GeoPixelDDataset,
    ISAIDDataset,
    LoadGroundingMasks,
    LoadImageRGB,
    LoadInstanceAnnotations,
    RRSISDDataset,
)
from geopixel.datasets.synthetic import (
    SceneGenerator,
    gcg_description,
    generate_synthetic_dataset,
)
from geopixel.utils import polygons_to_mask

LOAD = [dict(type=LoadImageRGB), dict(type=LoadGroundingMasks)]


def tree_digest(root):
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name == 'meta.json':  # holds the run time
                continue
            path = osp.join(folder, name)
            digest.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


@pytest.mark.slow
def test_deterministic_from_seed(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    for out, seed in ((a, 1), (b, 1), (c, 2)):
        generate_synthetic_dataset(out, num_images=4, size=192, seed=seed)
    assert tree_digest(a) == tree_digest(b)
    assert tree_digest(a) != tree_digest(c)


def test_scene_instances_are_disjoint_and_drawn():
    rng = np.random.default_rng(7)
    scene = SceneGenerator(320, 320)(rng)
    assert scene.image.shape == (320, 320, 3)
    assert len(scene.instances) >= 2
    union = np.zeros((320, 320), np.int32)
    for inst in scene.instances:
        union += polygons_to_mask([inst.polygon], 320, 320)
    assert union.max() == 1  # no two instances overlap


def test_group_phrases_cover_several_instances():
    found_group = False
    for seed in range(20):
        rng = np.random.default_rng(seed)
        scene = SceneGenerator(320, 320)(rng)
        text, groups = gcg_description(scene, rng)
        assert text.count('[SEG]') == len(groups)
        if any(len(g) > 1 for g in groups):
            found_group = True
            assert 'A group of' in text
    assert found_group


def test_geopixeld_layout_loads_back(synthetic_root):
    with open(osp.join(synthetic_root, 'meta.json')) as f:
        meta = json.load(f)
    for split, ann in (('train', 'GeoPixelD.json'),
                       ('test', 'GeoPixelD_test.json')):
        ds = GeoPixelDDataset(
            ann_file=osp.join(synthetic_root, 'geopixeld', ann),
            pipeline=LOAD)
        assert len(ds) == meta['geopixeld'][split]
        for idx in range(len(ds)):
            results = ds[idx]
            info = ds.get_data_info(idx)
            stem = osp.splitext(info['img_path'])[0]
            with open(stem + '.json') as f:
                written = json.load(f)
            assert info['conversations'][1][1] == written['gcg_description']
            expected = np.stack([
                polygons_to_mask(p, *results['ori_shape'])
                for p in written['polygons']
            ])
            np.testing.assert_array_equal(results['gt_masks'], expected)


def test_rrsisd_layout_loads_back(synthetic_root):
    root = osp.join(synthetic_root, 'rrsisd')
    with open(osp.join(root, 'rrsisd', 'refs(unc).p'), 'rb') as f:
        refs = pickle.load(f)
    with open(osp.join(root, 'rrsisd', 'instances.json')) as f:
        anns = {a['id']: a for a in json.load(f)['annotations']}
    total = 0
    for split in ('train', 'val', 'test'):
        ds = RRSISDDataset(data_root=root, split=split, pipeline=LOAD)
        split_refs = [r for r in refs if r['split'] == split]
        # every sentence of every ref is one sample
        assert len(ds) == sum(len(r['sentences']) for r in split_refs)
        total += len(ds)
        for idx in range(len(ds)):
            info = ds.get_data_info(idx)
            ref = next(r for r in split_refs if r['ref_id'] == info['ref_id'])
            sent = next(s for s in ref['sentences']
                        if s['sent_id'] == info['sent_id'])
            assert info['conversations'][0][1] == (
                'Could you provide a segmentation mask for '
                f'{sent["raw"]} in this image?')
            assert info['conversations'][1][1] == 'Sure, it is [SEG].'
            results = ds[idx]
            h, w = results['ori_shape']
            rle = mask_utils.frPyObjects(anns[ref['ann_id']]['segmentation'],
                                         h, w)
            expected = mask_utils.decode(rle).max(axis=2)
            np.testing.assert_array_equal(results['gt_masks'][0], expected)
    assert total == sum(len(r['sentences']) for r in refs)


@pytest.mark.parametrize('per_sample', [2, 3])
def test_rrsisd_several_sentences_per_sample(synthetic_root, per_sample):
    root = osp.join(synthetic_root, 'rrsisd')
    single = RRSISDDataset(data_root=root, split='train', pipeline=LOAD)
    grouped = RRSISDDataset(data_root=root, split='train', pipeline=LOAD,
                            sentences_per_sample=per_sample)
    by_key = {(single.get_data_info(i)['ref_id'],
               single.get_data_info(i)['sent_id']): i
              for i in range(len(single))}
    seen = []
    for idx in range(len(grouped)):
        info = grouped.get_data_info(idx)
        keys = list(zip(info['ref_id'], info['sent_id']))
        assert 1 <= len(keys) <= per_sample
        seen.extend(keys)
        turns = info['conversations']
        assert len(turns) == 2 * len(keys) == 2 * info['num_segs']
        results = grouped[idx]
        assert results['gt_masks'].shape[0] == len(keys)
        for k, key in enumerate(keys):
            alone = single.get_data_info(by_key[key])
            # one image per sample, each turn its own sentence and mask
            assert alone['img_path'] == info['img_path']
            assert turns[2 * k:2 * k + 2] == alone['conversations']
            np.testing.assert_array_equal(results['gt_masks'][k],
                                          single[by_key[key]]['gt_masks'][0])
        # round robin: the first turns name different objects when the
        # image has several refs
        ann_ids = info['ann_id']
        if len(set(ann_ids)) > 1:
            assert ann_ids[0] != ann_ids[1]
    # every sentence exactly once
    assert sorted(seen) == sorted(by_key)
    assert len(grouped) < len(single)


def test_rrsisd_several_sentences_only_for_training(synthetic_root):
    root = osp.join(synthetic_root, 'rrsisd')
    with pytest.raises(ValueError, match='scored per sentence'):
        RRSISDDataset(data_root=root, split='test', test_mode=True,
                      sentences_per_sample=2)
    with pytest.raises(ValueError, match='positive integer'):
        RRSISDDataset(data_root=root, split='train', sentences_per_sample=0)


def test_isaid_layout_loads_back(synthetic_root):
    root = osp.join(synthetic_root, 'isaid')
    ds = ISAIDDataset(
        data_root=root,
        ann_file='annotations/instancesonly_filtered_train.json',
        data_prefix=dict(img_path='images/train/'),
        pipeline=[dict(type=LoadImageRGB),
                  dict(type=LoadInstanceAnnotations)])
    results = ds[0]
    info = ds.get_data_info(0)
    assert len(results['gt_masks']) == len(info['instances'])
    assert results['gt_bboxes'].shape == (len(info['instances']), 4)
    assert set(info['category_names']) <= set(ds.metainfo['classes'])


def test_synthetic_tokenizer_has_chat_pieces(synthetic_root):
    from geopixel.tokenizers import InternLM2Tokenizer
    tok = InternLM2Tokenizer.from_pretrained(
        osp.join(synthetic_root, 'tokenizer'))
    assert tok.convert_ids_to_tokens(
        tok.encode('[UNUSED_TOKEN_146]user\n', False))[0] == \
        '[UNUSED_TOKEN_146]'
    assert tok.token_id('[SEG]') == tok.vocab_size


def test_a_single_scene_to_try_a_model_on(tmp_path):
    from geopixel.datasets.synthetic import write_scene
    summary = write_scene(str(tmp_path), seed=1234, size=192)
    image = np.asarray(Image.open(tmp_path / 'scene.png'))
    assert image.shape == (192, 192, 3)
    lines = (tmp_path / 'expressions.txt').read_text().splitlines()
    assert lines and all(line.startswith('the ') for line in lines)
    assert lines == [o['expressions'][0] for o in summary['objects']
                     if o['expressions']]
    assert write_scene(str(tmp_path / 'again'), 1234, 192) == summary


def test_a_large_georeferenced_scene_is_written_by_blocks(tmp_path):
    rasterio = pytest.importorskip('rasterio')
    from geopixel.datasets.synthetic import write_scene_geotiff
    path = str(tmp_path / 'scene.tif')
    write_scene_geotiff(path, 300, seed=0, tile=128)
    with rasterio.open(path) as src:
        assert (src.width, src.height, src.count) == (300, 300, 3)
        assert src.crs.to_epsg() == 32633
        assert src.transform @ (0, 0) == (500000.0, 4100000.0)
        assert src.transform @ (300, 300) == (500150.0, 4099850.0)
        block = src.read(window=((128, 256), (0, 128)))
        assert block.std() > 0  # a scene, not a blank block
