"""Bad prediction and evaluation ground-truth files (issue 7, item 5).

Each case is generated from a good split in tmp_path. An error case asserts
the named error (file, record where there is one, the problem), that no
score file was written from the bad input, and that with the one bad input
taken away everything else scores as in a clean run. A report case asserts
the report and that the other predictions are scored.
"""
import json
import os
import os.path as osp
import shutil
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pytest

from geopixel.evaluation.functional import gcg
from geopixel.utils import BadRecordError, encode_rle
from tests.test_evaluation.gcg_helpers import (strict_json, tool_args,
                                               write_gcg_split)
from tests.test_evaluation.test_gcg_files import load_tool

eval_predictions = load_tool('eval_predictions')
eval_rrsis = load_tool('eval_rrsis_predictions')


@dataclass
class Case:
    id: str
    make: Callable  # (paths) -> the file to take away afterwards
    words: Sequence[str]  # in the error message


def edit_prediction(image_id, change):
    def make(paths):
        path = osp.join(paths['pred_dir'], f'{image_id}.json')
        content = json.load(open(path))
        content = change(content)
        with open(path, 'w') as f:
            json.dump(content, f)
        return path
    return make


def edit_mask(index, rle):
    def change(content):
        content['pred_masks'][index] = rle
        return content
    return change


def without(key):
    def change(content):
        del content[key]
        return content
    return change


def setting(key, value):
    def change(content):
        content[key] = value
        return content
    return change


def extra_prediction(paths):
    path = osp.join(paths['pred_dir'], 'img99.json')
    content = json.load(open(osp.join(paths['pred_dir'], 'img0.json')))
    json.dump(dict(content, image_id='img99'), open(path, 'w'))
    return path


SMALL_RLE = encode_rle(np.ones((16, 16), np.uint8))
PREDICTION_ERRORS = [
    Case('pred-holds-a-number', edit_prediction('img1', lambda c: 42),
         ['img1.json', 'holds a number']),
    Case('pred-holds-a-list', edit_prediction('img1', lambda c: [c]),
         ['img1.json', 'holds a list']),
    Case('pred-holds-a-string', edit_prediction('img1', lambda c: 'car'),
         ['img1.json', 'holds a string']),
    Case('pred-missing-key', edit_prediction('img1', without('pred_masks')),
         ['img1.json', 'has no "pred_masks"']),
    Case('pred-phrases-not-a-list',
         edit_prediction('img1', setting('phrases', 'car')),
         ['img1.json', 'image_id img1', '"phrases" must be a list of '
          'strings, got a string']),
    Case('pred-phrases-not-strings',
         edit_prediction('img1', setting('phrases', [1, 2])),
         ['img1.json', 'a list holding a number']),
    Case('pred-masks-not-a-list',
         edit_prediction('img1', setting('pred_masks', SMALL_RLE)),
         ['img1.json', '"pred_masks" must be a list']),
    Case('pred-rle-wrong-size', edit_prediction('img1',
                                                edit_mask(1, SMALL_RLE)),
         ['img1.json', 'image_id img1', 'mask 1', '[16, 16]', '[32, 32]']),
    Case('pred-rle-truncated-counts',
         edit_prediction('img1', edit_mask(0, dict(SMALL_RLE, size=[32, 32],
                                                    counts='0'))),
         ['img1.json', 'mask 0', 'malformed RLE counts']),
    Case('pred-rle-foreign-characters',
         edit_prediction('img1', edit_mask(0, dict(size=[32, 32],
                                                   counts='~~{|'))),
         ['img1.json', 'mask 0', 'malformed RLE counts', 'alphabet']),
    Case('pred-rle-not-a-dict',
         edit_prediction('img1', edit_mask(0, [[0, 0, 4, 0, 4, 4]])),
         ['img1.json', 'mask 0', 'RLE must be a dict']),
    Case('pred-unknown-image-id', extra_prediction,
         ['preds', 'not in the ground truth', 'img99']),
]


def edit_gt(key, change):
    def make(paths):
        path = paths[key]
        shutil.copy(path, path + '.good')
        with open(path) as f:
            content = json.load(f)
        content = change(content)
        with open(path, 'w') as f:
            if isinstance(content, str):
                f.write(content)
            else:
                json.dump(content, f)
        return path
    return make


def edit_gt_ann(index, **changes):
    def change(content):
        content['annotations'][index].update(changes)
        return content
    return change


GT_ERRORS = [
    Case('gt-mask-file-not-json',
         edit_gt('mask_gt', lambda c: '{"annotations": [1,'),
         ['mask_gt.json', 'not valid JSON']),
    Case('gt-caption-file-holds-a-list',
         edit_gt('caption_gt', lambda c: c['images']),
         ['caption_gt.json', '"images" and "annotations"', 'a list']),
    Case('gt-rle-malformed',
         edit_gt('mask_gt', edit_gt_ann(2, segmentation=dict(
             size=[32, 32], counts='5220'))),
         ['mask_gt.json', 'annotation 3', 'malformed RLE counts']),
    Case('gt-mask-empty',
         edit_gt('mask_gt', edit_gt_ann(2, segmentation=encode_rle(
             np.zeros((32, 32), np.uint8)))),
         ['mask_gt.json', 'annotation 3', 'mask is empty']),
    Case('gt-labels-not-a-list',
         edit_gt('caption_gt', edit_gt_ann(0, labels='car')),
         ['caption_gt.json', 'annotation 1', '"labels" must be a list']),
]


def clean_scores(tmp_path, paths):
    out = str(tmp_path / 'clean.json')
    eval_predictions.main(tool_args(paths, '--no-captions', '--out', out))
    return strict_json(out)


@pytest.mark.parametrize('case', PREDICTION_ERRORS + GT_ERRORS,
                         ids=lambda c: c.id)
def test_bad_gcg_input_is_a_named_error(case, tmp_path):
    paths = write_gcg_split(str(tmp_path))
    bad = case.make(paths)
    out = tmp_path / 'scores.json'
    with pytest.raises(BadRecordError) as err:
        eval_predictions.main(tool_args(paths, '--no-captions', '--out',
                                        str(out)))
    for word in case.words:
        assert word in str(err.value), (word, str(err.value))
    assert not out.exists()  # no number from a bad input
    # nothing else is lost: without the bad input, the rest scores
    if osp.exists(bad + '.good'):
        os.replace(bad + '.good', bad)
    else:
        os.remove(bad)
    scores = clean_scores(tmp_path, paths)
    missing = scores['prediction_files']['missing']
    assert missing in ([], ['img1'])
    # 4 images x 2 masks, all perfect but a removed img1
    assert scores['Recall (IoU-only)'] == pytest.approx(
        (8 - 2 * len(missing)) / 8 * 100)
    assert scores['mIoU'] == pytest.approx((4 - len(missing)) / 4 * 100)


def duplicate(paths):
    src = osp.join(paths['pred_dir'], 'img1.json')
    content = json.load(open(src))
    json.dump(dict(content, pred_masks=[], phrases=[]),
              open(osp.join(paths['pred_dir'], 'a_img1_copy.json'), 'w'))


def missing(paths):
    os.remove(osp.join(paths['pred_dir'], 'img2.json'))


@pytest.mark.parametrize('make, words, recall', [
    (duplicate, ['1 id(s) have more than one prediction file',
                 'a_img1_copy.json'], 100.0),
    (missing, ['1 ground-truth sample(s) have no prediction file', 'img2'],
     75.0),
], ids=['duplicate-image-id', 'missing-prediction-file'])
@pytest.mark.parametrize('strict', [False, True], ids=['report', 'strict'])
def test_duplicate_and_missing_files(make, words, recall, strict, tmp_path,
                                     capsys):
    paths = write_gcg_split(str(tmp_path))
    make(paths)
    out = tmp_path / 'scores.json'
    args = tool_args(paths, '--no-captions', '--out', str(out))
    if strict:
        with pytest.raises(BadRecordError) as err:
            eval_predictions.main(args + ['--strict'])
        assert 'strict mode' in str(err.value)
        assert all(w in str(err.value) for w in words)
        assert not out.exists()
        eval_predictions.main(args)  # without --strict the rest scores
    else:
        eval_predictions.main(args)
        printed = capsys.readouterr().out
        assert all(w in printed for w in words)
    # the file named img1.json is used; the others are scored as usual
    assert strict_json(out)['Recall (IoU-only)'] == pytest.approx(recall)


@pytest.mark.parametrize('case', ['gt-without-num-instances'])
def test_gt_without_num_instances_reports_no_kinds(case, tmp_path, capsys):
    paths = write_gcg_split(str(tmp_path), num_instances=False)
    out = tmp_path / 'scores.json'
    eval_predictions.main(tool_args(paths, '--no-captions', '--out',
                                    str(out)))
    printed = capsys.readouterr().out
    assert '8 of 8 mask annotations' in printed
    assert 'mask_gt.json have no "num_instances"' in printed
    scores = strict_json(out)
    assert scores['uni/AP50'] is None and scores['multi/AP50'] is None
    assert scores['AP50'] == pytest.approx(100.0)  # the rest is scored


@pytest.mark.parametrize('case', ['java-missing'])
def test_java_missing_keeps_the_mask_metrics(case, tmp_path, monkeypatch):
    paths = write_gcg_split(str(tmp_path))
    monkeypatch.setenv('PATH', str(tmp_path / 'no-java-here'))
    assert shutil.which('java') is None
    out = tmp_path / 'scores.json'
    with pytest.raises(SystemExit) as exc:
        eval_predictions.main(tool_args(paths, '--out', str(out)))
    assert 'Java is not on PATH' in str(exc.value.code)
    assert '--no-captions' in str(exc.value.code)
    assert strict_json(out)['AP50'] == pytest.approx(100.0)
    assert gcg.caption_tools_problem() is not None


# -- RRSIS-D ------------------------------------------------------------------
@pytest.fixture
def rrsis_folder(synthetic_root, tmp_path):
    """Perfect RRSIS predictions (the GT, as PNGs) for the synthetic test
    split; returns (data root, folder, sent_ids, image size)."""
    from geopixel.evaluation.functional.rrsis_files import (
        _gt_mask, gt_samples, write_prediction_png)
    root = osp.join(synthetic_root, 'rrsisd')
    preds = str(tmp_path / 'preds')
    samples = gt_samples(root, 'test')
    for sample in samples:
        write_prediction_png(preds, sample['sent_id'], _gt_mask(sample))
    return root, preds, [s['sent_id'] for s in samples], samples[0]['size']


def png_of_size(height, width):
    def make(preds, sent_id, size):
        from PIL import Image
        path = osp.join(preds, f'{sent_id}.png')
        Image.fromarray(np.zeros((height, width), np.uint8)).save(path)
        return path, [f'{sent_id}.png', f'sent_id {sent_id}',
                      f'{width}x{height}', 'but the image is']
    return make


def rrsis_json(content, words):
    def make(preds, sent_id, size):
        os.remove(osp.join(preds, f'{sent_id}.png'))
        path = osp.join(preds, f'{sent_id}.json')
        with open(path, 'w') as f:
            json.dump(content(sent_id, size), f)
        return path, [f'{sent_id}.json'] + words
    return make


def rrsis_garbage_png(preds, sent_id, size):
    path = osp.join(preds, f'{sent_id}.png')
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n not really')
    return path, [f'{sent_id}.png', 'not a readable mask image']


def rrsis_rgb_png(preds, sent_id, size):
    from PIL import Image
    path = osp.join(preds, f'{sent_id}.png')
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(path)
    return path, [f'{sent_id}.png', 'one band', 'RGB']


RRSIS_ERRORS = [
    Case('rrsis-png-wrong-size', png_of_size(16, 24), []),
    Case('rrsis-png-not-an-image', rrsis_garbage_png, []),
    Case('rrsis-png-rgb', rrsis_rgb_png, []),
    Case('rrsis-json-bad-rle', rrsis_json(
        lambda s, size: dict(sent_id=s, pred_mask=dict(size=list(size),
                                                       counts='0')),
        ['sent_id', 'malformed RLE counts']), []),
    Case('rrsis-json-rle-wrong-size', rrsis_json(
        lambda s, size: dict(sent_id=s, pred_mask=SMALL_RLE),
        ['[16, 16] does not match']), []),
    Case('rrsis-json-holds-a-number', rrsis_json(
        lambda s, size: 7, ['holds a number']), []),
]


@pytest.mark.parametrize('case', RRSIS_ERRORS, ids=lambda c: c.id)
def test_bad_rrsis_prediction_is_a_named_error(case, rrsis_folder,
                                               tmp_path):
    root, preds, ids, size = rrsis_folder
    bad, words = case.make(preds, ids[1], size)
    out = tmp_path / 'scores.json'
    args = ['--pred-dir', preds, '--data-root', root, '--out', str(out)]
    with pytest.raises(BadRecordError) as err:
        eval_rrsis.main(args)
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    assert not out.exists()
    os.remove(bad)  # the other predictions score perfectly
    eval_rrsis.main(args)
    scores = strict_json(out)
    assert scores['prediction_files']['missing'] == [ids[1]]
    assert scores['mIoU'] == pytest.approx((len(ids) - 1) / len(ids) * 100)


@pytest.mark.parametrize('strict', [False, True],
                         ids=['rrsis-missing-sample-report',
                              'rrsis-missing-sample-strict'])
def test_rrsis_missing_sample(strict, rrsis_folder, tmp_path, capsys):
    root, preds, ids, _ = rrsis_folder
    os.remove(osp.join(preds, f'{ids[0]}.png'))
    out = tmp_path / 'scores.json'
    args = ['--pred-dir', preds, '--data-root', root, '--out', str(out)]
    if strict:
        with pytest.raises(BadRecordError, match=f'strict mode: 1 ground-'
                           f'truth sample.*{ids[0]}'):
            eval_rrsis.main(args + ['--strict'])
        assert not out.exists()
    eval_rrsis.main(args)
    assert f'no prediction file in {preds}' in capsys.readouterr().out
    scores = strict_json(out)
    assert scores['prediction_files']['missing'] == [ids[0]]
    assert scores['samples'] == len(ids)
    assert scores['mIoU'] == pytest.approx((len(ids) - 1) / len(ids) * 100)


@pytest.mark.parametrize('case', ['rrsis-metric-2d-wrong-shape'])
def test_rrsis_metric_refuses_a_2d_prediction_of_another_shape(case):
    from geopixel.evaluation.metrics import RRSISMetric
    gt = np.zeros((1, 20, 30), np.uint8)
    gt[0, 5:15, 5:15] = 1
    good = dict(gt_masks=gt, pred_masks=gt * 2.0 - 1, sent_id=1,
                img_path='/d/a.jpg')
    bad = dict(gt_masks=gt, pred_masks=np.ones((30, 20), np.float32),
               sent_id=2, img_path='/d/b.jpg', ref_id=9)
    metric = RRSISMetric()
    metric.process(None, [good])
    with pytest.raises(ValueError) as err:
        metric.process(None, [bad])
    for word in ('b.jpg', 'ref_id 9', 'sent_id 2', '[30, 20]', '[20, 30]'):
        assert word in str(err.value)
    # the sample scored before is kept
    assert metric.compute_metrics(metric.results)['mIoU'] == 100.0
