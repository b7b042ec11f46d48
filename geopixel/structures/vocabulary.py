"""The shared vocabulary of data, model and metrics: special tokens, label
constants, and the two rules that read phrases out of an answer.

Everything that speaks GeoPixel's answer format imports it from here, so
the data pipeline, the model, the visualizer and the metrics cannot drift
apart. The answer format is ``The <p> tennis court-1 </p> [SEG] at right``:
the k-th ``[SEG]`` owns the k-th mask.

Two phrase rules exist on purpose and have distinct names:

* :func:`grounded_phrases` (the model's rule): the phrase of each
  ``<p> ... </p> [SEG]``, in ``[SEG]`` order, so phrase k labels mask k.
  Used for ground truth (``phrases`` of a sample).
* :func:`glamm_phrases` (GLaMM's rule): every ``<p> ... </p>``, with or
  without a ``[SEG]``, in text order, as GLaMM's inference script extracts
  them; its evaluator pairs phrase i with mask i. ``pred_phrases`` of a
  prediction follows this rule, so what the visualizer draws is what
  :class:`~geopixel.evaluation.GCGMetric` scores.

They agree on well-formed answers; they differ when a phrase lost its
``[SEG]``, and the metric then sees the misalignment GLaMM would see.
"""
import re
from typing import List, Optional

SEG_TOKEN = '[SEG]'
PHRASE_START = '<p>'
PHRASE_END = '</p>'
# added to the LLM's vocabulary, in this order (their ids follow the base
# vocabulary: 92544, 92545, 92546 for IXC-2.5)
GEOPIXEL_TOKENS = (SEG_TOKEN, PHRASE_START, PHRASE_END)
# label value the cross-entropy loss ignores
IGNORE_INDEX = -100

# a phrase never spans another <p>: a dangling one is skipped, not merged
_GROUNDED_PHRASE = re.compile(r'<p>((?:(?!<p>).)*?)</p>\s*\[SEG\]', re.S)
_GLAMM_PHRASE = re.compile(r'<p>(.*?)</p>')
# the phrase right before a [SEG] (the model's rule, as grounded_phrases)
PHRASE_AT_END = re.compile(r'<p>((?:(?!<p>).)*?)</p>\s*$', re.S)


def grounded_phrases(text: str) -> List[str]:
    """The model's rule: the phrase before each ``[SEG]``, stripped."""
    return [m.strip() for m in _GROUNDED_PHRASE.findall(text)]


def seg_phrases(text: str) -> List[Optional[str]]:
    """The phrase of each ``[SEG]`` of ``text`` in order: the ``<p> ...
    </p>`` right before it, or None where it has none (so entry k always
    labels mask k, unlike :func:`grounded_phrases`,
    which skips a ``[SEG]`` without a phrase)."""
    pieces = text.split(SEG_TOKEN)[:-1]
    phrases = []
    for piece in pieces:
        found = PHRASE_AT_END.search(piece)
        phrases.append(found.group(1).strip() if found else None)
    return phrases


def glamm_phrases(text: str) -> List[str]:
    """GLaMM's rule: every ``<p> ... </p>`` (newlines removed first, as
    GLaMM's inference does), stripped, in text order."""
    return [m.strip() for m in _GLAMM_PHRASE.findall(text.replace('\n', ''))]


def glamm_caption(text: str) -> str:
    """GLaMM's caption cleaning: drop newlines, every ``<...>`` tag and
    ``[SEG]``, collapse whitespace, strip single quotes."""
    text = re.sub(r'<.*?>', '', text.replace('\n', ''))
    return ' '.join(text.replace(SEG_TOKEN, '').split()).strip("'")


def count_seg(text: str) -> int:
    """How many ``[SEG]`` (hence masks) ``text`` asks for."""
    return text.count(SEG_TOKEN)


_INSTANCE_SUFFIX = re.compile(r'\s*-\s*\d+$')
_ARTICLE = re.compile(r'^(?:a|an|the)\s+')


def phrase_category(phrase: str) -> str:
    """A phrase's object category (what two detections of a scene must
    share to be merged as one object): lower case,
    whitespace collapsed, a leading article (a, an, the) and a trailing
    instance number (``-1``, ``- 2``) removed, then one plural ``s``
    dropped from the end unless it ends in ``ss`` (``tennis courts-2`` ->
    ``tennis court``; ``grass`` stays)."""
    name = ' '.join(phrase.lower().split())
    name = _ARTICLE.sub('', _INSTANCE_SUFFIX.sub('', name))
    if name.endswith('s') and not name.endswith('ss'):
        name = name[:-1]
    return name
