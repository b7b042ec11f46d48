"""The offline annotator: deterministic text from the priors and the pixels.

No model: the holistic caption, instance and group descriptions are
filled from the request's priors (category, count, position) and from
what the pixels say (the median colour under a mask, the shape of a
mask, how spread a group is). Paraphrasing rewords the text outside the
marked phrases. The same request always gets the same answer, and a
retry (``attempt`` > 0) picks another wording, so tests and the demo can
exercise the whole pipeline, and its output is a real (if plain) dataset
that the tiny model trains on.
"""
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

from geopixel.registry import ANNOTATORS
from .base import AnnotationRequest, AnnotatorBackend

# colour words and the sRGB they stand for (a small, general palette)
PALETTE = {
    'white': (235, 235, 232),
    'light gray': (180, 180, 178),
    'gray': (128, 130, 134),
    'dark gray': (70, 72, 76),
    'black': (30, 30, 34),
    'red': (190, 40, 36),
    'orange': (220, 120, 30),
    'yellow': (222, 190, 40),
    'green': (60, 130, 60),
    'olive': (110, 120, 70),
    'blue': (40, 80, 170),
    'teal': (40, 110, 120),
    'brown': (120, 85, 55),
    'tan': (190, 165, 120),
}
_TAG = re.compile(r'<p>.*?</p>')


def colour_name(pixels: np.ndarray) -> str:
    """The palette word nearest the median colour of ``pixels`` (N x 3)."""
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 3)
    if not len(pixels):
        raise ValueError('no pixels to name a colour from')
    median = np.median(pixels, axis=0)
    names = list(PALETTE)
    rgb = np.asarray([PALETTE[n] for n in names], dtype=np.float64)
    return names[int(np.argmin(((rgb - median)**2).sum(1)))]


def elongation(mask: np.ndarray) -> float:
    """Ratio of the mask's principal axes (1 for a disc or square)."""
    ys, xs = np.nonzero(mask)
    if len(ys) < 3:
        return 1.0
    cov = np.cov(np.stack([xs, ys]).astype(np.float64))
    low, high = np.sort(np.linalg.eigvalsh(cov))
    return float(np.sqrt(high / max(low, 1e-6)))


def _article(word: str) -> str:
    return 'an' if word[:1].lower() in 'aeiou' else 'a'


def _choose(options: Sequence[str], request: AnnotationRequest) -> str:
    return options[request.attempt % len(options)]


def _describe_area(image: np.ndarray) -> str:
    gray = image.astype(np.float64).mean(axis=2)
    texture = 'uniform' if gray.std() < 25 else 'varied'
    return f'a {texture}, mostly {colour_name(image)} area'


def _count_list(categories: Dict[str, int]) -> str:
    from ..prompts import counted
    parts = [counted(c, n) for c, n in categories.items()]
    if len(parts) <= 2:
        return ' and '.join(parts)
    return ', '.join(parts[:-1]) + ', and ' + parts[-1]


@ANNOTATORS.register_module()
class TemplateAnnotator(AnnotatorBackend):
    """Deterministic descriptions from priors and pixel statistics.

    Args:
        rewordings: ``(old, new)`` pairs the paraphraser applies outside
            the marked phrases, one set per attempt (attempt ``k`` uses
            set ``k % len(rewordings)``).
    """

    DEFAULT_REWORDINGS = (
        (('The image is an overhead view of', 'This overhead image shows'),
         ('It contains', 'Visible in it are'), (' is located ', ' lies ')),
        (('The image is an overhead view of', 'Seen from above, the scene '
          'is'), ('It contains', 'The annotated objects are'),
         (' covers about ', ' takes up about ')),
    )

    def __init__(self, rewordings: Optional[Sequence] = None):
        self.rewordings = tuple(
            tuple(tuple(pair) for pair in group)
            for group in (rewordings or self.DEFAULT_REWORDINGS))

    def settings(self) -> dict:
        return dict(type=type(self).__name__)

    def generate(self, request: AnnotationRequest) -> str:
        return getattr(self, '_' + request.task)(request)

    def _holistic(self, request: AnnotationRequest) -> str:
        image = request.image
        categories = request.fields.get('categories') or {}
        sentences = [f'The image is an overhead view of '
                     f'{_describe_area(image)}.']
        if categories:
            sentences.append(f'It contains {_count_list(categories)}.')
            top = max(categories, key=categories.get)
            if categories[top] > 1:
                from ..prompts import plural
                sentences.append(
                    _choose((f'The {plural(top)} are the most numerous '
                             'objects.',
                             f'Most of the objects are {plural(top)}.'),
                            request))
        else:
            sentences.append('No annotated objects are visible.')
        half = image.shape[0] // 2
        top_c, bottom_c = (colour_name(image[:half]),
                           colour_name(image[half:]))
        if top_c != bottom_c:
            sentences.append(f'The upper part is mostly {top_c} and the '
                             f'lower part mostly {bottom_c}.')
        else:
            sentences.append(f'The whole image has a {top_c} tone.')
        limit = int(request.fields.get('num_sentences', 4))
        return ' '.join(sentences[:limit])

    def _instance(self, request: AnnotationRequest) -> str:
        fields = request.fields
        category, position = fields['category'], fields['position']
        mask = np.asarray(fields['mask'], dtype=bool)
        patch = fields.get('patch', request.image)
        colour = colour_name(patch[mask])
        shape = 'elongated' if elongation(mask) > 2.0 else 'compact'
        share = 100.0 * mask.sum() / mask.size
        size = f'about {share:.1f}% of the image' if share >= 0.1 else \
            'a small part of the image'
        where = f'the {position} of the image'
        return _choose(
            (f'The {category} in {where} is {colour} with '
             f'{_article(shape)} {shape} outline and covers {size}.',
             f'The {category} is located in {where}; it is {colour} and '
             f'{shape}, covering {size}.'), request)

    def _group(self, request: AnnotationRequest) -> str:
        from ..prompts import counted, plural, where_phrase
        fields = request.fields
        category, count = fields['category'], int(fields['count'])
        position = fields['position']
        masks = [np.asarray(m, dtype=bool) for m in fields['masks']]
        patch = fields.get('patch', request.image)
        union = np.logical_or.reduce(masks)
        colour = colour_name(patch[union])
        where = where_phrase(position)
        if count == 1:
            return (f'A single {colour} {category} lies {where}.')
        centres = np.array([np.argwhere(m).mean(0) for m in masks])
        spread = float(np.sqrt(centres.var(0).sum())) / max(union.shape)
        arrangement = ('closely packed' if spread < 0.08 else
                       'lined up' if elongation_of_points(centres) > 4 else
                       'scattered')
        return _choose(
            (f'There are {counted(category, count)} {where}, mostly '
             f'{colour} and {arrangement}.',
             f'{count} {plural(category)} appear {where}; they are mostly '
             f'{colour} and {arrangement}.'), request)

    def _paraphrase(self, request: AnnotationRequest) -> str:
        text = request.fields['text']
        pairs = self.rewordings[request.attempt % len(self.rewordings)]
        pieces = _split_tags(text)
        out = []
        for piece, is_tag in pieces:
            if not is_tag:
                for old, new in pairs:
                    piece = piece.replace(old, new)
            out.append(piece)
        return ' '.join(''.join(out).split())


def elongation_of_points(points: np.ndarray) -> float:
    """Ratio of the principal axes of a point cloud (N x 2)."""
    if len(points) < 3:
        return 1.0
    low, high = np.sort(np.linalg.eigvalsh(np.cov(points.T)))
    return float(np.sqrt(high / max(low, 1e-6)))


def _split_tags(text: str) -> List:
    """``text`` as ``(piece, is_tag)`` runs, tags being ``<p> ... </p>``."""
    pieces, last = [], 0
    for match in _TAG.finditer(text):
        pieces.append((text[last:match.start()], False))
        pieces.append((match.group(0), True))
        last = match.end()
    pieces.append((text[last:], False))
    return pieces
