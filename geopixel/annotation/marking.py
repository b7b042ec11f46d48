"""Text marking, filters and the phrase-preservation check.

* :func:`mark_phrase` tags the key noun chunk of a description (its
  category, singular or plural, or an alias) as ``<p> {chunk}-{N} </p>``:
  the paper's ``phrase-N`` identifier, which links it to the instance mask
  or the group's union mask.
* :func:`apply_filters` removes what an overhead description must not
  say: marker identifiers, foreground/background, distance from the
  viewer, views that are not overhead. A filter either cuts the offending
  words or drops the whole sentence; a sentence holding a marked phrase is
  never dropped (only its offending words are cut), so no mask loses its
  phrase. Every cut is counted.
* :func:`check_phrases` decides whether a paraphrase kept every marked
  phrase verbatim, once, and added none.
"""
import re
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

TAG = re.compile(r'<p>\s*(.*?)\s*</p>')
_SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=\S)')


def category_forms(name: str, aliases: Sequence[str] = ()) -> List[str]:
    """Words that name a category: the name, its aliases and their plurals,
    longest first (so ``small vehicles`` wins over ``vehicle``)."""
    from .prompts import plural
    forms = set()
    for word in (name, *aliases):
        word = ' '.join(word.lower().split())
        if word:
            forms.update((word, plural(word)))
    return sorted(forms, key=lambda w: (-len(w), w))


def _untagged_spans(text: str) -> List[Tuple[int, int]]:
    spans, last = [], 0
    for match in TAG.finditer(text):
        spans.append((last, match.start()))
        last = match.end()
    spans.append((last, len(text)))
    return spans


def mark_phrase(text: str, forms: Sequence[str],
                number: int) -> Optional[Tuple[str, str]]:
    """Tag the first mention of any of ``forms`` outside existing tags.

    Returns ``(marked_text, phrase)`` with ``phrase = '{mention}-{number}'``
    (the mention lower-cased), or None when ``text`` never names the
    category.
    """
    best = None
    for start, end in _untagged_spans(text):
        for form in forms:
            pattern = re.compile(r'(?<![\w-])' + re.escape(form) +
                                 r'(?![\w-])', re.I)
            found = pattern.search(text, start, end)
            if found and (best is None or found.start() < best.start()
                          or (found.start() == best.start()
                              and found.end() > best.end())):
                best = found
        if best is not None:
            break
    if best is None:
        return None
    phrase = f'{best.group(0).lower()}-{number}'
    marked = f'{text[:best.start()]}<p> {phrase} </p>{text[best.end():]}'
    return marked, phrase


def tagged_phrases(text: str) -> List[str]:
    """The phrases inside ``<p> ... </p>`` tags, in order."""
    return [m.strip() for m in TAG.findall(text)]


@dataclass(frozen=True)
class PhraseCheck:
    ok: bool
    missing: Tuple[str, ...] = ()
    repeated: Tuple[str, ...] = ()
    added: Tuple[str, ...] = ()

    def reason(self) -> str:
        parts = []
        for name, items in (('lost', self.missing),
                            ('repeated', self.repeated),
                            ('added', self.added)):
            if items:
                parts.append(f'{name}: ' + ', '.join(items))
        return '; '.join(parts) or 'ok'


def check_phrases(text: str, phrases: Sequence[str]) -> PhraseCheck:
    """Every phrase of ``phrases`` tagged exactly once in ``text``, and no
    other tag; ``[SEG]`` must not appear (the pipeline adds it)."""
    found = Counter(tagged_phrases(text))
    wanted = set(phrases)
    missing = tuple(p for p in phrases if found[p] == 0)
    repeated = tuple(p for p in phrases if found[p] > 1)
    added = tuple(sorted(p for p in found if p not in wanted))
    if '[SEG]' in text or text.count('<p>') != sum(found.values()) or \
            text.count('</p>') != sum(found.values()):
        added = added + ('a stray <p>, </p> or [SEG]', )
    return PhraseCheck(not (missing or repeated or added), missing,
                       repeated, added)


# ------------------------------------------------------------- filters


@dataclass(frozen=True)
class TextFilter:
    """A pattern an overhead description must not contain.

    ``action='cut'`` removes the matched words; ``'drop'`` removes the
    sentence (or, in a sentence with a marked phrase, cuts the words).
    """
    name: str
    pattern: str
    action: str = 'cut'

    def regex(self) -> 're.Pattern':
        return re.compile(self.pattern, re.I)


# an optional preposition and article before a word that is cut, so that
# "near the horizon" goes as a whole
_PREP = (r',?\s*(?:\b(?:in|into|near|at|on|along|above|below|towards?|'
         r'against|under|across|from|with)\s+)?(?:the\s+|a\s+)?')
DEFAULT_FILTERS = (
    TextFilter('marker_ids',
               r',?\s*\(?\b(?:(?:which|that)\s+is\s+|(?:is\s+)?)'
               r'(?:marked|labell?ed|numbered|tagged|indicated|denoted)'
               r'\s+(?:with\s+|as\s+|by\s+)?(?:the\s+)?(?:a\s+)?'
               r'(?:number\s+|marker\s+|label\s+|mark\s+|digit\s+)?#?\d+\b'
               r'\)?(?:\s*,(?=\s))?'),
    TextFilter('marker_ids',
               r'\s*\(?\b(?:marker|mark|label|object|id)\s*(?:number\s*)?'
               r'#?\s*\d+\b\)?'),
    TextFilter('marker_ids', r'\s*(?:\(\s*#?\d+\s*\)|#\d+\b)'),
    TextFilter('foreground_background',
               _PREP + r'\b(?:fore|back)ground\b', 'drop'),
    TextFilter('distance',
               r',?\s*\b(?:in\s+the\s+(?:far\s+)?distance|far\s+away|'
               r'far\s+off|from\s+afar|'
               r'(?:close|closer|near|nearer)\s+to\s+the\s+'
               r'(?:camera|viewer|observer))\b'),
    TextFilter('distance', r'\s*\b(?:distant|faraway)\b', 'drop'),
    TextFilter('not_overhead',
               _PREP + r'\b(?:horizon|skyline|sky|eye[-\s]level|'
               r'street[-\s]level|ground[-\s]level)\b', 'drop'),
)


def split_sentences(text: str) -> List[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def _tidy(sentence: str) -> str:
    sentence = re.sub(r'\s+([,.;:!?])', r'\1', ' '.join(sentence.split()))
    sentence = re.sub(r',\s*([.;:!?])', r'\1', sentence)
    sentence = re.sub(r'^[,;:\s]+', '', sentence)
    sentence = re.sub(r'\(\s*\)', '', sentence)
    sentence = ' '.join(sentence.split())
    if sentence and sentence[0].islower():
        sentence = sentence[0].upper() + sentence[1:]
    return sentence


def _cut_outside_tags(sentence: str, regex) -> Tuple[str, int]:
    out, cuts, last = [], 0, 0
    for start, end in _untagged_spans(sentence):
        out.append(sentence[last:start])
        piece, n = regex.subn('', sentence[start:end])
        out.append(piece)
        cuts += n
        last = end
    return ''.join(out), cuts


def apply_filters(text: str,
                  filters: Sequence[TextFilter] = DEFAULT_FILTERS
                  ) -> Tuple[str, Dict[str, int]]:
    """``text`` with the filters applied, and the count of cuts and
    dropped sentences per filter name (``name`` and ``name:dropped``)."""
    counts: Dict[str, int] = {}
    kept = []
    for sentence in split_sentences(text):
        dropped = False
        for flt in filters:
            regex = flt.regex()
            probe = ''.join(sentence[a:b]
                            for a, b in _untagged_spans(sentence))
            if not regex.search(probe):
                continue
            if flt.action == 'drop' and not TAG.search(sentence):
                counts[flt.name + ':dropped'] = counts.get(
                    flt.name + ':dropped', 0) + 1
                dropped = True
                break
            sentence, n = _cut_outside_tags(sentence, regex)
            counts[flt.name] = counts.get(flt.name, 0) + n
        if not dropped:
            sentence = _tidy(sentence)
            if sentence.strip(' .'):
                kept.append(sentence)
    return ' '.join(kept), counts


def merge_counts(total: Dict[str, int], more: Dict[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value
