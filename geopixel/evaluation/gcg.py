"""RS-GCG scoring, GLaMM-exact (its eval/gcg/evaluate.py is the reference;
see docs/en/advanced_guides/evaluation.md for every rule and its source).

Functions here work on plain numpy masks and strings so the same code
scores a model inside ``tools/test.py`` (``GCGMetric``) and a folder of
prediction files written by any model (``tools/analysis/eval_predictions.py``).
"""
import contextlib
import io
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

TextScorer = Callable[[Sequence[str], Sequence[str]], np.ndarray]


# -- text ---------------------------------------------------------------------
def clean_caption(text: str) -> str:
    """GLaMM's caption cleaning: drop every ``<...>`` tag and ``[SEG]``,
    collapse whitespace, strip quotes."""
    text = text.replace('\n', '')
    text = re.sub(r'<.*?>', '', text)
    text = text.replace('[SEG]', '')
    return ' '.join(text.split()).strip("'")


def parse_phrases(text: str) -> List[str]:
    """Phrases inside ``<p> ... </p>``, stripped, in order."""
    return [p.strip() for p in re.findall(r'<p>(.*?)<\/p>', text)]


# -- masks --------------------------------------------------------------------
def iou_matrix(rows: Sequence[np.ndarray],
               cols: Sequence[np.ndarray]) -> np.ndarray:
    """IoU of every pair (0 when a union is empty)."""
    out = np.zeros((len(rows), len(cols)), dtype=np.float64)
    if not len(rows) or not len(cols):
        return out
    a = np.stack([np.asarray(m, bool).reshape(-1) for m in rows])
    b = np.stack([np.asarray(m, bool).reshape(-1) for m in cols])
    inter = a.astype(np.float64) @ b.T.astype(np.float64)
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    np.divide(inter, union, out=out, where=union > 0)
    return out


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
                         text_threshold: float = 0.5) -> List[Tuple[int,
                                                                    int]]:
    """GLaMM recall matching for one image: (gt index, pred index) pairs.

    Take the max-IoU (gt x pred) pair; stop at the first pair with IoU
    below ``iou_threshold`` or text similarity (read only after the IoU
    test passes) below ``text_threshold``; otherwise count it and zero its
    row and column. When a pair points past the last predicted phrase (more
    masks than phrases) the reference fails on that image and it scores no
    true positive at all. ``text_scorer=None`` skips the text test
    (IoU-only recall).
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
        if text_scorer is not None:
            if sims is None or i >= sims.shape[0] or j >= sims.shape[1]:
                return []  # the reference's IndexError: the image gets 0
            if sims[i, j] < text_threshold:
                break
            sims[i, :] = 0
            sims[:, j] = 0
        matches.append((int(i), int(j)))
        ious[i, :] = 0
        ious[:, j] = 0
    return matches


# -- AP50 (pycocotools) ---------------------------------------------------------
def coco_ap50(images: Sequence[dict], gt_annotations: Sequence[dict],
              predictions: Sequence[dict]) -> float:
    """pycocotools ``segm`` AP at IoU 0.5 (``stats[1]``), one category,
    every prediction scored 1.0, in the order given (pycocotools keeps it
    for ties). Returns 0.0 when there is no prediction."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
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
        evaluator = COCOeval(gt, dt, 'segm')
        evaluator.params.catIds = [1]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return max(float(evaluator.stats[1]), 0.0)


# -- captions (pycocoevalcap) ---------------------------------------------------
def caption_scores(references: Dict[str, str],
                   candidates: Dict[str, str]) -> Dict[str, float]:
    """CIDEr and METEOR once over the whole split, through pycocoevalcap's
    PTB tokenizer, Meteor 1.5 and Cider called directly (not
    ``COCOEvalCap.evaluate``, whose SPICE downloads a model). Needs Java."""
    try:
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as exc:
        raise ImportError('caption metrics need the eval extra: pip install '
                          '-r requirements/eval.txt (and Java)') from exc
    ids = sorted(references)
    gts = {i: [{'caption': references[i]}] for i in ids}
    res = {i: [{'caption': candidates.get(i, '')}] for i in ids}
    tokenizer = PTBTokenizer()
    with contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        gts = tokenizer.tokenize(gts)
        res = tokenizer.tokenize(res)
        cider, _ = Cider().compute_score(gts, res)
        meteor_scorer = Meteor()
        meteor, _ = meteor_scorer.compute_score(gts, res)
        _close_meteor(meteor_scorer)
    return dict(CIDEr=float(cider), METEOR=float(meteor))


def _close_meteor(scorer) -> None:
    proc = getattr(scorer, 'meteor_p', None)
    if proc is None:
        return
    with contextlib.suppress(Exception):
        proc.stdin.close()
        proc.kill()
        proc.wait()


# -- text similarity for recall -------------------------------------------------
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


# -- the whole split ------------------------------------------------------------
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


def score_gcg(records: Sequence[dict],
              text_scorer: Optional[TextScorer] = None,
              with_captions: bool = True) -> Dict[str, float]:
    """Score a split. Each record holds ``image_id`` (str), ``gt_caption``,
    ``gt_labels``, ``gt_masks`` (RLE), ``gt_kinds`` ('uni' when the phrase's
    mask is one instance, 'multi' for several), ``pred_caption``,
    ``pred_phrases`` and ``pred_masks`` (RLE), in ``[SEG]`` order.

    Returns fractions x 100: ``AP50``, ``mIoU``, ``Recall`` overall and per
    kind (``uni/…``, ``multi/…``), plus ``CIDEr`` and ``METEOR`` (corpus
    level; CIDEr-D scale, so identical captions give 1000). The kinds are
    matched on the whole image first, then split by the GT phrase's kind;
    for AP50 the other kind's GT masks are ignore regions (COCO crowd), so
    a correct mask of the other kind is neither a hit nor a false positive.
    """
    images = []
    gt_anns = {k: [] for k in ('all', ) + KINDS}
    preds = []
    miou = {k: [] for k in ('all', ) + KINDS}
    positives = {k: 0 for k in ('all', ) + KINDS}
    true_pos = {k: 0 for k in ('all', ) + KINDS}
    ann_id = 0
    for rec in sorted(records, key=lambda r: str(r['image_id'])):
        image_id = str(rec['image_id'])
        gt_rles = list(rec['gt_masks'])
        kinds = list(rec.get('gt_kinds') or ['uni'] * len(gt_rles))
        height, width = (gt_rles[0]['size'] if gt_rles else
                         rec.get('size', (1, 1)))
        images.append(dict(id=image_id, height=height, width=width))
        for rle, kind in zip(gt_rles, kinds):
            ann_id += 1
            base = dict(id=ann_id, image_id=image_id, category_id=1,
                        segmentation=rle, area=rle_area(rle), bbox=rle_bbox(rle))
            gt_anns['all'].append(dict(base, iscrowd=0))
            for k in KINDS:
                gt_anns[k].append(dict(base, iscrowd=int(kind != k)))
        for rle in rec['pred_masks']:
            preds.append(dict(image_id=image_id, segmentation=rle))
        gt_masks = _decode(gt_rles)
        pred_masks = _decode(rec['pred_masks'])
        score, pairs = image_miou(pred_masks, gt_masks)
        miou['all'].append(score)
        for k in KINDS:
            if k in kinds:
                ious = [v for _, g, v in pairs if kinds[g] == k]
                miou[k].append(float(np.mean(ious)) if ious else 0.0)
        matches = image_recall_matches(gt_masks, pred_masks,
                                       rec['gt_labels'], rec['pred_phrases'],
                                       text_scorer)
        positives['all'] += len(rec['gt_labels'])
        true_pos['all'] += len(matches)
        for k in KINDS:
            positives[k] += sum(1 for kind in kinds if kind == k)
            true_pos[k] += sum(1 for g, _ in matches if kinds[g] == k)
    out = {}
    for k in ('all', ) + KINDS:
        prefix = '' if k == 'all' else f'{k}/'
        has_gt = any(a['iscrowd'] == 0 for a in gt_anns[k])
        out[f'{prefix}AP50'] = (coco_ap50(images, gt_anns[k], preds) * 100
                                if has_gt else float('nan'))
        out[f'{prefix}mIoU'] = (float(np.mean(miou[k])) * 100
                                if miou[k] else float('nan'))
        out[f'{prefix}Recall'] = (true_pos[k] / positives[k] * 100
                                  if positives[k] else float('nan'))
    out['recall_text_similarity'] = ('iou_only' if text_scorer is None else
                                     type(text_scorer).__name__)
    if with_captions:
        caps = caption_scores(
            {str(r['image_id']): r['gt_caption'] for r in records},
            {str(r['image_id']): r['pred_caption'] for r in records})
        out.update({k: v * 100 for k, v in caps.items()})
    out['images'] = len(records)
    return out
