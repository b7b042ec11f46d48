"""RS-GCG scoring, GLaMM-exact (its eval/gcg/evaluate.py is the reference;
see docs/en/advanced_guides/evaluation.md for every rule and its source).

Functions here work on plain numpy masks and strings so the same code
scores a model inside ``tools/test.py`` (``GCGMetric``) and a folder of
prediction files written by any model (``tools/analysis/eval_predictions.py``).
"""
import contextlib
import importlib.util
import io
import os
import shutil
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from pycocotools.cocoeval import COCOeval

from .iou import iou_matrix

TextScorer = Callable[[Sequence[str], Sequence[str]], np.ndarray]


# -- masks --------------------------------------------------------------------
def greedy_matches(matrix: np.ndarray) -> List[Tuple[int, int, float]]:
    """GLaMM mIoU matching: repeatedly take the global maximum (ties: the
    first in row-major order), record it, remove its row and column; stop
    when nothing is left or the maximum is 0. Returns (row, col, value)
    with original indices."""
    rows = list(range(matrix.shape[0]))
    cols = list(range(matrix.shape[1]))
    m = matrix.copy()
    pairs = []
    while m.size > 0 and m.max() > 0:
        i, j = np.unravel_index(np.argmax(m), m.shape)
        pairs.append((rows[i], cols[j], float(m[i, j])))
        m = np.delete(np.delete(m, i, axis=0), j, axis=1)
        del rows[i], cols[j]
    return pairs


def image_miou(pred_masks, gt_masks) -> Tuple[float, List[Tuple[int, int,
                                                                 float]]]:
    """Per-image mIoU (mean over matched pairs, 0 if none) and the pairs
    as (pred index, gt index, IoU)."""
    pairs = greedy_matches(iou_matrix(pred_masks, gt_masks))
    score = float(np.mean([p[2] for p in pairs])) if pairs else 0.0
    return score, pairs


def image_recall_matches(gt_masks,
                         pred_masks,
                         gt_labels: Sequence[str],
                         pred_phrases: Sequence[str],
                         text_scorer: Optional[TextScorer] = None,
                         iou_threshold: float = 0.5,
                         text_threshold: float = 0.5
                         ) -> Optional[List[Tuple[int, int]]]:
    """GLaMM recall matching for one image: (gt index, pred index) pairs,
    or None where GLaMM's evaluator fails on the image.

    Take the max-IoU (gt x pred) pair (ties: first in row-major order);
    stop at the first pair with IoU below ``iou_threshold`` or text
    similarity below ``text_threshold``; otherwise count it and zero its
    row and column. The reference reads its (GT labels x predicted phrases)
    similarity matrix with the pair's indices only after the IoU test
    passes, so a passing pair whose GT index has no label or whose
    prediction index has no phrase (more masks than labels or phrases)
    raises there: the image then scores no true positive at all, matches
    found before included. That depends on the matrix's shape, not on the
    text model, so it applies with ``text_scorer=None`` (IoU-only recall,
    no text test) too.
    """
    ious = iou_matrix(gt_masks, pred_masks)
    sims = None
    if text_scorer is not None and len(gt_labels) and len(pred_phrases):
        sims = np.asarray(text_scorer(gt_labels, pred_phrases), np.float64)
    matches = []
    while ious.size > 0:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[i, j] < iou_threshold:
            break
        if i >= len(gt_labels) or j >= len(pred_phrases):
            return None  # the reference's IndexError
        if sims is not None:
            if sims[i, j] < text_threshold:
                break
            sims[i, :] = 0
            sims[:, j] = 0
        matches.append((int(i), int(j)))
        ious[i, :] = 0
        ious[:, j] = 0
    return matches


def recall_name(text_scorer: Optional[TextScorer]) -> str:
    """``Recall`` with a text scorer, else ``Recall (IoU-only)``."""
    return 'Recall' if text_scorer is not None else 'Recall (IoU-only)'


# -- AP50 (pycocotools) -------------------------------------------------------
class IgnoreRegionsCOCOeval(COCOeval):
    """``segm`` COCOeval whose GT annotations in ``ignore_ids`` are ignore
    regions. They stay ``iscrowd=0`` (standard IoU); pycocotools' own
    ``_prepare`` resets ``ignore`` from ``iscrowd``, so the flag is set
    after it. pycocotools then matches a detection to them only when no
    regular GT takes it, lets each absorb at most one detection, and counts
    such a detection neither as a hit nor as a false positive."""

    def __init__(self, coco_gt, coco_dt, ignore_ids=()):
        super().__init__(coco_gt, coco_dt, 'segm')
        self.ignore_ids = set(ignore_ids)

    def _prepare(self):
        super()._prepare()
        for anns in self._gts.values():
            for ann in anns:
                if ann['id'] in self.ignore_ids:
                    ann['ignore'] = 1


def coco_ap50(images: Sequence[dict],
              gt_annotations: Sequence[dict],
              predictions: Sequence[dict],
              ignore_ids: Sequence[int] = ()) -> float:
    """pycocotools ``segm`` AP at IoU 0.5 (``stats[1]``), one category,
    every prediction scored 1.0, in the order given (pycocotools keeps it
    for ties); GT annotations in ``ignore_ids`` are ignore regions. Returns
    0.0 when there is no prediction."""
    from pycocotools.coco import COCO
    if not predictions:
        return 0.0
    gt = COCO()
    gt.dataset = dict(
        images=list(images),
        annotations=list(gt_annotations),
        categories=[dict(id=1, name='object')])
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes([dict(p, category_id=1, score=1.0)
                         for p in predictions])
        evaluator = IgnoreRegionsCOCOeval(gt, dt, ignore_ids)
        evaluator.params.catIds = [1]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return max(float(evaluator.stats[1]), 0.0)


# -- captions (pycocoevalcap) -------------------------------------------------
class CaptionToolsMissing(RuntimeError):
    """Java or pycocoevalcap is missing: no CIDEr / METEOR."""


def caption_tools_problem() -> Optional[str]:
    """What caption scoring lacks on this machine, or None."""
    missing = []
    if shutil.which('java') is None:
        missing.append('Java is not on PATH (install a Java runtime, e.g. '
                       '`apt install openjdk-17-jre-headless`)')
    if importlib.util.find_spec('pycocoevalcap') is None:
        missing.append('pycocoevalcap is not installed '
                       '(`pip install -r requirements/eval.txt`)')
    return '; '.join(missing) or None


def require_caption_tools(skip_hint: str) -> None:
    """Fail fast, before any work, when CIDEr / METEOR cannot run."""
    problem = caption_tools_problem()
    if problem:
        raise CaptionToolsMissing(
            f'caption metrics (CIDEr, METEOR) cannot run: {problem}. '
            f'{skip_hint}')


@contextlib.contextmanager
def _java_output_captured():
    """Send file descriptors 1 and 2, which the Java tokenizer and METEOR
    inherit, to a temporary file (``redirect_stdout`` cannot catch a
    subprocess); on an error, raise it with that output attached."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    log = tempfile.TemporaryFile()
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
    except Exception as exc:
        log.seek(0)
        output = log.read().decode('utf-8', 'replace').strip()
        detail = f'\noutput of the caption tools:\n{output[-4000:]}' if \
            output else ''
        raise RuntimeError(f'caption scoring failed: {exc}{detail}') from exc
    finally:
        log.close()


def caption_scores(references: Dict[str, str],
                   candidates: Dict[str, str]) -> Dict[str, float]:
    """CIDEr and METEOR once over the whole split, through pycocoevalcap's
    PTB tokenizer, Meteor 1.5 and Cider called directly (not
    ``COCOEvalCap.evaluate``, whose SPICE downloads a model). Needs Java;
    the tools' console chatter is hidden unless they fail."""
    require_caption_tools('Install them, or leave caption metrics out.')
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    ids = sorted(references)
    gts = {i: [{'caption': references[i]}] for i in ids}
    res = {i: [{'caption': candidates.get(i, '')}] for i in ids}
    tokenizer = PTBTokenizer()
    with _java_output_captured(), \
            contextlib.redirect_stdout(io.StringIO()):
        gts = tokenizer.tokenize(gts)
        res = tokenizer.tokenize(res)
        cider, _ = Cider().compute_score(gts, res)
        meteor_scorer = Meteor()
        try:
            meteor, _ = meteor_scorer.compute_score(gts, res)
        except Exception as exc:
            raise RuntimeError(
                f'METEOR failed ({exc!r}); its error output: '
                f'{_close_meteor(meteor_scorer)}') from exc
        _close_meteor(meteor_scorer)
    return dict(CIDEr=float(cider), METEOR=float(meteor))


def _close_meteor(scorer) -> str:
    """Stop METEOR's Java process; returns what it wrote to stderr."""
    proc = getattr(scorer, 'meteor_p', None)
    if proc is None:
        return ''
    with contextlib.suppress(Exception):
        proc.stdin.close()
        proc.kill()
        proc.wait()
        return proc.stderr.read().decode('utf-8', 'replace')[-4000:]
    return ''


# -- text similarity for recall -----------------------------------------------
class BertMeanPoolScorer:
    """GLaMM's recall text similarity: cosine of the mean of BERT's last
    hidden states (all tokens, [CLS] and [SEP] included), from a local
    ``bert-base-uncased`` folder."""

    def __init__(self, path: str):
        import os.path as osp
        if not osp.isdir(path):
            raise FileNotFoundError(
                f'BERT folder not found: {path} (a local copy of '
                'bert-base-uncased); leave text_scorer unset for IoU-only '
                'recall')
        from transformers import AutoModel, AutoTokenizer
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self._cache: Dict[str, np.ndarray] = {}

    def _embed(self, text: str) -> np.ndarray:
        if text not in self._cache:
            import torch
            enc = self.tokenizer(text, return_tensors='pt', truncation=True,
                                 max_length=512)
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state[0]
            self._cache[text] = hidden.mean(0).numpy()
        return self._cache[text]

    def __call__(self, gt_labels, pred_phrases) -> np.ndarray:
        a = np.stack([self._embed(t) for t in gt_labels])
        b = np.stack([self._embed(t) for t in pred_phrases])
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return a @ b.T


# -- the whole split ----------------------------------------------------------
KINDS = ('uni', 'multi')


def _decode(rles: Sequence[dict]) -> List[np.ndarray]:
    from geopixel.utils import decode_rle
    return [decode_rle(r) for r in rles]


def _rle_bytes(rle: dict) -> dict:
    """pycocotools wants bytes counts; JSON holds str."""
    counts = rle['counts']
    return dict(rle, counts=counts.encode('ascii')
                if isinstance(counts, str) else counts)


def rle_bbox(rle: dict) -> List[float]:
    """COCO [x, y, w, h] of a compressed RLE."""
    from pycocotools import mask as mask_utils
    return [float(v) for v in mask_utils.toBbox(_rle_bytes(rle))]


def rle_area(rle: dict) -> float:
    from pycocotools import mask as mask_utils
    return float(mask_utils.area(_rle_bytes(rle)))


def score_gcg_masks(records: Sequence[dict],
                    text_scorer: Optional[TextScorer] = None
                    ) -> Dict[str, object]:
    """Mask metrics of a split. Each record holds ``image_id`` (str),
    ``gt_labels``, ``gt_masks`` (RLE), ``gt_kinds`` ('uni' when the mask is
    one instance, 'multi' for several; None when unknown), ``pred_phrases``
    and ``pred_masks`` (RLE) in ``[SEG]`` order, and optionally ``size``
    (h, w).

    Returns fractions x 100 (None where undefined): ``AP50``, ``mIoU`` and
    recall (named by :func:`recall_name`) overall and per kind (``uni/``,
    ``multi/``; all None unless every record has its kinds). The kinds are
    matched on the whole image first, then split by the GT mask's kind; for
    a kind's AP50 the other kind's GT masks are ignore regions
    (:class:`IgnoreRegionsCOCOeval`). Also ``recall_failed_images``: images
    on which GLaMM's recall loop fails (see :func:`image_recall_matches`).
    """
    kinds_known = all(rec.get('gt_kinds') is not None for rec in records)
    groups = ('all', ) + (KINDS if kinds_known else ())
    images, gt_anns, preds = [], [], []
    other_kind = {k: [] for k in KINDS}  # ann ids ignored for kind k
    miou = {k: [] for k in groups}
    positives = dict.fromkeys(groups, 0)
    true_pos = dict.fromkeys(groups, 0)
    failed = 0
    for rec in sorted(records, key=lambda r: str(r['image_id'])):
        image_id = str(rec['image_id'])
        gt_rles = list(rec['gt_masks'])
        kinds = (list(rec['gt_kinds']) if kinds_known else
                 [None] * len(gt_rles))
        if len(kinds) != len(gt_rles):
            raise ValueError(f'image {image_id}: {len(kinds)} kinds for '
                             f'{len(gt_rles)} ground-truth masks')
        height, width = rec.get('size') or (gt_rles[0]['size']
                                            if gt_rles else (1, 1))
        images.append(dict(id=image_id, height=height, width=width))
        for rle, kind in zip(gt_rles, kinds):
            ann_id = len(gt_anns) + 1
            gt_anns.append(dict(id=ann_id, image_id=image_id, category_id=1,
                                segmentation=rle, area=rle_area(rle),
                                bbox=rle_bbox(rle), iscrowd=0))
            for k in KINDS:
                if kind != k:
                    other_kind[k].append(ann_id)
        for rle in rec['pred_masks']:
            preds.append(dict(image_id=image_id, segmentation=rle))
        gt_masks = _decode(gt_rles)
        pred_masks = _decode(rec['pred_masks'])
        score, pairs = image_miou(pred_masks, gt_masks)
        miou['all'].append(score)
        labels = rec['gt_labels']
        matches = image_recall_matches(gt_masks, pred_masks, labels,
                                       rec['pred_phrases'], text_scorer)
        if matches is None:
            failed += 1
            matches = []
        positives['all'] += len(labels)
        true_pos['all'] += len(matches)
        for k in groups[1:]:
            if k in kinds:
                ious = [v for _, g, v in pairs if kinds[g] == k]
                miou[k].append(float(np.mean(ious)) if ious else 0.0)
            # a label's kind is its mask's (the k-th label, the k-th mask)
            positives[k] += kinds[:len(labels)].count(k)
            true_pos[k] += sum(1 for g, _ in matches if kinds[g] == k)
    recall = recall_name(text_scorer)
    out = {}
    for k in ('all', ) + KINDS:
        prefix = '' if k == 'all' else f'{k}/'
        ap50 = miou_k = recall_k = None
        if k in groups:
            ignore = other_kind[k] if k in KINDS else []
            if len(ignore) < len(gt_anns):
                ap50 = coco_ap50(images, gt_anns, preds, ignore) * 100
            if miou[k]:
                miou_k = float(np.mean(miou[k])) * 100
            if positives[k]:
                recall_k = true_pos[k] / positives[k] * 100
        out[f'{prefix}AP50'] = ap50
        out[f'{prefix}mIoU'] = miou_k
        out[f'{prefix}{recall}'] = recall_k
    out['recall_text_similarity'] = (
        'iou_only' if text_scorer is None else getattr(
            text_scorer, '__name__', type(text_scorer).__name__))
    out['recall_failed_images'] = failed
    out['images'] = len(records)
    return out


def score_gcg_captions(records: Sequence[dict]) -> Dict[str, float]:
    """``CIDEr`` and ``METEOR`` x 100 over the whole split (corpus level;
    CIDEr-D scale, so identical captions give 1000), from each record's
    ``gt_caption`` and ``pred_caption``."""
    caps = caption_scores(
        {str(r['image_id']): r['gt_caption'] for r in records},
        {str(r['image_id']): r['pred_caption'] for r in records})
    return {k: v * 100 for k, v in caps.items()}


def score_gcg(records: Sequence[dict],
              text_scorer: Optional[TextScorer] = None,
              with_captions: bool = True) -> Dict[str, object]:
    """:func:`score_gcg_masks`, then (``with_captions``)
    :func:`score_gcg_captions`."""
    out = score_gcg_masks(records, text_scorer)
    if with_captions:
        out.update(score_gcg_captions(records))
    return out
