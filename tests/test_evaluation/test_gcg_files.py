"""eval_predictions.py and GCGMetric: duplicates, missing files, --strict,
kinds, valid JSON, mask metrics kept when captions fail, quiet tools."""
import importlib.util
import json
import os
import os.path as osp
import shutil
import stat

import numpy as np
import pytest

from geopixel.evaluation.functional import gcg
from geopixel.evaluation.functional.gcg_files import (glamm_gt_from_dataset,
                                           records_from_files)
from geopixel.utils import BadRecordError
from .gcg_helpers import (LABELS, image_masks, strict_json, tool_args,
                          write_gcg_split)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(name):
    path = osp.join(REPO, 'tools', 'analysis', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eval_predictions = load_tool('eval_predictions')


def copy_as(paths, src_id, name, **changes):
    src = osp.join(paths['pred_dir'], f'{src_id}.json')
    content = json.load(open(src))
    content.update(changes)
    with open(osp.join(paths['pred_dir'], name), 'w') as f:
        json.dump(content, f)


def test_perfect_split_scores_100_and_prints_two_decimals(tmp_path, capsys):
    paths = write_gcg_split(str(tmp_path))
    out = str(tmp_path / 'scores.json')
    eval_predictions.main(tool_args(paths, '--no-captions', '--out', out))
    printed = capsys.readouterr().out
    assert 'Recall (IoU-only)' in printed and '100.00' in printed
    assert '100.0 ' not in printed.replace('100.00', '')
    scores = strict_json(out)
    for key in ('AP50', 'uni/AP50', 'multi/AP50', 'Recall (IoU-only)',
                'uni/Recall (IoU-only)', 'multi/mIoU'):
        assert scores[key] == pytest.approx(100.0), key
    assert 'Recall' not in scores
    assert scores['kinds'] == 'num_instances'
    assert scores['prediction_files']['missing_count'] == 0


def test_duplicate_image_ids_use_the_file_named_after_the_id(tmp_path,
                                                             capsys):
    paths = write_gcg_split(str(tmp_path))
    # an empty prediction for img1 under other names: img1.json still wins
    for name in ('a_copy.json', 'z_copy.json'):
        copy_as(paths, 'img1', name, pred_masks=[], phrases=[])
    # img2's own file is removed; two others claim img2: the first in
    # sorted order (b_...) wins
    copy_as(paths, 'img2', 'c_img2.json', pred_masks=[], phrases=[])
    copy_as(paths, 'img2', 'b_img2.json')
    os.remove(osp.join(paths['pred_dir'], 'img2.json'))
    records, report = records_from_files(paths['caption_gt'],
                                         paths['mask_gt'],
                                         paths['pred_dir'])
    assert {k: (osp.basename(u), [osp.basename(f) for f in i])
            for k, (u, i) in report.duplicates.items()} == {
        'img1': ('img1.json', ['a_copy.json', 'z_copy.json']),
        'img2': ('b_img2.json', ['c_img2.json'])}
    assert all(len(r['pred_masks']) == 2 for r in records)
    out = str(tmp_path / 's.json')
    eval_predictions.main(tool_args(paths, '--no-captions', '--out', out))
    printed = capsys.readouterr().out
    assert '2 id(s) have more than one prediction file' in printed
    assert 'a_copy.json' in printed and 'c_img2.json' in printed
    scores = strict_json(out)
    assert scores['AP50'] == pytest.approx(100.0)
    assert scores['prediction_files']['duplicate_count'] == 2
    assert scores['prediction_files']['duplicates']['img2']['used'].endswith(
        'b_img2.json')
    with pytest.raises(BadRecordError, match=r'strict mode: 2 id\(s\)'):
        eval_predictions.main(tool_args(paths, '--no-captions', '--strict'))


def test_missing_prediction_files_are_reported_and_scored_empty(tmp_path,
                                                                capsys):
    paths = write_gcg_split(str(tmp_path), images=14)
    for k in range(1, 13):
        os.remove(osp.join(paths['pred_dir'], f'img{k}.json'))
    out = str(tmp_path / 's.json')
    eval_predictions.main(tool_args(paths, '--no-captions', '--out', out))
    printed = capsys.readouterr().out
    assert '12 ground-truth sample(s) have no prediction file' in printed
    assert '(2 more)' in printed  # the printed list is cut at 10
    scores = strict_json(out)
    assert sorted(scores['prediction_files']['missing']) == sorted(
        f'img{k}' for k in range(1, 13))  # the JSON keeps all of them
    assert scores['Recall (IoU-only)'] == pytest.approx(2 / 14 * 100)
    with pytest.raises(BadRecordError) as err:
        eval_predictions.main(tool_args(paths, '--no-captions', '--strict'))
    assert '12 ground-truth sample(s)' in str(err.value)
    assert 'img1' in str(err.value) and 'img12' in str(err.value)


def test_kinds_are_explicit(tmp_path, capsys):
    paths = write_gcg_split(str(tmp_path), num_instances=False)
    out = str(tmp_path / 's.json')
    eval_predictions.main(tool_args(paths, '--no-captions', '--out', out))
    printed = capsys.readouterr().out
    assert 'have no "num_instances"' in printed
    assert 'geopixeld_to_glamm_gt.py' in printed
    assert '--kinds connected-components' in printed
    scores = strict_json(out)
    assert scores['AP50'] == pytest.approx(100.0)  # overall unaffected
    assert scores['uni/AP50'] is None and scores['multi/mIoU'] is None
    assert scores['kinds'] is None
    eval_predictions.main(tool_args(paths, '--no-captions', '--out', out,
                                    '--kinds', 'connected-components'))
    scores = strict_json(out)
    # one box per mask: every mask is one component, so all are uni
    assert scores['kinds'] == 'connected-components'
    assert scores['uni/AP50'] == pytest.approx(100.0)
    assert scores['multi/AP50'] is None


def test_connected_components_count_instances(tmp_path):
    paths = write_gcg_split(str(tmp_path), images=1, num_instances=False)
    mask_gt = json.load(open(paths['mask_gt']))
    from geopixel.utils import encode_rle
    two = np.zeros((32, 32), np.uint8)
    two[0:4, 0:4] = 1
    two[5:9, 5:9] = 1  # diagonal gap of one pixel: two components
    touching = two.copy()
    touching[4, 4] = 1  # 8-connected through the corner: one component
    for ann, m in zip(mask_gt['annotations'], (two, touching)):
        ann['segmentation'] = encode_rle(m)
    json.dump(mask_gt, open(paths['mask_gt'], 'w'))
    records, _ = records_from_files(paths['caption_gt'], paths['mask_gt'],
                                    paths['pred_dir'],
                                    kinds='connected-components')
    assert records[0]['gt_kinds'] == ['multi', 'uni']


def without_java(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(gcg.shutil, 'which', lambda name, *a, **k: None
                        if name == 'java' else real(name, *a, **k))


def test_missing_java_keeps_the_mask_metrics(tmp_path, monkeypatch, capsys):
    paths = write_gcg_split(str(tmp_path))
    out = str(tmp_path / 's.json')
    without_java(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        eval_predictions.main(tool_args(paths, '--out', out))
    message = str(exc.value.code)
    assert 'Java is not on PATH' in message
    assert 'openjdk-17-jre-headless' in message and '--no-captions' in message
    assert out in message
    scores = strict_json(out)
    assert scores['AP50'] == pytest.approx(100.0) and 'CIDEr' not in scores
    assert 'AP50' in capsys.readouterr().out  # printed before the stop


def test_gcg_metric_checks_java_when_built(monkeypatch):
    from geopixel.evaluation.metrics import GCGMetric
    without_java(monkeypatch)
    with pytest.raises(gcg.CaptionToolsMissing,
                       match='with_captions=False'):
        GCGMetric()
    GCGMetric(with_captions=False)  # mask metrics only: fine


def gcg_sample(k, counts):
    import torch
    masks = torch.from_numpy(np.stack(image_masks(k)))
    text = 'a <p> car </p> [SEG] and <p> cars </p> [SEG]'
    return dict(img_path=f'/data/img{k}.png', gt_masks=masks,
                mask_instance_counts=counts, gt_answer=text, pred_text=text,
                phrases=LABELS, pred_masks=masks.float() * 2 - 1)


def test_gcg_metric_without_instance_counts_leaves_the_split_out(
        tmp_path, capsys):
    from mmengine.logging import MMLogger

    from geopixel.evaluation.metrics import GCGMetric
    MMLogger.get_instance('gcg_test')
    metric = GCGMetric(with_captions=False,
                       prediction_dir=str(tmp_path / 'p'))
    samples = [gcg_sample(0, [1, 3]), gcg_sample(1, None),
               {k: v for k, v in gcg_sample(2, None).items()
                if k != 'mask_instance_counts'}]
    metric.process(None, samples)
    capsys.readouterr()
    scores = metric.compute_metrics(metric.results)
    assert scores['AP50'] == pytest.approx(100.0)
    assert 'Recall (IoU-only)' in scores
    assert not any(k.startswith(('uni/', 'multi/')) for k in scores)
    assert all(isinstance(v, (int, float)) for v in scores.values())
    log = capsys.readouterr().out
    assert log.count('no uni/multi-target split: 2 of 3 samples') == 1
    assert 'mask metrics: AP50: 100.00' in log
    assert log.index('mask metrics') > log.index('uni/multi')
    assert sorted(os.listdir(tmp_path / 'p')) == [
        'img0.json', 'img1.json', 'img2.json']

    known = GCGMetric(with_captions=False)
    known.process(None, [gcg_sample(0, [1, 3]), gcg_sample(1, [1, 1])])
    scores = known.compute_metrics(known.results)
    assert scores['uni/AP50'] == pytest.approx(100.0)
    assert scores['multi/AP50'] == pytest.approx(100.0)


def test_gt_converter_omits_num_instances_the_source_does_not_give():
    masks = np.stack(image_masks(0))
    answer = '<p> car </p> [SEG] and <p> cars </p> [SEG]'
    base = dict(img_path='/d/x.png', ori_shape=(32, 32),
                conversations=[('user', 'q'), ('assistant', answer)],
                gt_masks=masks)
    _, with_counts = glamm_gt_from_dataset(
        [dict(base, mask_instance_counts=[1, 4])])
    assert [a['num_instances'] for a in with_counts['annotations']] == [1, 4]
    _, without = glamm_gt_from_dataset([dict(base,
                                             mask_instance_counts=None)])
    assert not any('num_instances' in a for a in without['annotations'])


def fake_java(folder, script):
    path = osp.join(folder, 'java')
    with open(path, 'w') as f:
        f.write('#!/bin/sh\n' + script)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)


def test_java_failure_raises_with_its_output(tmp_path, monkeypatch):
    pytest.importorskip('pycocoevalcap')
    fake_java(str(tmp_path), 'echo "Error: no such jar (fake java)" >&2\n'
              'exit 1\n')
    monkeypatch.setenv('PATH', f'{tmp_path}:{os.environ["PATH"]}')
    with pytest.raises(RuntimeError) as err:
        gcg.caption_scores({'a': 'two ships'}, {'a': 'two ships'})
    assert 'caption scoring failed' in str(err.value)
    assert 'no such jar (fake java)' in str(err.value)
