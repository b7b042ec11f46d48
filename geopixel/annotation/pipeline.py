"""The annotation pipeline: one patch and its instances to a GeoPixelD
record.

For each patch (docs/en/user_guides/annotation.md):

1. prominent objects (area >= ``min_area``, at most ``max_instances``,
   largest first) get numbered markers; the rest form one group per
   category;
2. the annotator writes a holistic caption of the plain patch, one
   description per prominent object (marked patch, category, marker
   number, 3 x 3 position) and one per group (category, count, position
   from the three-stage analysis);
3. each description's category noun chunk is tagged ``<p> {chunk}-{N} </p>``
   and linked to the instance mask or the group's union mask; a
   description that never names its category is asked for again and, after
   ``describe_attempts``, replaced by a sentence made from the priors
   (counted: no object is left out);
4. the filters cut marker numbers, foreground/background, distance and
   non-overhead words;
5. the texts are joined and paraphrased; a paraphrase that loses, repeats
   or adds a marked phrase is asked for again, and after
   ``paraphrase_attempts`` the joined text is kept (counted);
6. each tag gets its ``[SEG]``; the k-th ``[SEG]`` owns the k-th mask.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .backends.base import AnnotationRequest, AnnotatorBackend
from .marking import (DEFAULT_FILTERS, TAG, TextFilter, apply_filters,
                      category_forms, check_phrases, mark_phrase,
                      merge_counts, tagged_phrases)
from .marks import Marker, place_markers, render_markers, select_prominent
from .prompts import (group_request, holistic_request, instance_request,
                      paraphrase_request, plural)
from .spatial import group_position, instance_position

LEVELS = ('instance', 'group')


def display_name(category: str) -> str:
    """``Small_Vehicle`` -> ``small vehicle`` (iSAID's raw names)."""
    return ' '.join(category.replace('_', ' ').lower().split())


@dataclass
class PatchObject:
    """One annotated object of a patch: integer polygons in patch pixels
    (as the GeoPixelD polygon files store them) and its mask."""
    ann_id: int
    category: str
    polygons: List[List[List[int]]]
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class GroundedPhrase:
    """A marked phrase and the mask it owns."""
    phrase: str
    level: str
    category: str
    position: str
    objects: List[PatchObject]
    marker: Optional[int] = None

    @property
    def num_instances(self) -> int:
        return len(self.objects)

    @property
    def polygons(self) -> List[List[List[int]]]:
        """The mask as the polygon file stores it: every polygon of every
        object (filled and OR-ed by the reader)."""
        return [poly for obj in self.objects for poly in obj.polygons]

    def record(self) -> dict:
        return dict(phrase=self.phrase, level=self.level,
                    category=self.category,
                    num_instances=self.num_instances,
                    position=self.position, marker=self.marker,
                    annotation_ids=[o.ann_id for o in self.objects])


@dataclass
class PatchAnnotation:
    """A patch's GeoPixelD description, masks and how they were made."""
    description: str
    phrases: List[GroundedPhrase]
    markers: List[Marker]
    marked_image: np.ndarray
    texts: Dict[str, object]
    info: Dict[str, object] = field(default_factory=dict)

    @property
    def counts(self) -> Dict[str, int]:
        return dict(
            holistic=int(bool(self.texts.get('holistic'))),
            instance=sum(p.level == 'instance' for p in self.phrases),
            group=sum(p.level == 'group' for p in self.phrases),
            objects=sum(p.num_instances for p in self.phrases))


def integer_polygons(polygons: Sequence, height: int,
                     width: int) -> List[List[List[int]]]:
    """Polygons rounded to integer pixels, as GeoPixelD stores them.

    Repeated points are merged, and a part that rounding leaves with
    fewer than 3 points or no area is left out (the caller sees an empty
    list when nothing is left).
    """
    out = []
    for part in polygons:
        pts = np.round(np.asarray(part, dtype=np.float64).reshape(-1, 2))
        pts[:, 0] = np.clip(pts[:, 0], 0, width)
        pts[:, 1] = np.clip(pts[:, 1], 0, height)
        keep = np.ones(len(pts), bool)
        keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
        pts = pts[keep]
        if len(pts) > 1 and np.all(pts[0] == pts[-1]):
            pts = pts[:-1]
        if len(np.unique(pts, axis=0)) < 3:
            continue
        x, y = pts[:, 0], pts[:, 1]
        if np.dot(x, np.roll(y, -1)) == np.dot(y, np.roll(x, -1)):
            continue
        out.append(pts.astype(int).tolist())
    return out


def rasterise(polygons: Sequence, height: int, width: int) -> np.ndarray:
    """Fill and OR the integer polygons, as the GeoPixelD reader does."""
    import cv2
    mask = np.zeros((height, width), np.uint8)
    for poly in polygons:
        cv2.fillPoly(mask, [np.asarray(poly, np.int32)], 1)
    return mask.astype(bool)


def _with_seg(text: str) -> str:
    return TAG.sub(lambda m: f'<p> {m.group(1)} </p> [SEG]', text)


def _sentence(text: str) -> str:
    text = ' '.join(text.split())
    if text and not text.endswith(('.', '!', '?')):
        text += '.'
    return text


class AnnotationPipeline:
    """Writes grounded descriptions of patches with annotator backends.

    Args:
        annotator: the backend (or its ANNOTATORS config) that writes the
            holistic, instance and group texts.
        paraphraser: the backend that unifies them; ``None`` keeps the
            joined text.
        min_area: mask pixels from which an object is prominent (gets a
            marker and its own description). Our default: 0.25% of an
            800 x 800 patch.
        max_instances: at most this many prominent objects per patch (the
            rest join the groups); ``None`` for no limit.
        num_sentences: length of the holistic caption.
        describe_attempts: tries for a description that names its
            category before the prior-made sentence is used.
        paraphrase_attempts: tries for a paraphrase that keeps every
            marked phrase before the joined text is kept.
        category_names: source category name -> the words used in text
            (default: lower case, underscores as spaces).
        aliases: category (text name) -> other words that name it in a
            description (``'small vehicle': ['car', 'vehicle']``).
        filters: the :class:`TextFilter` s applied to every text.
    """

    def __init__(self,
                 annotator,
                 paraphraser=None,
                 min_area: float = 1600,
                 max_instances: Optional[int] = 6,
                 num_sentences: int = 4,
                 describe_attempts: int = 3,
                 paraphrase_attempts: int = 3,
                 category_names: Optional[Dict[str, str]] = None,
                 aliases: Optional[Dict[str, Sequence[str]]] = None,
                 filters: Sequence[TextFilter] = DEFAULT_FILTERS):
        self.annotator = _build(annotator)
        self.paraphraser = _build(paraphraser)
        if describe_attempts < 1 or paraphrase_attempts < 1:
            raise ValueError('describe_attempts and paraphrase_attempts '
                             'must be >= 1')
        self.min_area = min_area
        self.max_instances = max_instances
        self.num_sentences = num_sentences
        self.describe_attempts = describe_attempts
        self.paraphrase_attempts = paraphrase_attempts
        self.category_names = dict(category_names or {})
        self.aliases = {k: list(v) for k, v in (aliases or {}).items()}
        self.filters = tuple(
            f if isinstance(f, TextFilter) else TextFilter(**f)
            for f in filters)

    def settings(self) -> dict:
        """What the output records about how it was made (a resumed run
        must have the same)."""
        return dict(
            annotator=self.annotator.settings(),
            paraphraser=None if self.paraphraser is None else
            self.paraphraser.settings(),
            min_area=self.min_area, max_instances=self.max_instances,
            num_sentences=self.num_sentences,
            describe_attempts=self.describe_attempts,
            paraphrase_attempts=self.paraphrase_attempts,
            category_names=self.category_names, aliases=self.aliases,
            filters=[f.__dict__ for f in self.filters])

    def text_name(self, category: str) -> str:
        return self.category_names.get(category, display_name(category))

    # ----------------------------------------------------------- a patch

    def annotate_patch(self, image: np.ndarray,
                       objects: Sequence[PatchObject]) -> PatchAnnotation:
        """The GeoPixelD annotation of one RGB patch and its objects."""
        height, width = image.shape[:2]
        for obj in objects:
            if obj.mask.shape != (height, width) or not obj.mask.any():
                raise ValueError(f'object {obj.ann_id}: its mask must be a '
                                 f'non-empty {height} x {width} array')
        filtered: Dict[str, int] = {}
        info = dict(description_fallbacks=[], describe_retries=0,
                    filtered=filtered)
        prominent, rest = select_prominent([o.area for o in objects],
                                           self.min_area)
        if self.max_instances is not None:
            rest = sorted(rest + prominent[self.max_instances:])
            prominent = prominent[:self.max_instances]
        markers = place_markers([objects[i].mask for i in prominent],
                                height, width)
        marked_image = render_markers(image, markers)

        counts: Dict[str, int] = {}
        for obj in objects:
            counts[obj.category] = counts.get(obj.category, 0) + 1
        holistic = self._ask(
            holistic_request(image, dict(sorted(
                counts.items(), key=lambda kv: -kv[1])),
                self.num_sentences))
        holistic, cut = apply_filters(holistic, self.filters)
        holistic = _sentence(holistic)
        merge_counts(filtered, cut)

        phrases: List[GroundedPhrase] = []
        instance_texts, group_texts = [], []
        for marker, index in zip(markers, prominent):
            obj = objects[index]
            position = instance_position(obj.mask)
            request = instance_request(marked_image, obj.category,
                                       marker.number, position,
                                       mask=obj.mask, patch=image)
            phrase = GroundedPhrase('', 'instance', obj.category, position,
                                    [obj], marker.number)
            instance_texts.append(
                self._describe(request, phrase, len(phrases) + 1, info))
            phrases.append(phrase)
        groups: Dict[str, List[PatchObject]] = {}
        for index in rest:
            groups.setdefault(objects[index].category,
                              []).append(objects[index])
        for category, members in sorted(groups.items(),
                                        key=lambda kv: -len(kv[1])):
            masks = [o.mask for o in members]
            position = group_position(masks).phrase
            request = group_request(image, category, len(members), position,
                                    masks=masks, patch=image)
            phrase = GroundedPhrase('', 'group', category, position, members)
            group_texts.append(
                self._describe(request, phrase, len(phrases) + 1, info))
            phrases.append(phrase)

        unified = ' '.join(t for t in [holistic, *instance_texts,
                                       *group_texts] if t)
        final, attempts, fallback, refusals = self._paraphrase(
            unified, [p.phrase for p in phrases], filtered)
        info.update(paraphrase_attempts=attempts,
                    paraphrase_fallback=fallback,
                    paraphrase_refusals=refusals)
        by_phrase = {p.phrase: p for p in phrases}
        ordered = [by_phrase[p] for p in tagged_phrases(final)]
        description = _with_seg(final)
        texts = dict(holistic=holistic, instances=instance_texts,
                     groups=group_texts, unified=unified, final=final)
        return PatchAnnotation(description, ordered, markers, marked_image,
                               texts, info)

    # ----------------------------------------------------------- helpers

    def _ask(self, request: AnnotationRequest,
             backend: Optional[AnnotatorBackend] = None,
             strip_tags: bool = True) -> str:
        text = (backend or self.annotator).generate(request)
        if not isinstance(text, str):
            raise TypeError(f'{type(backend or self.annotator).__name__} '
                            f'answered a {request.task} request with a '
                            f'{type(text).__name__}, not text')
        if not strip_tags:
            return ' '.join(text.split())
        # the pipeline places every tag and [SEG]: a model's own are text
        text = text.replace('[SEG]', ' ').replace('<p>', ' ').replace(
            '</p>', ' ')
        return ' '.join(text.split())

    def _describe(self, request: AnnotationRequest, phrase: GroundedPhrase,
                  number: int, info: dict) -> str:
        """The marked, filtered description; ``phrase.phrase`` is set."""
        forms = category_forms(phrase.category,
                               self.aliases.get(phrase.category, ()))
        for attempt in range(self.describe_attempts):
            request.attempt = attempt
            text = self._ask(request)
            marked = mark_phrase(text, forms, number)
            if marked is not None:
                text, phrase.phrase = marked
                text, cut = apply_filters(text, self.filters)
                merge_counts(info['filtered'], cut)
                return _sentence(text)
            info['describe_retries'] += 1
        name = (phrase.category if phrase.num_instances == 1 else
                plural(phrase.category))
        phrase.phrase = f'{name}-{number}'
        info['description_fallbacks'].append(phrase.phrase)
        where = ('across the image' if phrase.position == 'across the image'
                 else f'in the {phrase.position} of the image')
        verb = 'is' if phrase.num_instances == 1 else 'are'
        return f'The <p> {phrase.phrase} </p> {verb} {where}.'

    def _paraphrase(self, text: str, phrases: Sequence[str],
                    filtered: Dict[str, int]):
        """``(final_text, attempts, fell_back, refusal_reasons)``."""
        if self.paraphraser is None:
            return text, 0, False, []
        refusals = []
        for attempt in range(self.paraphrase_attempts):
            answer = self._ask(paraphrase_request(text, phrases, attempt),
                               self.paraphraser, strip_tags=False)
            answer, cut = apply_filters(answer, self.filters)
            check = check_phrases(answer, phrases)
            if check.ok and answer:
                merge_counts(filtered, cut)
                return answer, attempt + 1, False, refusals
            refusals.append(check.reason() if answer else 'empty answer')
        return text, self.paraphrase_attempts, True, refusals


def _build(backend):
    if backend is None or isinstance(backend, AnnotatorBackend):
        return backend
    from geopixel.registry import ANNOTATORS
    import geopixel.annotation.backends  # noqa: F401  (registers them)
    return ANNOTATORS.build(backend)
