"""RRSIS metric against hand-computed cases and the protocol's edge cases."""
import numpy as np
import pytest
import torch
from PIL import Image

from geopixel.evaluation.metrics import RRSISMetric


def sample(pred, gt):
    return dict(pred_masks=None if pred is None else
                np.where(pred, 1.0, -1.0)[None].astype(np.float32),
                gt_masks=np.asarray(gt, np.uint8)[None])


def box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def score(pairs, **kwargs):
    metric = RRSISMetric(**kwargs)
    metric.process(None, [sample(p, g) for p, g in pairs])
    return metric.compute_metrics(metric.results)


def test_hand_computed():
    gt = box(10, 10, 0, 4, 0, 5)  # 20 px
    half = box(10, 10, 0, 4, 0, 5) | box(10, 10, 4, 8, 0, 5)  # I 20, U 40
    pairs = [
        (gt, gt),  # IoU 1
        (half, gt),  # IoU exactly 0.5: counts for P@0.5 (>=)
        (box(10, 10, 5, 10, 5, 10), gt),  # IoU 0
    ]
    s = score(pairs)
    assert s['P@0.5'] == pytest.approx(200 / 3)
    assert s['P@0.6'] == s['P@0.9'] == pytest.approx(100 / 3)
    assert s['mIoU'] == pytest.approx(50.0)
    # oIoU = sum I / sum U = (20 + 20 + 0) / (20 + 40 + 45)
    assert s['oIoU'] == pytest.approx(40 / 105 * 100)
    assert s['samples'] == 3


def test_perfect_is_100_and_empty_union_is_0():
    gt = box(8, 8, 1, 5, 1, 5)
    assert score([(gt, gt)]) == {
        'P@0.5': 100.0, 'P@0.6': 100.0, 'P@0.7': 100.0, 'P@0.8': 100.0,
        'P@0.9': 100.0, 'oIoU': 100.0, 'mIoU': 100.0, 'samples': 1
    }
    empty = np.zeros((8, 8), bool)
    s = score([(empty, empty), (gt, gt)])
    assert s['mIoU'] == 50.0  # the empty-union sample scores 0, not 1


def test_no_predicted_mask_counts_as_empty():
    gt = box(8, 8, 1, 5, 1, 5)
    s = score([(None, gt), (gt, gt)])
    assert s['samples'] == 2 and s['mIoU'] == 50.0


def test_480_mode_uses_pil_nearest():
    rng = np.random.default_rng(0)
    gt = rng.random((800, 800)) > 0.7
    pred = rng.random((800, 800)) > 0.5
    s = score([(pred, gt)], resolution=480)
    small = [np.asarray(Image.fromarray(m.astype(np.uint8)).resize(
        (480, 480), Image.NEAREST)).astype(bool) for m in (pred, gt)]
    iou = (small[0] & small[1]).sum() / (small[0] | small[1]).sum()
    assert s['mIoU'] == pytest.approx(iou * 100)
    assert s['mIoU'] != pytest.approx(score([(pred, gt)])['mIoU'], abs=1e-6)


def test_prediction_shapes():
    gt = box(8, 6, 1, 5, 1, 5)
    logits = np.where(gt, 1.0, -1.0).astype(np.float32)
    ref = score([(gt, gt)])
    # one [H, W] mask of exactly the GT's shape is the prediction
    metric = RRSISMetric()
    metric.process(None, [dict(pred_masks=logits, gt_masks=gt[None])])
    assert metric.compute_metrics(metric.results) == ref
    # [N, H, W]: the first mask is the prediction; N = 0 is empty
    metric = RRSISMetric()
    metric.process(None, [
        dict(pred_masks=torch.from_numpy(np.stack([logits, -logits])),
             gt_masks=torch.from_numpy(gt[None].astype(np.uint8))),
        dict(pred_masks=np.zeros((0, 8, 6), np.float32), gt_masks=gt)])
    assert metric.compute_metrics(metric.results)['mIoU'] == 50.0
    # a list of [H, W] masks reads like [N, H, W]; an empty list is empty
    metric = RRSISMetric()
    metric.process(None, [
        dict(pred_masks=[torch.from_numpy(logits), torch.from_numpy(-logits)],
             gt_masks=gt[None]),
        dict(pred_masks=[], gt_masks=gt)])
    assert metric.compute_metrics(metric.results)['mIoU'] == 50.0


@pytest.mark.parametrize('pred_shape', [(6, 8), (1, 6), (1, 8, 7), (8, 6, 1),
                                        (2, 1, 8, 6)])
def test_wrong_prediction_shape_is_an_error(pred_shape):
    gt = box(8, 6, 1, 5, 1, 5)
    sample = dict(pred_masks=np.ones(pred_shape, np.float32),
                  gt_masks=gt[None], img_path='/data/img_7.jpg', ref_id=3,
                  sent_id=41)
    metric = RRSISMetric()
    with pytest.raises(ValueError) as err:
        metric.process(None, [sample])
    message = str(err.value)
    assert 'img_7.jpg' in message and 'sent_id 41' in message
    assert str(list(pred_shape)) in message and '[8, 6]' in message
    assert metric.results == []


def test_gt_must_be_one_mask():
    gt = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(ValueError, match=r'sent_id 5.*\(2, 8, 8\)'):
        RRSISMetric().process(None, [dict(pred_masks=None, gt_masks=gt,
                                          sent_id=5)])


def test_prediction_dir_writes_one_png_per_sentence(tmp_path):
    gt = box(8, 6, 1, 5, 1, 5)
    metric = RRSISMetric(prediction_dir=str(tmp_path), resolution=480)
    metric.process(None, [dict(sample(gt, gt), sent_id=12),
                          dict(sample(None, gt), sent_id=13)])
    written = np.asarray(Image.open(tmp_path / '12.png'))
    assert written.shape == (8, 6)  # original size, not 480
    assert ((written > 0) == gt).all()
    assert not np.asarray(Image.open(tmp_path / '13.png')).any()
    with pytest.raises(ValueError, match='no sent_id'):
        metric.process(None, [sample(gt, gt)])
