"""Prompt builders: the questions the pipeline asks an annotator model.

Three levels, as in the paper (docs/en/user_guides/annotation.md):

* holistic: the plain patch, "Describe the image in N short sentences";
* instance: the marked patch, with the priors the paper found necessary
  on aerial images (category, marker number, 3 x 3 position);
* group: the plain patch, with a category, its count and the group's
  position from the three-stage analysis;

plus the paraphrase request, which carries the marked text and the rule
that every ``<p> ... </p>`` survives verbatim. The wording is ours; the
paper quotes only the holistic prompt's form. Every request also carries
its priors in ``fields`` (what the template backend answers from).
"""
from typing import Optional, Sequence

import numpy as np

from .backends.base import AnnotationRequest

NUMBER_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six',
                'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve')

OVERHEAD_RULES = ('The image is an overhead (aerial or satellite) view: do '
                  'not use the words foreground or background, do not '
                  'describe distance from the viewer, the sky or the '
                  'horizon.')


def number_word(count: int) -> str:
    """``3`` -> ``'three'`` up to twelve, digits after."""
    return NUMBER_WORDS[count] if 0 <= count < len(NUMBER_WORDS) else str(
        count)


def plural(category: str) -> str:
    """English plural of a category name's last word (``small vehicle`` ->
    ``small vehicles``, ``harbor`` -> ``harbors``, ``bus`` -> ``buses``)."""
    if category.endswith(('s', 'x', 'z', 'ch', 'sh')):
        return category + 'es'
    if category.endswith('y') and category[-2:-1] not in 'aeiou':
        return category[:-1] + 'ies'
    return category + 's'


def counted(category: str, count: int) -> str:
    """``'one plane'``, ``'seven small vehicles'``."""
    name = category if count == 1 else plural(category)
    return f'{number_word(count)} {name}'


def where_phrase(position: str) -> str:
    """``'in the top left of the image'``, ``'in the top part of the
    image'`` (a half), ``'spread across the image'``."""
    if position == 'across the image':
        return 'spread across the image'
    if position in ('top', 'bottom', 'left', 'right'):
        return f'in the {position} part of the image'
    return f'in the {position} of the image'


def holistic_request(image: np.ndarray,
                     categories: Optional[dict] = None,
                     num_sentences: int = 4) -> AnnotationRequest:
    """A caption of the whole patch. ``categories`` (category -> count of
    the annotated objects) is a prior for the template backend only: the
    paper's holistic prompt names no objects."""
    prompt = (f'Describe the image in {number_word(num_sentences)} short '
              f'sentences. {OVERHEAD_RULES}')
    return AnnotationRequest(
        'holistic', prompt, image,
        dict(categories=dict(categories or {}),
             num_sentences=num_sentences))


def instance_request(marked_image: np.ndarray, category: str, marker: int,
                     position: str, **priors) -> AnnotationRequest:
    """One prominent object, by its marker number, with its priors.

    ``priors`` (for instance the object's ``mask`` and the unmarked
    ``patch``) are kept in ``fields`` for backends that read attributes
    from pixels instead of a model.
    """
    prompt = (f'The object marked {marker} in this aerial image is a '
              f'{category} {where_phrase(position)}. In one or two sentences, '
              f'describe this {category}: its appearance (colour, shape, '
              'size) and what is around it. Start with "The '
              f'{category}" and name it as "{category}". Do not mention '
              f'the marker or its number. {OVERHEAD_RULES}')
    return AnnotationRequest(
        'instance', prompt, marked_image,
        dict(category=category, marker=marker, position=position, **priors))


def group_request(image: np.ndarray, category: str, count: int,
                  position: str, **priors) -> AnnotationRequest:
    """The non-prominent objects of one category, with count and
    position."""
    what = counted(category, count)
    noun = category if count == 1 else plural(category)
    where = where_phrase(position)
    prompt = (f'This aerial image contains {what} {where}. In '
              f'one sentence, describe these {noun} as a group: their '
              f'arrangement, appearance and surroundings. Use the words '
              f'"{noun}". {OVERHEAD_RULES}')
    return AnnotationRequest(
        'group', prompt, image,
        dict(category=category, count=count, position=position, **priors))


def paraphrase_request(text: str, phrases: Sequence[str],
                       attempt: int = 0) -> AnnotationRequest:
    """Rewrite ``text`` fluently, keeping every marked phrase verbatim."""
    tags = ', '.join(f'<p> {p} </p>' for p in phrases)
    prompt = ('Rewrite the following description of an aerial image as one '
              'fluent paragraph without losing information. Every tag of '
              'the form <p> ... </p> must appear exactly once, unchanged, '
              'with the same words and number inside; do not add tags. '
              f'The tags are: {tags or "none"}. Do not mention markers or '
              f'marker numbers. {OVERHEAD_RULES} Answer with the paragraph '
              f'only.\n\nDescription: {text}')
    return AnnotationRequest('paraphrase', prompt, None,
                             dict(text=text, phrases=list(phrases)),
                             attempt=attempt)
