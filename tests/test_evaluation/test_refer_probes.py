"""Refer probes: expression types recorded by the synthetic writer, the
trivial baselines, the swap probe and the [SEG] probes on constructed
cases with known answers."""
import json
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from geopixel.datasets import LoadGroundingMasks, LoadImageRGB, RRSISDDataset
from geopixel.datasets.isaid import ISAID_CATEGORY_IDS
from geopixel.datasets.synthetic import (
    SceneGenerator,
    referring_expressions,
    referring_sentences,
)
from geopixel.datasets.synthetic.text import POSITION_PHRASES
from geopixel.evaluation.functional import refer_probes as rp
from geopixel.evaluation.functional.rrsis import rrsis_scores
from geopixel.utils import BadRecordError, read_json


def refs_of(root):
    with open(osp.join(root, 'rrsisd', 'refs(unc).p'), 'rb') as f:
        return pickle.load(f)


def test_writer_records_attributes_the_sentence_says(synthetic_root):
    refs = refs_of(osp.join(synthetic_root, 'rrsisd'))
    seen = set()
    for ref in refs:
        target = ref['target']
        assert ref['category_id'] == ISAID_CATEGORY_IDS[target['category']]
        first = ref['sentences'][0]
        assert first['attributes'] == first['unique_by']
        for sent in ref['sentences']:
            words = sent['raw']
            assert sent['unique_by'] == ref['sentences'][0]['unique_by']
            assert set(sent['unique_by']) <= set(sent['attributes'])
            assert (f' {target["colour"]} ' in words) == (
                'colour' in sent['attributes'])
            assert words.endswith(POSITION_PHRASES[target['position']]) == (
                'position' in sent['attributes'])
            assert ('size' in sent['attributes']) <= (
                target['size'] is not None)
            seen.add(rp.expression_type(sent['unique_by']))
    assert {'colour', 'position'} <= seen


def test_referring_expressions_are_the_sentences_texts():
    for seed in range(5):
        scene = SceneGenerator(256, 256)(np.random.default_rng(seed))
        for k in range(len(scene.instances)):
            sentences = referring_sentences(scene, k)
            texts = referring_expressions(scene, k)
            assert texts == (None if sentences is None else
                             [s['text'] for s in sentences])


@pytest.mark.parametrize('unique_by, expected', [
    ([], 'category'), (['colour'], 'colour'), (['size', 'colour'], 'colour'),
    (['position'], 'position'), (['colour', 'position'], 'position'),
    (['size', 'position'], 'position'), (['size'], 'size')])
def test_expression_type(unique_by, expected):
    assert rp.expression_type(unique_by) == expected


def test_expression_type_refuses_unknown_attributes():
    with pytest.raises(ValueError, match="'shape'"):
        rp.expression_type(['shape'])


def dataset_at(root, split='test', **kwargs):
    return RRSISDDataset(data_root=root, split=split, pipeline=[],
                         test_mode=True, **kwargs)


@pytest.fixture(scope='module')
def split(synthetic_root):
    return rp.read_refer_split(
        dataset_at(osp.join(synthetic_root, 'rrsisd')))


def test_split_masks_are_the_dataset_masks(synthetic_root, split):
    root = osp.join(synthetic_root, 'rrsisd')
    loaded = RRSISDDataset(data_root=root, split='test', pipeline=[
        dict(type=LoadImageRGB), dict(type=LoadGroundingMasks)])
    assert len(split.samples) == len(loaded) == len(split.pool)
    anns = read_json(osp.join(root, 'rrsisd', 'instances.json'))
    for k, sample in enumerate(split.samples):
        results = loaded[k]
        assert (sample.sent_id, sample.ann_id) == (results['sent_id'],
                                                   results['ann_id'])
        image = split.images[sample.image_id]
        np.testing.assert_array_equal(image.masks[sample.ann_id],
                                      results['gt_masks'][0] > 0)
        union = np.zeros(image.size, np.uint8)
        for ann in anns['annotations']:
            if ann['image_id'] == sample.image_id:
                rles = mask_utils.frPyObjects(ann['segmentation'],
                                              *image.size)
                union |= mask_utils.decode(rles).max(axis=2)
        np.testing.assert_array_equal(image.all_objects(), union > 0)
        assert len(image.masks) > 1
    types = rp.types_available(split.samples)
    assert types['available']
    assert sum(types['counts'].values()) == len(split.samples)
    assert all(s.colour for s in split.samples)


def test_max_samples_keeps_the_images_partners(synthetic_root, split):
    first = rp.read_refer_split(
        dataset_at(osp.join(synthetic_root, 'rrsisd')), max_samples=1)
    assert [s.sent_id for s in first.samples] == [split.samples[0].sent_id]
    image_id = split.samples[0].image_id
    assert list(first.images) == [image_id]
    assert [s.sent_id for s in first.pool] == [
        s.sent_id for s in split.samples if s.image_id == image_id]


def rewrite_refs(synthetic_root, tmp_path, change):
    root = str(tmp_path / 'rrsisd')
    shutil.copytree(osp.join(synthetic_root, 'rrsisd'), root)
    refs = refs_of(root)
    change(refs)
    with open(osp.join(root, 'rrsisd', 'refs(unc).p'), 'wb') as f:
        pickle.dump(refs, f)
    return root


def test_without_records_nothing_is_guessed(synthetic_root, tmp_path):
    def strip(refs):
        for ref in refs:
            del ref['target']
            for sent in ref['sentences']:
                del sent['unique_by'], sent['attributes']

    split = rp.read_refer_split(dataset_at(
        rewrite_refs(synthetic_root, tmp_path, strip)))
    assert not rp.types_available(split.samples)['available']
    assert all(s.expression_type is None and s.colour is None
               for s in split.samples)
    scores = rp.baseline_scores(split.samples, split.images)
    assert scores['all_objects']['by_type'] is None
    assert scores['all_objects']['overall']['samples'] == len(split.samples)


def test_records_on_some_sentences_only_are_an_error(synthetic_root,
                                                     tmp_path):
    def strip_one(refs):
        ref = next(r for r in refs if r['split'] == 'test')
        del ref['sentences'][0]['unique_by']

    root = rewrite_refs(synthetic_root, tmp_path, strip_one)
    with pytest.raises(BadRecordError, match=r'refs\(unc\).p.*sent_id.*'
                       'no "unique_by" here, but other sentences'):
        rp.read_refer_split(dataset_at(root))


def test_unknown_unique_by_is_an_error(synthetic_root, tmp_path):
    def corrupt(refs):
        ref = next(r for r in refs if r['split'] == 'test')
        ref['sentences'][0]['unique_by'] = ['shape']

    root = rewrite_refs(synthetic_root, tmp_path, corrupt)
    with pytest.raises(BadRecordError, match="unknown attribute 'shape'"):
        rp.read_refer_split(dataset_at(root))


def test_annotation_without_segmentation_is_an_error(synthetic_root,
                                                     tmp_path, split):
    root = rewrite_refs(synthetic_root, tmp_path, lambda refs: None)
    path = osp.join(root, 'rrsisd', 'instances.json')
    instances = read_json(path)
    referred = {s.ann_id for s in split.pool}
    ann = next(a for a in instances['annotations']
               if a['image_id'] == split.samples[0].image_id
               and a['id'] not in referred)
    del ann['segmentation']
    with open(path, 'w') as f:
        json.dump(instances, f)
    with pytest.raises(BadRecordError, match=rf'instances.json, record '
                       rf'annotation {ann["id"]}: .*"segmentation"'):
        rp.read_refer_split(dataset_at(root))


def test_baselines(split):
    samples, images = split.samples, split.images
    scores = rp.baseline_scores(samples, images)
    assert scores['all_zero']['overall']['mIoU'] == 0
    gts = [images[s.image_id].masks[s.ann_id] for s in samples]
    whole = sum(g.sum() for g in gts) / sum(g.size for g in gts) * 100
    assert scores['whole_image']['overall']['oIoU'] == pytest.approx(whole)
    union = [images[s.image_id].all_objects() for s in samples]
    expected = rrsis_scores([(int((u & g).sum()), int(u.sum()))
                             for u, g in zip(union, gts)])
    assert scores['all_objects']['overall'] == expected
    by_type = scores['all_objects']['by_type']
    assert sum(t['samples'] for t in by_type.values()) == len(samples)
    # predicting the union scores as the all-objects baseline
    predictions = {s.key: images[s.image_id].all_objects() for s in samples}
    assert rp.prediction_scores(samples, images,
                                predictions) == scores['all_objects']


def test_perfect_predictions_and_object_coverage(split):
    samples, images = split.samples, split.images
    perfect = {s.key: images[s.image_id].masks[s.ann_id] for s in samples}
    scores = rp.prediction_scores(samples, images, perfect)
    assert scores['overall']['mIoU'] == 100
    assert all(t['mIoU'] == 100 for t in scores['by_type'].values())
    coverage = rp.object_coverage(samples, images, perfect)
    assert coverage['mean_objects_covered'] == 1
    assert coverage['best_match_is_target'] == 1
    union = {s.key: images[s.image_id].all_objects() for s in samples}
    coverage = rp.object_coverage(samples, images, union)
    assert coverage['mean_objects_covered'] == coverage['mean_objects'] > 1
    wrong = dict(perfect)
    wrong[samples[0].key] = np.zeros((3, 3), bool)
    with pytest.raises(ValueError, match=r'sent_id .*\[3, 3\]'):
        rp.prediction_scores(samples, images, wrong)


def square(y, x, size=5, shape=(20, 20)):
    mask = np.zeros(shape, bool)
    mask[y:y + size, x:x + size] = True
    return mask


def test_swap_probe_known_answers():
    a, b = square(0, 0), square(10, 10)
    n = 4
    following = rp.swap_probe([a] * n, [b] * n, [a] * n, [b] * n)
    assert following['changed_fraction'] == 1.0
    assert following['landed_fraction'] == 1.0
    assert following['identical_fraction'] == 0.0
    assert following['mean_iou']['swapped_vs_new'] == 1.0
    assert following['mean_iou']['own_vs_old'] == 1.0
    both = a | b  # "all objects", whatever the sentence
    ignoring = rp.swap_probe([both] * n, [both] * n, [a] * n, [b] * n)
    assert ignoring['changed_fraction'] == 0.0
    assert ignoring['landed_fraction'] == 0.0
    assert ignoring['identical_fraction'] == 1.0
    assert ignoring['mean_iou']['own_vs_swapped'] == 1.0
    assert ignoring['mean_iou']['swapped_vs_new'] == pytest.approx(0.5)
    # moved, but not onto the new object (IoU with it below 0.5)
    near = square(10, 10, size=3) | square(0, 12, size=4)
    moved = rp.swap_probe([a], [near], [a], [b])
    assert moved['changed_fraction'] == 1.0
    assert moved['landed_fraction'] == 0.0
    # two empty predictions are the same mask
    empty = np.zeros((20, 20), bool)
    assert rp.swap_probe([empty], [empty], [a],
                         [b])['changed_fraction'] == 0.0
    none = rp.swap_probe([], [], [], [])
    assert none['samples'] == 0 and none['changed_fraction'] is None
    with pytest.raises(ValueError, match='one mask per sample'):
        rp.swap_probe([a], [], [a], [b])


def test_swap_partners_name_another_object(split):
    pairs = rp.swap_partners(split.samples, split.pool)
    assert pairs
    for own, other in pairs:
        assert own.image_id == other.image_id
        assert own.ann_id != other.ann_id
    lonely = [s for s in split.pool if s.image_id == pairs[0][0].image_id
              and s.ann_id == pairs[0][0].ann_id]
    assert rp.swap_partners(lonely, lonely) == []


def test_cosine_spread_known_answers():
    # image 0: two targets, orthogonal; target 0 said twice, identically
    vectors = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0],
                        [0, 0, 2.0]])
    spread = rp.cosine_spread(vectors, [0, 0, 0, 1], [5, 5, 6, 7])
    assert spread['same_target'] == 0.0
    assert spread['within_image_different_targets'] == 1.0
    assert spread['all_pairs'] == pytest.approx((0 + 1 + 1 + 1 + 1 + 1) / 6)
    assert spread['pairs'] == dict(within_image_different_targets=2,
                                   same_target=1, all_pairs=6)
    with pytest.raises(ValueError, match='vector 1 is zero'):
        rp.cosine_spread(np.array([[1.0, 0], [0, 0]]), [0, 0], [1, 2])


def test_logistic_probe_separable_and_random():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    centres = rng.normal(0, 1, (3, 16)) * 4
    features = centres[labels] + rng.normal(0, 1, (300, 16))
    train = np.arange(300) % 2 == 0
    separable = rp.logistic_probe(features, labels.tolist(), train)
    assert separable['accuracy'] >= 0.97
    assert (separable['train_samples'], separable['test_samples']) == (150,
                                                                        150)
    noise = rp.logistic_probe(rng.normal(0, 1, (600, 8)),
                              rng.integers(0, 3, 600).tolist(),
                              np.arange(600) % 2 == 0)
    assert abs(noise['accuracy'] - noise['majority_accuracy']) < 0.12
    assert noise['majority_accuracy'] < 0.45


def test_logistic_probe_majority_and_inputs():
    features = np.zeros((6, 2))
    labels = ['red', 'red', 'blue', 'red', 'blue', 'blue']
    train = np.array([True, True, True, False, False, False])
    probe = rp.logistic_probe(features, labels, train)
    assert probe['majority_class'] == 'red'
    assert probe['majority_accuracy'] == pytest.approx(1 / 3)
    # constant features: the fitted model can only say the majority
    assert probe['accuracy'] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match='both halves'):
        rp.logistic_probe(features, labels, np.ones(6, bool))


def test_alternate_images_splits_by_image():
    train = rp.alternate_images([7, 7, 3, 9, 3, 9, 1])
    assert train.tolist() == [True, True, False, True, False, True, False]


@pytest.fixture(scope='module')
def train_split(synthetic_root):
    return rp.read_refer_split(
        dataset_at(osp.join(synthetic_root, 'rrsisd'), split='train'))


def one_hot(values):
    names = sorted(set(values), key=str)
    return [np.eye(len(names))[names.index(v)] for v in values]


def test_report_of_a_model_that_follows_the_sentence(train_split):
    split = train_split
    images = split.images
    masks = {s.key: images[s.image_id].masks[s.ann_id] for s in split.pool}
    # [SEG] states that say the target's colour and category exactly
    states = {
        s.key: np.concatenate([c, k]) for s, c, k in zip(
            split.pool, one_hot([s.colour for s in split.pool]),
            one_hot([s.category for s in split.pool]))
    }
    report = rp.probe_report(split, masks, states, states)
    assert report['scores']['model']['overall']['mIoU'] == 100
    assert report['objects']['best_match_is_target'] == 1.0
    swap = report['swap']
    assert swap['samples'] == len(split.samples)  # 2 refs per image
    assert swap['changed_fraction'] == swap['landed_fraction'] == 1.0
    train = rp.alternate_images([s.image_id for s in split.samples])
    for name in ('colour', 'category'):
        labels = [getattr(s, name) for s in split.samples]
        seen = {v for v, t in zip(labels, train) if t}
        expected = np.mean([v in seen for v, t in zip(labels, train)
                            if not t])
        probe = report['seg']['linear_probe'][name]['seg_state']
        assert probe['accuracy'] == pytest.approx(expected)
        assert probe['accuracy'] > probe['majority_accuracy']


def test_report_of_a_model_that_ignores_the_sentence(train_split):
    split = train_split
    images = split.images
    masks = {s.key: images[s.image_id].all_objects() for s in split.pool}
    # one [SEG] state per image, whatever the sentence
    states = {s.key: np.arange(4.0) + s.image_id for s in split.pool}
    report = rp.probe_report(split, masks, states, states)
    assert report['scores']['model'] == report['scores']['all_objects']
    swap = report['swap']
    assert swap['changed_fraction'] == 0.0
    assert swap['identical_fraction'] == 1.0
    assert swap['mean_iou']['own_vs_swapped'] == 1.0
    spread = report['seg']['spread']['seg_state']
    assert spread['within_image_different_targets'] == pytest.approx(0)
    assert spread['all_pairs'] > 0
    empty = {key: np.zeros_like(mask) for key, mask in masks.items()}
    swap = rp.probe_report(split, empty, states, states)['swap']
    assert swap['changed_fraction'] == swap['landed_fraction'] == 0.0


def test_position_probe_reads_the_sentences_that_name_one(train_split):
    split = train_split
    named = [s for s in split.samples if s.position is not None]
    assert 0 < len(named) < len(split.samples)
    for s in split.samples:
        said = any(phrase in s.text for phrase in POSITION_PHRASES.values())
        assert (s.position is not None) == said, s.text
        if s.position is not None:
            assert POSITION_PHRASES[s.position] in s.text
    masks = {s.key: split.images[s.image_id].masks[s.ann_id]
             for s in split.pool}
    # states that encode the named position (and nothing for the others)
    names = sorted(POSITION_PHRASES)
    states = {
        s.key: np.eye(len(names) + 1)[names.index(s.position)
                                      if s.position else len(names)]
        for s in split.pool
    }
    probe = rp.probe_report(split, masks, states,
                            states)['seg']['linear_probe']['position']
    state = probe['seg_state']
    assert state['train_samples'] + state['test_samples'] == len(named)
    assert state['accuracy'] > state['majority_accuracy']
    # states that say nothing of the position: the probe can only answer
    # one of the training half's most frequent positions
    blind = {key: np.ones(3) for key in states}
    probe = rp.probe_report(split, masks, blind,
                            blind)['seg']['linear_probe']['position']
    train = rp.alternate_images([s.image_id for s in named])
    seen = [s.position for s, t in zip(named, train) if t]
    held = [s.position for s, t in zip(named, train) if not t]
    top = max(seen.count(p) for p in seen)
    allowed = {held.count(p) / len(held) for p in set(seen)
               if seen.count(p) == top}
    assert min(abs(probe['seg_state']['accuracy'] - a)
               for a in allowed) < 1e-9
