"""RRSIS-D prediction files: written by RRSISMetric, scored by
tools/analysis/eval_rrsis_predictions.py, equal to the metric."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from geopixel.evaluation.metrics import RRSISMetric
from geopixel.evaluation.functional.rrsis_files import gt_samples
from geopixel.utils import BadRecordError, encode_rle
from .gcg_helpers import strict_json
from .test_gcg_files import load_tool

eval_rrsis = load_tool('eval_rrsis_predictions')


@pytest.fixture(scope='module')
def rrsis_samples(synthetic_root):
    """(data_root, [metric sample dicts]) of the synthetic test split, with
    predictions: the GT for even samples, a shifted GT for odd ones."""
    from geopixel.datasets import (LoadGroundingMasks, LoadImageRGB,
                                   RRSISDDataset)
    root = osp.join(synthetic_root, 'rrsisd')
    dataset = RRSISDDataset(data_root=root, split='test',
                            pipeline=[dict(type=LoadImageRGB),
                                      dict(type=LoadGroundingMasks)])
    samples = []
    for k in range(len(dataset)):
        results = dataset[k]
        gt = results['gt_masks']
        pred = gt if k % 2 == 0 else np.roll(gt, 7 * k, axis=2)
        samples.append(dict(gt_masks=gt, pred_masks=pred * 2.0 - 1.0,
                            img_path=results['img_path'],
                            ref_id=results['ref_id'],
                            sent_id=results['sent_id']))
    assert len(samples) >= 4
    return root, samples


def metric_scores(samples, **kwargs):
    metric = RRSISMetric(**kwargs)
    metric.process(None, samples)
    return metric.compute_metrics(metric.results)


@pytest.mark.parametrize('resolution', [None, 480])
def test_files_score_like_the_metric(rrsis_samples, tmp_path, resolution,
                                     capsys):
    root, samples = rrsis_samples
    preds = str(tmp_path / 'preds')
    expected = metric_scores(samples, resolution=resolution,
                             prediction_dir=preds)
    assert 0 < expected['mIoU'] < 100
    assert len(os.listdir(preds)) == len(samples)
    # the JSON/RLE form is accepted too
    first = samples[1]
    os.remove(osp.join(preds, f'{first["sent_id"]}.png'))
    with open(osp.join(preds, f'{first["sent_id"]}.json'), 'w') as f:
        json.dump(dict(sent_id=first['sent_id'], pred_mask=encode_rle(
            (first['pred_masks'][0] > 0).astype(np.uint8))), f)
    out = str(tmp_path / 'scores.json')
    args = ['--pred-dir', preds, '--data-root', root, '--out', out]
    if resolution:
        args += ['--resolution', str(resolution)]
    eval_rrsis.main(args)
    scores = strict_json(out)
    for key, value in expected.items():
        assert scores[key] == pytest.approx(value), key
    assert scores['prediction_files']['missing_count'] == 0
    printed = capsys.readouterr().out
    assert f'{expected["mIoU"]:.2f}' in printed


def test_ground_truth_comes_from_instances_json(rrsis_samples):
    root, samples = rrsis_samples
    gts = gt_samples(root, 'test')
    assert [g['sent_id'] for g in gts] == [str(s['sent_id'])
                                           for s in samples]
    assert all(g['size'] == s['gt_masks'].shape[1:]
               for g, s in zip(gts, samples))


def test_duplicates_and_missing_files(rrsis_samples, tmp_path, capsys):
    root, samples = rrsis_samples
    preds = str(tmp_path / 'p')
    metric_scores(samples, prediction_dir=preds)
    gone = str(samples[0]['sent_id'])
    os.remove(osp.join(preds, f'{gone}.png'))
    twin = samples[2]
    # an empty JSON mask for a sentence that has its PNG: both files are
    # named after the sent_id, so the first in sorted order (.json) wins
    with open(osp.join(preds, f'{twin["sent_id"]}.json'), 'w') as f:
        json.dump(dict(sent_id=twin['sent_id'], pred_mask=encode_rle(
            np.zeros(twin['gt_masks'].shape[1:], np.uint8))), f)
    out = str(tmp_path / 's.json')
    eval_rrsis.main(['--pred-dir', preds, '--data-root', root, '--out', out])
    printed = capsys.readouterr().out
    assert '1 id(s) have more than one prediction file' in printed
    assert f'{twin["sent_id"]}.png' in printed
    assert '1 ground-truth sample(s) have no prediction file' in printed
    scores = strict_json(out)
    files = scores['prediction_files']
    assert files['missing'] == [gone]
    assert files['duplicates'][str(twin['sent_id'])]['used'].endswith(
        '.json')
    # the two emptied samples score 0; the others as before
    expected = metric_scores([
        dict(s, pred_masks=None) if k in (0, 2) else s
        for k, s in enumerate(samples)])
    assert scores['mIoU'] == pytest.approx(expected['mIoU'])
    with pytest.raises(BadRecordError, match=r'strict mode: 1 id\(s\).*1 '
                       r'ground-truth sample'):
        eval_rrsis.main(['--pred-dir', preds, '--data-root', root,
                         '--strict'])


def test_prediction_for_an_unknown_sentence_is_an_error(rrsis_samples,
                                                        tmp_path):
    root, samples = rrsis_samples
    preds = str(tmp_path / 'p')
    metric_scores(samples, prediction_dir=preds)
    os.rename(osp.join(preds, f'{samples[0]["sent_id"]}.png'),
              osp.join(preds, '999999.png'))
    with pytest.raises(BadRecordError, match='sent_ids not in the ground '
                       'truth: 999999'):
        eval_rrsis.main(['--pred-dir', preds, '--data-root', root,
                         '--split', 'test'])


@pytest.mark.slow
def test_test_py_out_writes_rrsis_prediction_files(synthetic_root, tmp_path):
    """tools/test.py --out DIR on an RRSIS config writes one PNG per
    sentence; the scorer gives the metrics test.py reported."""
    import subprocess
    import sys

    import torch

    from geopixel.testing import TOY_RRSIS_CONFIG, ToyGroundingModel
    from .test_gcg_files import REPO
    (tmp_path / 'data').mkdir()
    os.symlink(synthetic_root, tmp_path / 'data' / 'synthetic')
    torch.manual_seed(0)
    ckpt = tmp_path / 'toy.pth'
    torch.save(dict(state_dict=ToyGroundingModel().state_dict(), meta={}),
               ckpt)
    preds = tmp_path / 'preds'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'test.py'),
         TOY_RRSIS_CONFIG, str(ckpt), '--work-dir', str(tmp_path / 'work'),
         '--out', str(preds), '--cfg-options',
         'test_evaluator.type=geopixel.RRSISMetric'],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=REPO,
                               OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.load(open(next(
        osp.join(d, f) for d, _, fs in os.walk(tmp_path / 'work')
        for f in fs if f == 'metrics.json')))
    out = str(tmp_path / 'scores.json')
    eval_rrsis.main(['--pred-dir', str(preds), '--data-root',
                     osp.join(synthetic_root, 'rrsisd'), '--out', out])
    scores = strict_json(out)
    assert scores['samples'] == metrics['rrsis/samples'] == len(
        os.listdir(preds))
    for key in ('P@0.5', 'oIoU', 'mIoU'):
        assert scores[key] == pytest.approx(metrics[f'rrsis/{key}']), key
