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
from geopixel.datasets.base import parse_guarded
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
    with pytest.raises(BadRecordError,
                       match='refusing to load builtins.print'):
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


def edit_instances(root, fn):
    path = root / 'rrsisd' / 'instances.json'
    coco = json.load(open(path))
    coco = fn(coco)
    json.dump(coco, open(path, 'w'))


def test_instances_structure_is_file_level(rrsis_copy):
    for edit, problem in (
            (lambda c: dict(c, images={}), '"images" must be a list'),
            (lambda c: {'images': c['images']},
             '"annotations" must be a list, got NoneType')):
        original = json.load(open(rrsis_copy / 'rrsisd' / 'instances.json'))
        edit_instances(rrsis_copy, edit)
        for policy in ('raise', 'skip'):
            with pytest.raises(BadRecordError, match=problem):
                RRSISDDataset(data_root=str(rrsis_copy), split='train',
                              on_bad_record=policy)
        edit_instances(rrsis_copy, lambda c: original)


def test_duplicate_annotation_id_is_refused_not_overwritten(rrsis_copy):
    refs = pickle.load(open(rrsis_copy / 'rrsisd' / 'refs(unc).p', 'rb'))
    ref = next(r for r in refs if r['split'] == 'train')

    def duplicate(coco):
        ann = next(a for a in coco['annotations'] if a['id'] == ref['ann_id'])
        coco['annotations'].append(dict(ann, segmentation=[[0, 0, 9, 0, 9,
                                                            9]]))
        return coco

    edit_instances(rrsis_copy, duplicate)
    with pytest.raises(BadRecordError,
                       match=f'annotation id {ref["ann_id"]} appears more'):
        RRSISDDataset(data_root=str(rrsis_copy), split='train')
    ds = RRSISDDataset(data_root=str(rrsis_copy), split='train',
                       on_bad_record='skip')
    assert any(f'ref_id {ref["ref_id"]} ' in m and 'more than once' in m
               for m in ds.load_skipped)
    assert ref['ref_id'] not in {ds.get_data_info(i)['ref_id']
                                 for i in range(len(ds))}


def test_image_without_file_name(rrsis_copy):
    def drop_file_name(coco):
        del coco['images'][0]['file_name']
        return coco

    edit_instances(rrsis_copy, drop_file_name)
    with pytest.raises(BadRecordError) as err:
        RRSISDDataset(data_root=str(rrsis_copy), split='train')
    assert 'instances.json' in str(err.value)
    assert 'record image #0: image has no "file_name"' in str(err.value)


def test_a_sentence_that_is_not_a_dict_loses_only_itself(rrsis_copy):
    clean = len(RRSISDDataset(data_root=str(rrsis_copy), split='train'))

    def bad_sentence(refs):
        ref = next(r for r in refs if r['split'] == 'train')
        ref['sentences'].append('raw text')
        return refs

    edit_refs(rrsis_copy, bad_sentence)
    with pytest.raises(BadRecordError, match='sentence must be a dict'):
        RRSISDDataset(data_root=str(rrsis_copy), split='train')
    ds = RRSISDDataset(data_root=str(rrsis_copy), split='train',
                       on_bad_record='skip')
    assert len(ds) == clean and len(ds.load_skipped) == 1


def test_unforeseen_errors_become_named_bad_records():
    err = parse_guarded(lambda: {}['missing'], 'a.json', '#3')
    assert isinstance(err, BadRecordError)
    assert str(err) == ("file a.json, record #3: malformed record "
                        "(KeyError: 'missing')")
    assert parse_guarded(lambda: 5, 'a.json', '#3') == 5


@pytest.fixture
def isaid_copy(synthetic_root, tmp_path):
    root = tmp_path / 'isaid'
    shutil.copytree(osp.join(synthetic_root, 'isaid'), root)
    return root


def isaid_dataset(root, policy='raise'):
    return ISAIDDataset(
        data_root=str(root),
        ann_file='annotations/instancesonly_filtered_train.json',
        data_prefix=dict(img_path='images/train/'),
        on_bad_record=policy)


def edit_isaid(root, fn):
    path = root / 'annotations' / 'instancesonly_filtered_train.json'
    json.dump(fn(json.load(open(path))), open(path, 'w'))


def test_isaid_structure_errors(isaid_copy):
    clean = len(isaid_dataset(isaid_copy))

    def nan_bbox(coco):
        ann = next(a for a in coco['annotations'] if a['image_id'] == 1)
        ann['bbox'][2] = float('nan')
        coco['images'][2]['file_name'] = None
        return coco

    edit_isaid(isaid_copy, nan_bbox)
    with pytest.raises(BadRecordError, match='bbox must be'):
        isaid_dataset(isaid_copy)
    ds = isaid_dataset(isaid_copy, 'skip')
    assert len(ds) == clean - 2
    assert any('image_id 2' in m and '"file_name" must be text' in m
               for m in ds.load_skipped)
    edit_isaid(isaid_copy, lambda coco: dict(coco, images={}))
    for policy in ('raise', 'skip'):
        with pytest.raises(BadRecordError, match='"images" must be a list'):
            isaid_dataset(isaid_copy, policy)


def test_rrsisd_masks_do_not_claim_an_instance_count(rrsis_copy):
    ds = RRSISDDataset(data_root=str(rrsis_copy), split='val',
                       pipeline=[dict(type=LoadImageRGB),
                                 dict(type=LoadGroundingMasks)])
    results = ds[0]
    assert results['gt_masks'].shape[0] == 1
    assert results['mask_instance_counts'] is None
