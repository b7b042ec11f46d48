"""Does a referring-segmentation model follow the expression, or does it
mask the same objects whatever it is asked? Plain computations on masks
and vectors (no model), read from an RRSIS-D (REFER) layout split.

* Expression types come from the synthetic writer's records (each
  sentence's ``unique_by``: the attributes beside the category that make
  its target unique): ``category`` (none), ``colour`` (colour, no
  position), ``position`` (a position word) and ``size`` (size alone).
  Data without the record (real RRSIS-D, other generators) has no types:
  nothing is guessed from the words.
* Baselines: ``all_zero``, ``whole_image`` and ``all_objects`` (the union of
  every annotated instance of the image), scored as ``RRSISMetric``.
* Swap probe: a sample's prediction against the prediction for a sentence
  of another referred object of the same image.
* ``[SEG]`` probes: cosine spread of the prompts and a linear (logistic)
  probe for the target's category and colour on the ``[SEG]`` state, and
  for its position over the sentences that name one.

``tools/analysis/refer_probe.py`` runs a model and these computations;
``docs/en/notes/benchmarks.md`` says how to read the numbers.
"""
from dataclasses import dataclass, field
from typing import Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from geopixel.datasets.synthetic.text import ATTRIBUTES
from geopixel.utils import BadRecordError, read_json
from .iou import intersection_union, iou_matrix
from .rrsis import rrsis_scores

EXPRESSION_TYPES = ('category', 'colour', 'position', 'size')
BASELINES = ('all_zero', 'whole_image', 'all_objects')
# a swapped prediction "changed" when its IoU with the own one is below
# this; it "landed" on the new target at this IoU with it (and closer to
# it than to the old target)
CHANGE_IOU = 0.5
LAND_IOU = 0.5
# an object counts as covered by a prediction holding this part of it
COVER_FRACTION = 0.5


def expression_type(unique_by: Sequence[str]) -> str:
    """The type of an expression from the attributes that make its target
    unique: ``position`` if a position word is among them, else ``colour``
    if colour is, else ``size`` if size is, else ``category``."""
    unknown = [a for a in unique_by if a not in ATTRIBUTES]
    if unknown:
        raise ValueError(f'unknown attribute {unknown[0]!r} (known: '
                         f'{", ".join(ATTRIBUTES)})')
    for name in ('position', 'colour', 'size'):
        if name in unique_by:
            return name
    return 'category'


@dataclass
class ReferImage:
    """One image of the split: every annotated instance's mask."""
    image_id: int
    img_path: str
    size: Tuple[int, int]
    masks: Dict[int, np.ndarray] = field(default_factory=dict)
    categories: Dict[int, Hashable] = field(default_factory=dict)

    def all_objects(self) -> np.ndarray:
        """The union of every instance (the ``all_objects`` baseline)."""
        union = np.zeros(self.size, bool)
        for mask in self.masks.values():
            union |= mask
        return union


@dataclass
class ReferSample:
    """One sentence of the split, with its target and expression type."""
    sent_id: Hashable
    ref_id: Hashable
    ann_id: int
    image_id: int
    text: str
    category: Hashable
    expression_type: Optional[str]
    colour: Optional[str]
    record: str
    # the target's position word(s), for sentences that name a position
    position: Optional[str] = None

    @property
    def key(self) -> Tuple[int, str]:
        """What a prediction depends on: the image and the text."""
        return (self.image_id, self.text)


@dataclass
class ReferSplit:
    """The probed samples, the images they show, and the ``pool``: every
    sample of the split about those images (the swap probe's partners)."""
    samples: List[ReferSample]
    images: Dict[int, ReferImage]
    pool: List[ReferSample]


def read_refer_split(dataset,
                     max_samples: Optional[int] = None) -> ReferSplit:
    """The samples of an ``RRSISDDataset`` (dataset order, the first
    ``max_samples`` if given) and every image they show, with all of its
    annotated instances rasterised at the size ``instances.json`` gives.

    Types and colours come from the refs file's ``unique_by`` (per
    sentence) and ``target`` (per ref); they must be there for every
    sample or for none.
    """
    from geopixel.datasets.rrsisd import RRSISDDataset, load_refs
    if not isinstance(dataset, RRSISDDataset):
        raise TypeError('the refer probes read an RRSISDDataset (REFER '
                        f'layout), got {type(dataset).__name__}')
    dataset.full_init()
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    if not infos:
        raise BadRecordError(f'split {dataset.split!r} has no samples',
                             dataset.ann_file)
    chosen = infos if max_samples is None else infos[:max_samples]
    images = _read_images(dataset, chosen)
    records = _sentence_records(load_refs(dataset.ann_file),
                                dataset.ann_file)
    pool, samples = [], []
    for index, info in enumerate(infos):
        if info['image_id'] not in images:
            continue
        ref, sent = records[(info['ref_id'], info['sent_id'])]
        image = images[info['image_id']]
        pool.append(
            ReferSample(
                sent_id=info['sent_id'], ref_id=info['ref_id'],
                ann_id=info['ann_id'], image_id=info['image_id'],
                text=info['ref_exp'],
                category=image.categories[info['ann_id']],
                expression_type=_sentence_type(sent, dataset.ann_file,
                                               info['record_id']),
                colour=(ref.get('target') or {}).get('colour'),
                record=info['record_id'],
                position=_named_position(ref, sent)))
        if index < len(chosen):
            samples.append(pool[-1])
    _all_or_none(pool, 'expression_type', '"unique_by"', dataset.ann_file)
    _all_or_none(pool, 'colour', '"target" colour', dataset.ann_file)
    return ReferSplit(samples, images, pool)


def _named_position(ref: dict, sent: dict) -> Optional[str]:
    """The target's position if the sentence uses it, else None."""
    attributes = sent.get('attributes') or ()
    if 'position' not in attributes:
        return None
    return (ref.get('target') or {}).get('position')


def _read_images(dataset, infos) -> Dict[int, ReferImage]:
    from geopixel.datasets.base import is_int
    from geopixel.utils.masks import coco_segmentation_to_mask
    images = {}
    for info in infos:
        if info['image_id'] in images:
            continue
        sizes = info.get('expected_sizes') or ()
        if not sizes:
            raise BadRecordError(
                f'{dataset.instances_file} gives no height/width for image '
                f'{info["image_id"]}', info.get('ann_file'),
                info.get('record_id'))
        images[info['image_id']] = ReferImage(
            info['image_id'], info['img_path'], tuple(sizes[0][:2]))
    file = dataset.instances_file
    for position, ann in enumerate(read_json(file, 'instances file').get(
            'annotations', [])):
        if not (isinstance(ann, dict) and is_int(ann.get('image_id'))
                and ann['image_id'] in images):
            continue
        image = images[ann['image_id']]
        record = f'annotation {ann.get("id", "#" + str(position))}'
        if 'id' not in ann or 'segmentation' not in ann:
            raise BadRecordError(
                'an annotation of a probed image needs "id" and '
                '"segmentation" (the all-objects union uses every '
                'instance)', file, record)
        if ann['id'] in image.masks:
            raise BadRecordError(f'annotation id {ann["id"]} appears more '
                                 'than once', file, record)
        image.masks[ann['id']] = coco_segmentation_to_mask(
            ann['segmentation'], *image.size, file, record) > 0
        image.categories[ann['id']] = ann.get('category_id')
    return images


def _sentence_records(refs: list, file: str) -> dict:
    """``(ref_id, sent_id) -> (ref, sentence)`` over every ref."""
    records = {}
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        for sent in ref.get('sentences') or []:
            if not isinstance(sent, dict):
                continue
            key = (ref.get('ref_id'), sent.get('sent_id'))
            if key in records:
                raise BadRecordError(
                    f'ref_id {key[0]} has sent_id {key[1]} twice', file,
                    f'ref_id {key[0]}')
            records[key] = (ref, sent)
    return records


def _sentence_type(sent: dict, file: str, record: str) -> Optional[str]:
    if 'unique_by' not in sent:
        return None
    unique_by = sent['unique_by']
    if not isinstance(unique_by, list):
        raise BadRecordError(
            '"unique_by" must be a list of attribute names, got '
            f'{unique_by!r}', file, record)
    try:
        return expression_type(unique_by)
    except ValueError as exc:
        raise BadRecordError(f'"unique_by": {exc}', file, record) from None


def _all_or_none(samples, attribute: str, what: str, file: str) -> None:
    missing = [s for s in samples if getattr(s, attribute) is None]
    if missing and len(missing) < len(samples):
        raise BadRecordError(
            f'no {what} here, but other sentences of the split have one: '
            'record it for every sentence or for none', file,
            missing[0].record)


def types_available(samples: Sequence[ReferSample]) -> dict:
    """Whether the split records expression types, and how many of each."""
    if samples[0].expression_type is None:
        return dict(
            available=False,
            reason='the refs record no "unique_by" per sentence (only the '
            'synthetic writer does); no type is guessed from the words')
    counts = {t: sum(s.expression_type == t for s in samples)
              for t in EXPRESSION_TYPES}
    return dict(available=True, counts=counts)


def scores_by_type(pairs: Sequence[Tuple[int, int]],
                   types: Sequence[Optional[str]]) -> dict:
    """RRSIS scores of per-sample (I, U) overall and per expression type
    (types with samples only; ``by_type`` is None without types)."""
    result = dict(overall=rrsis_scores(pairs), by_type=None)
    if types and types[0] is not None:
        result['by_type'] = {
            t: rrsis_scores([p for p, k in zip(pairs, types) if k == t])
            for t in EXPRESSION_TYPES if t in types
        }
    return result


def baseline_mask(name: str, image: ReferImage) -> np.ndarray:
    """The mask a trivial predictor gives for any sentence about
    ``image``."""
    if name == 'all_zero':
        return np.zeros(image.size, bool)
    if name == 'whole_image':
        return np.ones(image.size, bool)
    if name == 'all_objects':
        return image.all_objects()
    raise ValueError(f'unknown baseline {name!r} (known: {BASELINES})')


def baseline_scores(samples: Sequence[ReferSample],
                    images: Dict[int, ReferImage]) -> dict:
    """:func:`scores_by_type` of each baseline in ``BASELINES``."""
    types = [s.expression_type for s in samples]
    return {
        name: scores_by_type([
            intersection_union(
                baseline_mask(name, images[s.image_id]),
                images[s.image_id].masks[s.ann_id]) for s in samples
        ], types)
        for name in BASELINES
    }


def prediction_scores(samples: Sequence[ReferSample],
                      images: Dict[int, ReferImage],
                      predictions: Dict[tuple, np.ndarray]) -> dict:
    """:func:`scores_by_type` of predicted masks (keyed by
    ``ReferSample.key``), checked against the image size."""
    pairs = []
    for s in samples:
        gt = images[s.image_id].masks[s.ann_id]
        pred = predictions[s.key]
        if pred.shape != gt.shape:
            raise ValueError(f'{s.record}: the prediction is '
                             f'{list(pred.shape)}, the image '
                             f'{list(gt.shape)}')
        pairs.append(intersection_union(pred, gt))
    return scores_by_type(pairs, [s.expression_type for s in samples])


def object_coverage(samples: Sequence[ReferSample],
                    images: Dict[int, ReferImage],
                    predictions: Dict[tuple, np.ndarray]) -> dict:
    """How "all objects" the predictions are: the mean number of annotated
    instances per sample's image, the mean number a prediction covers (at
    least ``COVER_FRACTION`` of the instance's pixels), and the fraction of
    samples whose best-overlapping instance (highest IoU; none for an
    empty prediction) is the target."""
    objects, covered, best = [], [], []
    for s in samples:
        image = images[s.image_id]
        pred = predictions[s.key]
        ids = list(image.masks)
        masks = [image.masks[i] for i in ids]
        inside = np.array([(pred & m).sum() / m.sum() for m in masks])
        ious = iou_matrix([pred], masks)[0]
        objects.append(len(ids))
        covered.append(int((inside >= COVER_FRACTION).sum()))
        best.append(bool(ious.max() > 0
                         and ids[int(ious.argmax())] == s.ann_id))
    return dict(mean_objects=float(np.mean(objects)),
                mean_objects_covered=float(np.mean(covered)),
                best_match_is_target=float(np.mean(best)),
                cover_fraction=COVER_FRACTION)


def swap_partners(samples: Sequence[ReferSample],
                  pool: Sequence[ReferSample]
                  ) -> List[Tuple[ReferSample, ReferSample]]:
    """For each sample whose image has another referred object in
    ``pool`` (a different ``ann_id``), a sentence naming that object: the
    next such object of the image (in the pool's order of first
    appearance, cyclically) and its first sentence in the pool."""
    by_image: Dict[int, Dict[int, ReferSample]] = {}
    for s in pool:
        by_image.setdefault(s.image_id, {}).setdefault(s.ann_id, s)
    pairs = []
    for s in samples:
        targets = list(by_image.get(s.image_id, {}))
        if s.ann_id not in targets or len(targets) < 2:
            continue
        nxt = targets[(targets.index(s.ann_id) + 1) % len(targets)]
        pairs.append((s, by_image[s.image_id][nxt]))
    return pairs


def _iou(a: np.ndarray, b: np.ndarray, empty: float = 0.0) -> float:
    inter, union = intersection_union(a, b)
    return inter / union if union else empty


def swap_probe(own: Sequence[np.ndarray], swapped: Sequence[np.ndarray],
               old_targets: Sequence[np.ndarray],
               new_targets: Sequence[np.ndarray]) -> dict:
    """Does the mask follow the sentence? Per sample: the prediction for
    its own sentence, for the sentence naming another object, and both
    targets.

    ``changed``: IoU(own, swapped) < ``CHANGE_IOU`` (two empty predictions
    are the same mask); ``identical``: pixel-identical; ``landed``: the
    swapped prediction has IoU >= ``LAND_IOU`` with the new target and a
    higher IoU with it than with the old one. Fractions of the samples;
    None without samples.
    """
    n = len(own)
    if not n == len(swapped) == len(old_targets) == len(new_targets):
        raise ValueError('own, swapped and both targets need one mask per '
                         'sample')
    rows = []
    for p, q, old, new in zip(own, swapped, old_targets, new_targets):
        to_new, to_old = _iou(q, new), _iou(q, old)
        rows.append(dict(
            changed=_iou(p, q, empty=1.0) < CHANGE_IOU,
            identical=bool(np.array_equal(p, q)),
            landed=to_new >= LAND_IOU and to_new > to_old,
            own_vs_swapped=_iou(p, q, empty=1.0),
            own_vs_old=_iou(p, old), own_vs_new=_iou(p, new),
            swapped_vs_old=to_old, swapped_vs_new=to_new))

    def mean(key):
        return float(np.mean([r[key] for r in rows])) if rows else None

    return dict(
        samples=n,
        changed_fraction=mean('changed'),
        identical_fraction=mean('identical'),
        landed_fraction=mean('landed'),
        mean_iou={k: mean(k) for k in ('own_vs_swapped', 'own_vs_old',
                                      'own_vs_new', 'swapped_vs_old',
                                      'swapped_vs_new')},
        change_iou=CHANGE_IOU,
        land_iou=LAND_IOU)


def cosine_spread(vectors: np.ndarray, image_ids: Sequence,
                  target_ids: Sequence) -> dict:
    """Mean pairwise cosine distance (1 - cos) of per-sample vectors:
    between different targets of one image, between sentences of one
    target, and over all pairs (the overall spread). None where there
    is no pair."""
    x = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ValueError(f'vector {int(np.argmin(norms))} is zero: its '
                         'cosine is undefined')
    x = x / norms[:, None]
    dist = 1.0 - x @ x.T
    img = _codes(image_ids)
    tgt = _codes(list(zip(image_ids, target_ids)))
    upper = np.triu(np.ones(dist.shape, bool), 1)
    same_image = (img[:, None] == img[None]) & upper
    same_target = same_image & (tgt[:, None] == tgt[None])

    def mean(sel):
        return float(dist[sel].mean()) if sel.any() else None

    return dict(
        within_image_different_targets=mean(same_image & ~same_target),
        same_target=mean(same_target),
        all_pairs=mean(upper),
        pairs=dict(within_image_different_targets=int(
            (same_image & ~same_target).sum()),
                   same_target=int(same_target.sum()),
                   all_pairs=int(upper.sum())))


def _codes(values: Sequence) -> np.ndarray:
    """An integer per distinct value (any hashable values)."""
    codes = {}
    return np.array([codes.setdefault(v, len(codes)) for v in values])


def alternate_images(image_ids: Sequence) -> np.ndarray:
    """Training half of a probe: the samples of every other image (in
    order of first appearance), so no image is in both halves."""
    return _codes(image_ids) % 2 == 0


def logistic_probe(features: np.ndarray, labels: Sequence,
                   train: np.ndarray, steps: int = 500,
                   l2: float = 1e-3) -> dict:
    """Multinomial logistic regression from ``features`` to ``labels``,
    fitted on the ``train`` rows and scored on the others, beside the
    accuracy of always answering the training half's most frequent label.

    Features are standardised with the training half's mean and spread;
    full-batch gradient descent from zero for ``steps`` steps of
    1 / (the loss's curvature bound), L2 ``l2`` on the weights, so the
    result is deterministic.
    """
    x = np.asarray(features, np.float64)
    labels = list(labels)
    train = np.asarray(train, bool)
    if len(labels) != len(x) or len(train) != len(x):
        raise ValueError('features, labels and train need one row each')
    if not train.any() or train.all():
        raise ValueError('the probe needs samples in both halves')
    classes = sorted(set(labels[i] for i in np.flatnonzero(train)), key=str)
    index = {c: k for k, c in enumerate(classes)}
    mean, std = x[train].mean(0), x[train].std(0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    x = np.hstack([x, np.ones((len(x), 1))])
    xt = x[train]
    y = np.zeros((len(xt), len(classes)))
    y[np.arange(len(xt)), [index[labels[i]] for i in np.flatnonzero(train)]
      ] = 1
    weights = np.zeros((x.shape[1], len(classes)))
    step = 1.0 / (0.5 * np.linalg.norm(xt, 2)**2 / len(xt) + l2)
    decay = np.ones((x.shape[1], 1))
    decay[-1] = 0  # no decay on the bias
    for _ in range(steps):
        logits = xt @ weights
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        weights -= step * (xt.T @ (p - y) / len(xt) + l2 * decay * weights)
    test = np.flatnonzero(~train)
    predicted = [classes[k] for k in (x[test] @ weights).argmax(1)]
    truth = [labels[i] for i in test]
    train_labels = [labels[i] for i in np.flatnonzero(train)]
    majority = max(classes, key=train_labels.count)
    return dict(
        accuracy=float(np.mean([p == t for p, t in zip(predicted, truth)])),
        majority_accuracy=float(np.mean([t == majority for t in truth])),
        majority_class=majority,
        classes=len(set(labels)),
        train_samples=int(train.sum()),
        test_samples=len(test))


def linear_probes(samples: Sequence[ReferSample],
                  vectors: Dict[str, np.ndarray]) -> dict:
    """:func:`logistic_probe` from each kind of per-sample vector to the
    target's category and colour, and to its position over the sentences
    that name one, trained on :func:`alternate_images`;
    ``dict(unavailable=reason)`` where a probe cannot run."""
    train = alternate_images([s.image_id for s in samples])
    probes = {}
    named = [k for k, s in enumerate(samples) if s.position is not None]
    part = alternate_images([samples[k].image_id for k in named])
    if part.any() and not part.all():
        probes['position'] = {
            kind: logistic_probe(x[named],
                                 [samples[k].position for k in named], part)
            for kind, x in vectors.items()
        }
    else:
        probes['position'] = dict(
            unavailable='too few sentences name a position')
    for name in ('category', 'colour'):
        labels = [getattr(s, name) for s in samples]
        if None in labels:
            probes[name] = dict(unavailable=f'the data records no {name} '
                                'for some targets')
        elif train.all():
            probes[name] = dict(unavailable='one image: no half to score '
                                'on')
        else:
            probes[name] = {
                kind: logistic_probe(x, labels, train)
                for kind, x in vectors.items()
            }
    return probes


def probe_report(split: ReferSplit, masks: Dict[tuple, np.ndarray],
                 states: Dict[tuple, np.ndarray],
                 prompts: Dict[tuple, np.ndarray]) -> dict:
    """Every probe of a split, from the predicted masks, ``[SEG]`` states
    and prompts of each sentence of ``split.pool`` (keyed by
    ``ReferSample.key``): the JSON of ``tools/analysis/refer_probe.py``
    without its run details."""
    samples, images = split.samples, split.images
    swaps = swap_partners(samples, split.pool)
    swap = swap_probe(
        [masks[s.key] for s, _ in swaps], [masks[o.key] for _, o in swaps],
        [images[s.image_id].masks[s.ann_id] for s, _ in swaps],
        [images[o.image_id].masks[o.ann_id] for _, o in swaps])
    swap['eligible_fraction'] = len(swaps) / len(samples)
    vectors = {
        'seg_state': np.stack([states[s.key] for s in samples]),
        'seg_prompt': np.stack([prompts[s.key] for s in samples]),
    }
    image_ids = [s.image_id for s in samples]
    targets = [s.ann_id for s in samples]
    return dict(
        samples=len(samples),
        images=len(images),
        expression_types=types_available(samples),
        scores=dict(
            model=prediction_scores(samples, images, masks),
            **baseline_scores(samples, images)),
        objects=object_coverage(samples, images, masks),
        swap=swap,
        seg=dict(
            spread={
                kind: cosine_spread(x, image_ids, targets)
                for kind, x in vectors.items()
            },
            linear_probe=linear_probes(samples, vectors)))
