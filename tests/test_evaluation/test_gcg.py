"""RS-GCG scoring against GLaMM's rules and the reference libraries."""
import json
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest

from geopixel.evaluation.functional.gcg import (caption_scores, greedy_matches,
                                     image_miou, image_recall_matches,
                                     score_gcg)
from geopixel.structures import glamm_caption, glamm_phrases
from geopixel.utils import encode_rle

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
needs_java = pytest.mark.skipif(
    shutil.which('java') is None, reason='caption metrics need Java')


def box(y0, y1, x0, x1, size=32):
    m = np.zeros((size, size), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def record(image_id, gt_masks, gt_labels, kinds=None, pred_masks=None,
           phrases=None, caption='a plane near two ships', pred_caption=None):
    return dict(
        image_id=image_id,
        gt_caption=caption,
        gt_labels=gt_labels,
        gt_masks=[encode_rle(m) for m in gt_masks],
        gt_kinds=kinds or ['uni'] * len(gt_masks),
        pred_caption=caption if pred_caption is None else pred_caption,
        pred_phrases=gt_labels if phrases is None else phrases,
        pred_masks=[encode_rle(m)
                    for m in (gt_masks if pred_masks is None else pred_masks)])


def test_caption_cleaning_and_phrases_as_glamm():
    text = ("The <p> tennis court-1 </p> [SEG] at right, <p>x</p>[SEG] and\n"
            "  two   <p>ships </p> [SEG].")
    assert glamm_caption(text) == 'The tennis court-1 at right, x and two ' \
        'ships .'
    assert glamm_phrases(text) == ['tennis court-1', 'x', 'ships']


def test_greedy_matching_ties_go_row_major():
    m = np.array([[0.5, 0.5], [0.5, 0.2]])
    assert greedy_matches(m) == [(0, 0, 0.5), (1, 1, 0.2)]
    assert greedy_matches(np.zeros((2, 2))) == []


def test_extra_predicted_masks_leave_miou_unchanged():
    gt = [box(0, 8, 0, 8), box(10, 20, 10, 20)]
    pred = gt + [box(25, 30, 0, 5), box(0, 8, 0, 9)]
    assert image_miou(pred, gt)[0] == 1.0
    assert image_miou([], gt)[0] == 0.0


def test_recall_stops_at_first_failing_pair():
    gt = [box(0, 10, 0, 10), box(12, 22, 12, 22)]
    pred = [box(0, 10, 0, 10), box(12, 22, 12, 14)]  # IoU 1 and 0.2
    assert image_recall_matches(gt, pred, ['a', 'b'], ['a', 'b']) == [(0,
                                                                         0)]


def sims(gt, pred):
    return np.array([[1.0 if g == p else 0.0 for p in pred] for g in gt])


def test_recall_count_mismatch_follows_the_reference():
    gt = [box(0, 10, 0, 10), box(12, 22, 12, 22)]
    # more masks than phrases: the greedy loop reaches mask 1, which has no
    # phrase: the reference fails (None) and the whole image scores 0
    pred = [box(0, 10, 0, 9), box(12, 22, 12, 22)]
    assert image_recall_matches(gt, pred, ['a', 'b'], ['a'], sims) is None
    # more phrases than masks never fails
    assert image_recall_matches(gt, pred[:1], ['a', 'b'], ['a', 'b'],
                                sims) == [(0, 0)]
    # a stray low-IoU extra mask never fails
    stray = [box(0, 10, 0, 10), box(12, 22, 12, 22), box(30, 32, 30, 32)]
    assert len(image_recall_matches(gt, stray, ['a', 'b'], ['a', 'b'],
                                    sims)) == 2
    # and the text test can stop the loop
    assert image_recall_matches(gt, gt, ['a', 'b'], ['x', 'y'], sims) == []


def test_recall_failure_applies_without_a_text_scorer():
    """GLaMM's IndexError comes from the (labels x phrases) matrix shape,
    so IoU-only recall fails on the same images (it used not to)."""
    gt = [box(0, 10, 0, 10), box(12, 22, 12, 22)]
    pred = [box(0, 10, 0, 9), box(12, 22, 12, 22)]  # 2 masks, 1 phrase
    # pair (1, 1) (IoU 1) is taken first and points past the phrase list;
    # the match (0, 0) that would follow is never reached
    assert image_recall_matches(gt, pred, ['a', 'b'], ['a']) is None
    # a match found before the failing pair is lost too
    first = [box(12, 22, 12, 22), box(0, 10, 0, 9)]  # (1, 0) then (0, 1)
    assert image_recall_matches(gt, first, ['a', 'b'], ['b']) is None
    # more GT masks than labels: a passing pair on GT mask 1 fails too
    assert image_recall_matches(gt, gt, ['a'], ['a', 'b']) is None
    # ... but only once the IoU test passes: a low-IoU pair stops first
    low = [box(0, 10, 0, 10), box(25, 32, 25, 32)]
    assert image_recall_matches(gt, low, ['a', 'b'], ['a']) == [(0, 0)]
    # no phrase at all and a passing pair: fails; no passing pair: no match
    assert image_recall_matches(gt, gt, ['a', 'b'], []) is None
    assert image_recall_matches(gt, [], ['a', 'b'], []) == []


def test_recall_ties_go_row_major():
    gt = [box(0, 10, 0, 10), box(0, 10, 0, 10)]  # two identical GT masks
    pred = [box(0, 10, 0, 10)]
    # IoU 1 with both: the first GT row wins
    assert image_recall_matches(gt, pred, ['a', 'b'], ['a']) == [(0, 0)]


def test_count_mismatch_adds_no_true_positive_but_counts_gt():
    gt = [box(0, 10, 0, 10), box(12, 22, 12, 22)]
    recs = [record('a', gt, ['a', 'b'], phrases=['a']),
            record('b', gt, ['a', 'b'])]
    for scorer, key in ((sims, 'Recall'), (None, 'Recall (IoU-only)')):
        scores = score_gcg(recs, scorer, with_captions=False)
        assert scores[key] == 50.0  # 2 TP out of 4 GT phrases
        assert scores['recall_failed_images'] == 1
    assert 'Recall' not in score_gcg(recs, with_captions=False)


def test_failed_image_gives_no_true_positive_to_any_kind():
    uni, multi = box(0, 10, 0, 10), box(12, 22, 12, 22)
    failing = record('a', [uni, multi], ['car', 'cars'],
                     kinds=['uni', 'multi'], phrases=['car'])
    fine = record('b', [uni, multi], ['car', 'cars'],
                  kinds=['uni', 'multi'])
    s = score_gcg([failing, fine], with_captions=False)
    # denominators: 2 labels per image, one of each kind
    assert s['Recall (IoU-only)'] == 50.0
    assert s['uni/Recall (IoU-only)'] == 50.0
    assert s['multi/Recall (IoU-only)'] == 50.0


def reference_ap50(recs):
    """pycocotools called directly on files, as GLaMM does."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from pycocotools import mask as mask_utils
    images, anns, dets = [], [], []
    for rec in recs:
        images.append(dict(id=rec['image_id'], height=32, width=32))
        for rle in rec['gt_masks']:
            r = dict(rle, counts=rle['counts'].encode())
            anns.append(dict(id=len(anns) + 1, image_id=rec['image_id'],
                             category_id=1, segmentation=rle,
                             area=float(mask_utils.area(r)), iscrowd=0,
                             bbox=list(mask_utils.toBbox(r))))
        for rle in rec['pred_masks']:
            dets.append(dict(image_id=rec['image_id'], category_id=1,
                             segmentation=rle, score=1.0))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dict(images=images, annotations=anns,
                          categories=[dict(id=1)])
        gt.createIndex()
        e = COCOeval(gt, gt.loadRes(dets), 'segm')
        e.params.catIds = [1]
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats[1] * 100


def test_ap50_equals_pycocotools():
    rng = np.random.default_rng(1)
    recs = []
    for i in range(6):
        gt = [box(*sorted(rng.integers(0, 32, 2)), *sorted(rng.integers(
            0, 32, 2))) for _ in range(3)]
        gt = [g if g.any() else box(0, 4, 0, 4) for g in gt]
        pred = [np.roll(g, int(rng.integers(-3, 4)), axis=1) for g in gt]
        pred.append(box(0, 3, 0, 3))
        recs.append(record(f'img{i}', gt, ['a', 'b', 'c'], pred_masks=pred))
    ours = score_gcg(recs, with_captions=False)['AP50']
    assert ours == pytest.approx(reference_ap50(recs), abs=1e-9)
    assert 0 < ours < 100


def test_uni_multi_split_ignores_the_other_kind():
    uni, multi = box(0, 10, 0, 10), box(15, 30, 15, 30)
    rec = record('a', [uni, multi], ['car', 'cars'], kinds=['uni', 'multi'],
                 pred_masks=[uni, multi])
    scores = score_gcg([rec], with_captions=False)
    # the correct multi-target mask is not a false positive for uni AP50
    assert scores['uni/AP50'] == pytest.approx(100.0)
    assert scores['multi/AP50'] == pytest.approx(100.0)
    only_multi = record('a', [uni, multi], ['car', 'cars'],
                        kinds=['uni', 'multi'], pred_masks=[multi])
    s = score_gcg([only_multi], with_captions=False)
    assert s['uni/mIoU'] == 0.0 and s['multi/mIoU'] == 100.0
    assert s['mIoU'] == 100.0  # matched pairs only
    assert s['uni/Recall (IoU-only)'] == 0.0
    assert s['multi/Recall (IoU-only)'] == 100.0


def test_unknown_kinds_give_no_split():
    uni, multi = box(0, 10, 0, 10), box(15, 30, 15, 30)
    known = record('a', [uni], ['car'], kinds=['uni'])
    unknown = dict(record('b', [multi], ['cars']), gt_kinds=None)
    s = score_gcg([known, unknown], with_captions=False)
    assert s['AP50'] == pytest.approx(100.0)
    for key in ('uni/AP50', 'uni/mIoU', 'multi/AP50',
                'multi/Recall (IoU-only)'):
        assert s[key] is None, key  # null, never NaN nor "all uni"


@pytest.mark.slow
@needs_java
def test_perfect_prediction_and_caption_metrics_equal_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    caps = ['a white plane is parked at the top left of the apron',
            'two ships sail on the dark water near the coast',
            'a green tennis court lies next to a road with cars']
    recs = [record(f'i{k}', [box(0, 8, 0, 8)], ['x'], caption=c)
            for k, c in enumerate(caps)]
    perfect = score_gcg(recs)
    for key in ('AP50', 'mIoU', 'Recall (IoU-only)', 'METEOR'):
        assert perfect[key] == pytest.approx(100.0), key
    assert perfect['CIDEr'] == pytest.approx(1000.0)  # CIDEr-D scale
    cands = ['a white plane at top left', 'ships on the water',
             'a tennis court near a road']
    ours = caption_scores({f'i{k}': c for k, c in enumerate(caps)},
                          {f'i{k}': c for k, c in enumerate(cands)})
    tok = PTBTokenizer()
    gts = tok.tokenize({f'i{k}': [{'caption': c}] for k, c in enumerate(caps)})
    res = tok.tokenize({f'i{k}': [{'caption': c}]
                        for k, c in enumerate(cands)})
    assert ours['CIDEr'] == pytest.approx(Cider().compute_score(gts, res)[0])
    assert ours['METEOR'] == pytest.approx(
        Meteor().compute_score(gts, res)[0])
    assert 0 < ours['METEOR'] < 1


@needs_java
def test_single_image_cider_is_zero_and_the_java_tools_are_quiet(capfd):
    scores = caption_scores({'a': 'two ships on the water'},
                            {'a': 'two ships on the water'})
    assert scores['CIDEr'] == 0.0 and scores['METEOR'] == pytest.approx(1.0)
    # the tokenizer's "PTBTokenizer tokenized ..." goes to the process's
    # stderr, which only a file-descriptor redirect hides
    captured = capfd.readouterr()
    assert captured.out == '' and captured.err == ''


def test_gt_converter_and_prediction_folder(synthetic_root, tmp_path):
    """GeoPixelD test layout -> GLaMM GT files; perfect prediction files
    score 100 through tools/analysis/eval_predictions.py."""
    from geopixel.datasets import (GeoPixelDDataset, LoadGroundingMasks,
                                   LoadImageRGB)
    from geopixel.evaluation.functional.gcg_files import glamm_gt_from_dataset
    from geopixel.evaluation.functional.gcg_files import write_prediction
    out = tmp_path / 'gt'
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'dataset_converters',
                 'geopixeld_to_glamm_gt.py'), '--ann',
        osp.join(synthetic_root, 'geopixeld', 'GeoPixelD', 'test'),
        '--out-dir', str(out)
    ], check=True, capture_output=True, env={'PYTHONPATH': REPO,
                                            'PATH': '/usr/bin:/bin'})
    caption_gt = json.load(open(out / 'test_gcg_coco_caption_gt.json'))
    mask_gt = json.load(open(out / 'test_gcg_coco_mask_gt.json'))
    dataset = GeoPixelDDataset(
        ann_file=osp.join(synthetic_root, 'geopixeld', 'GeoPixelD', 'test'),
        pipeline=[dict(type=LoadImageRGB), dict(type=LoadGroundingMasks)])
    assert len(caption_gt['images']) == len(dataset)
    again, _ = glamm_gt_from_dataset(dataset)
    assert again == caption_gt
    assert all({'area', 'iscrowd', 'bbox', 'num_instances'} <= set(a)
               for a in mask_gt['annotations'])
    assert any(a['num_instances'] > 1 for a in mask_gt['annotations'])
    by_image = {}
    for ann in mask_gt['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann['segmentation'])
    preds = tmp_path / 'preds'
    for ann in caption_gt['annotations']:
        write_prediction(str(preds), dict(
            image_id=ann['image_id'], pred_caption=ann['caption'],
            pred_phrases=ann['labels'],
            pred_masks=by_image[ann['image_id']]))
    res = tmp_path / 'scores.json'
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'analysis', 'eval_predictions.py'),
        '--pred-dir', str(preds), '--caption-gt',
        str(out / 'test_gcg_coco_caption_gt.json'), '--mask-gt',
        str(out / 'test_gcg_coco_mask_gt.json'), '--no-captions', '--out',
        str(res)
    ], check=True, capture_output=True, env={'PYTHONPATH': REPO,
                                            'PATH': '/usr/bin:/bin'})
    scores = json.load(open(res))
    for key in ('AP50', 'mIoU', 'Recall (IoU-only)', 'uni/AP50',
                'multi/AP50'):
        assert scores[key] == pytest.approx(100.0), key
    assert scores['recall_text_similarity'] == 'iou_only'


def test_bert_text_scorer_from_a_local_folder(tmp_path):
    """GLaMM's text similarity on a tiny random BERT saved locally."""
    from transformers import BertConfig, BertModel, BertTokenizer

    from geopixel.evaluation.functional.gcg import BertMeanPoolScorer
    vocab = tmp_path / 'vocab.txt'
    words = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'small', 'large',
             'vehicle', 'ship', 'plane', 'white']
    vocab.write_text('\n'.join(words) + '\n')
    BertTokenizer(str(vocab)).save_pretrained(str(tmp_path))
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16,
                         num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(str(tmp_path))
    scorer = BertMeanPoolScorer(str(tmp_path))
    sims = scorer(['small vehicle', 'white ship'],
                  ['small vehicle', 'plane', 'white ship'])
    assert sims.shape == (2, 3)
    assert sims[0, 0] == pytest.approx(1.0) and sims[1, 2] == pytest.approx(
        1.0)
    with pytest.raises(FileNotFoundError, match='IoU-only'):
        BertMeanPoolScorer(str(tmp_path / 'missing'))


def literal_reference_recall(recs, text_sim=1.0):
    """GLaMM's recall loop as a literal program (our reading of
    evaluate.py): a (labels x phrases) similarity matrix indexed with the
    max-IoU pair after the IoU test, the image body inside try/except."""
    from geopixel.evaluation.functional.iou import iou_matrix
    from geopixel.utils import decode_rle
    tp = positives = 0
    for rec in recs:
        try:
            labels, phrases = rec['gt_labels'], rec['pred_phrases']
            positives += len(labels)
            ious = iou_matrix([decode_rle(r) for r in rec['gt_masks']],
                              [decode_rle(r) for r in rec['pred_masks']])
            text = np.full((len(labels), len(phrases)), text_sim)
            found = 0
            while ious.size > 0:
                idx = np.unravel_index(np.argmax(ious), ious.shape)
                if ious[idx] < 0.5 or text[idx] < 0.5:
                    break
                found += 1
                ious[idx[0], :] = 0
                ious[:, idx[1]] = 0
                text[idx[0], :] = 0
                text[:, idx[1]] = 0
            tp += found
        except IndexError:
            pass
    return tp / positives * 100


def test_recall_equals_the_literal_reference_on_random_images():
    rng = np.random.default_rng(7)
    recs = []
    for k in range(60):
        n_gt, n_pred = (int(v) for v in rng.integers(0, 5, 2))
        gt = [box(*sorted(rng.integers(0, 32, 2) + [0, 2]),
                  *sorted(rng.integers(0, 32, 2) + [0, 2]))
              for _ in range(n_gt)]
        pred = [np.roll(g, int(rng.integers(-2, 3)), axis=0)
                for g in gt[:n_pred]]
        pred += [box(0, 6, 0, 6)] * int(rng.integers(0, 2))
        labels = ['x'] * int(max(0, n_gt + rng.integers(-1, 2)))
        phrases = ['x'] * int(max(0, len(pred) + rng.integers(-2, 2)))
        recs.append(record(f'r{k}', gt, labels, pred_masks=pred,
                           phrases=phrases))
    ours = score_gcg(recs, with_captions=False)
    assert ours['recall_failed_images'] > 0  # the rule is exercised
    assert ours['Recall (IoU-only)'] == pytest.approx(
        literal_reference_recall(recs))
    ones = lambda g, p: np.ones((len(g), len(p)))  # noqa: E731
    assert score_gcg(recs, ones, with_captions=False)['Recall'] == \
        pytest.approx(literal_reference_recall(recs))
