"""Bad input in the RRSIS-D and iSAID layouts."""
import json
import os.path as osp
import pickle
import shutil

import pytest

from geopixel.datasets import (
    ISAIDDataset,
    LoadGroundingMasks,
    LoadImageRGB,
    RRSISDDataset,
)
from geopixel.datasets.rrsisd import load_refs
from geopixel.utils import BadRecordError


@pytest.fixture
def rrsis_copy(synthetic_root, tmp_path):
    root = tmp_path / 'rrsisd'
    shutil.copytree(osp.join(synthetic_root, 'rrsisd'), root)
    return root


def edit_refs(root, fn):
    path = root / 'rrsisd' / 'refs(unc).p'
    refs = pickle.load(open(path, 'rb'))
    refs = fn(refs)
    pickle.dump(refs, open(path, 'wb'))
    return refs


def test_ref_pointing_at_missing_annotation(rrsis_copy):
    def break_first_train_ref(refs):
        ref = next(r for r in refs if r['split'] == 'train')
        ref['ann_id'] = 99999
        return refs

    refs = edit_refs(rrsis_copy, break_first_train_ref)
    bad = next(r for r in refs if r['ann_id'] == 99999)
    with pytest.raises(BadRecordError) as err:
        RRSISDDataset(data_root=str(rrsis_copy), split='train')
    msg = str(err.value)
    assert 'refs(unc).p' in msg and f'ref_id {bad["ref_id"]}' in msg
    assert 'points at annotation 99999, which is not in' in msg
    ds = RRSISDDataset(
        data_root=str(rrsis_copy), split='train', on_bad_record='skip')
    assert ds.bad_record_summary()['skipped_at_load'] == 1


def test_image_size_disagreeing_with_instances(rrsis_copy):
    path = rrsis_copy / 'rrsisd' / 'instances.json'
    coco = json.load(open(path))
    coco['images'][0]['height'] = 999
    json.dump(coco, open(path, 'w'))
    refs = pickle.load(open(rrsis_copy / 'rrsisd' / 'refs(unc).p', 'rb'))
    split = next(r['split'] for r in refs if r['image_id'] ==
                 coco['images'][0]['id'])
    ds = RRSISDDataset(
        data_root=str(rrsis_copy),
        split=split,
        pipeline=[dict(type=LoadImageRGB),
                  dict(type=LoadGroundingMasks)])
    idx = next(i for i in range(len(ds))
               if ds.get_data_info(i)['image_id'] == coco['images'][0]['id'])
    with pytest.raises(BadRecordError, match='gives the image as 256x999'):
        ds[idx]


def test_refs_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ('pwned', ))

    path = tmp_path / 'refs(unc).p'
    pickle.dump([Evil()], open(path, 'wb'))
    with pytest.raises(BadRecordError, match='refusing to load builtins.print'):
        load_refs(str(path))


def test_unknown_split_and_missing_files(tmp_path):
    with pytest.raises(ValueError):
        RRSISDDataset(data_root=str(tmp_path), split='testA')
    with pytest.raises(BadRecordError, match='refs file is missing'):
        RRSISDDataset(data_root=str(tmp_path), split='val')


def test_isaid_rejects_foreign_categories(synthetic_root, tmp_path):
    root = tmp_path / 'isaid'
    shutil.copytree(osp.join(synthetic_root, 'isaid'), root)
    path = root / 'annotations' / 'instancesonly_filtered_val.json'
    coco = json.load(open(path))
    coco['categories'][0]['name'] = 'car'
    json.dump(coco, open(path, 'w'))
    with pytest.raises(BadRecordError, match='not an iSAID category'):
        ISAIDDataset(
            data_root=str(root),
            ann_file='annotations/instancesonly_filtered_val.json',
            data_prefix=dict(img_path='images/val/'))
