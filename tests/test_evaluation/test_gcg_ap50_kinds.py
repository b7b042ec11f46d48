"""Uni/multi-target AP50: the other kind's GT masks are ignore regions.

Hand-built cases; every expected number is worked out by hand (101-point
interpolated precision of pycocotools, all scores 1.0 so detections rank
in file order) and checked against pycocotools called directly on the
equivalent plain case: the ignored GT and the one detection it absorbs
removed. The old rule (other kind as COCO crowd) forgave fragments and
duplicates; it is computed here too, to show what changed.
"""
import contextlib
import io

import pytest

from geopixel.evaluation.functional.gcg import score_gcg
from .test_gcg import box, record

UNI = box(0, 10, 0, 10)  # 100 px
MULTI = box(12, 30, 12, 30)  # 324 px
FRAGMENT = box(14, 18, 14, 18)  # 16 px inside MULTI: IoU 16/324


def exactly(value):
    """The hand-computed value, up to float rounding."""
    return pytest.approx(value, rel=0, abs=1e-9)


def plain_ap50(images, gts, dets, crowd=()):
    """pycocotools as GLaMM calls it; ``images``: {id: [gt masks]},
    ``dets``: [(image id, mask)] in rank order; GT indices in ``crowd``
    (image id, k) are marked iscrowd=1 (the old rule)."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from geopixel.utils import encode_rle
    anns = []
    for image_id, masks in gts.items():
        for k, m in enumerate(masks):
            rle = encode_rle(m)
            raw = dict(rle, counts=rle['counts'].encode())
            anns.append(dict(id=len(anns) + 1, image_id=image_id,
                             category_id=1, segmentation=rle,
                             area=float(mask_utils.area(raw)),
                             bbox=list(mask_utils.toBbox(raw)),
                             iscrowd=int((image_id, k) in crowd)))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dict(
            images=[dict(id=i, height=32, width=32) for i in images],
            annotations=anns, categories=[dict(id=1)])
        gt.createIndex()
        dt = gt.loadRes([dict(image_id=i, category_id=1, score=1.0,
                              segmentation=encode_rle(m)) for i, m in dets])
        e = COCOeval(gt, dt, 'segm')
        e.params.catIds = [1]
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats[1] * 100


def one_image(preds):
    return score_gcg([record('a', [UNI, MULTI], ['car', 'cars'],
                             kinds=['uni', 'multi'], pred_masks=preds)],
                     with_captions=False)


def test_fragment_inside_an_other_kind_region_is_a_false_positive():
    s = one_image([FRAGMENT, UNI, MULTI])
    # uni: FRAGMENT matches nothing (IoU 0.05 with the ignored MULTI): FP;
    # UNI: TP; MULTI: absorbed by its ignore region. Ranked FP, TP:
    # precision 0, 1/2 -> interpolated 1/2 at every recall point.
    assert s['uni/AP50'] == exactly(50.0)
    assert s['uni/AP50'] == pytest.approx(plain_ap50(
        ['a'], {'a': [UNI]}, [('a', FRAGMENT), ('a', UNI)]))
    # multi, the mirror image: FP, ignored, TP
    assert s['multi/AP50'] == exactly(50.0)
    # overall: FP, TP, TP -> precision 0, 1/2, 2/3 -> 2/3 everywhere
    assert s['AP50'] == exactly(200 / 3)
    # the crowd rule forgave the fragment (intersection over its own area)
    assert plain_ap50(['a'], {'a': [UNI, MULTI]},
                      [('a', FRAGMENT), ('a', UNI), ('a', MULTI)],
                      crowd={('a', 1)}) == exactly(100.0)


def test_duplicate_of_an_other_kind_mask_is_absorbed_once():
    s = one_image([MULTI, MULTI, UNI])
    # uni: the first MULTI is ignored, the second is a FP, UNI a TP
    assert s['uni/AP50'] == exactly(50.0)
    assert s['uni/AP50'] == pytest.approx(plain_ap50(
        ['a'], {'a': [UNI]}, [('a', MULTI), ('a', UNI)]))
    # multi: TP, duplicate FP after full recall, UNI ignored: 100
    assert s['multi/AP50'] == exactly(100.0)
    # the crowd rule absorbed both copies
    assert plain_ap50(['a'], {'a': [UNI, MULTI]},
                      [('a', MULTI), ('a', MULTI), ('a', UNI)],
                      crowd={('a', 1)}) == exactly(100.0)


def test_correct_other_kind_mask_is_neither_hit_nor_false_positive():
    recs = [record('a', [UNI], ['car'], kinds=['uni']),
            record('b', [MULTI], ['cars'], kinds=['multi']),
            record('c', [UNI, MULTI], ['car', 'cars'],
                   kinds=['uni', 'multi'], pred_masks=[MULTI, UNI])]
    s = score_gcg(recs, with_captions=False)
    # a perfect model scores 100 on both kinds
    assert s['uni/AP50'] == exactly(100.0)
    assert s['multi/AP50'] == exactly(100.0)
    assert s['AP50'] == exactly(100.0)
    # cutting the GT down to one kind instead would count the correct
    # other-kind masks as false positives: a: TP, b: FP, c: FP, TP
    cut = plain_ap50(['a', 'b', 'c'], {'a': [UNI], 'c': [UNI]},
                     [('a', UNI), ('b', MULTI), ('c', MULTI), ('c', UNI)])
    # recall up to 1/2 at precision 1 (51 points), then 1/2 (50 points)
    assert cut == exactly((51 * 1.0 + 50 * 0.5) / 101 * 100)


def test_detection_prefers_a_regular_gt_over_an_ignore_region():
    """pycocotools matches a detection to a regular GT before any ignore
    region, so a mask that hits its own-kind GT at IoU >= 0.5 is a TP even
    when it overlaps an other-kind region better."""
    own = box(0, 10, 0, 10)  # uni, 100 px
    other = box(0, 10, 0, 8)  # multi, 80 px, inside own
    pred = box(0, 10, 0, 8)  # IoU 0.8 with own, 1.0 with other
    s = score_gcg([record('a', [own, other], ['car', 'cars'],
                          kinds=['uni', 'multi'], pred_masks=[pred])],
                  with_captions=False)
    assert s['uni/AP50'] == exactly(100.0)
    # multi: the same mask also matches its regular GT (IoU 1): TP
    assert s['multi/AP50'] == exactly(100.0)


def test_kind_without_ground_truth_is_undefined():
    s = score_gcg([record('a', [UNI], ['car'], kinds=['uni'])],
                  with_captions=False)
    assert s['uni/AP50'] == exactly(100.0)
    assert s['multi/AP50'] is None and s['multi/mIoU'] is None
