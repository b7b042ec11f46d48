"""Prediction folders and score files, the same rules for every scorer.

A prediction folder holds one file per sample, keyed by an id (RS-GCG: the
``image_id`` written in the file; RRSIS-D: the ``sent_id``). Rules:

* duplicates (several files for one id): the file named after the id wins
  (GLaMM reads exactly ``{pred_dir}/{image_id}.json``), otherwise the first
  in sorted order; the others are reported;
* missing (a ground-truth sample without a file): scored as an empty
  prediction and reported;
* ``strict``: duplicates or missing files are an error instead.

Score files are valid JSON: NaN and infinity are written as ``null``.
"""
import json
import math
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from geopixel.utils import BadRecordError

PRINTED_ITEMS = 10


def json_type(value) -> str:
    """``a number``, ``a list``... for messages about JSON content."""
    names = {bool: 'a boolean', int: 'a number', float: 'a number',
             str: 'a string', list: 'a list', dict: 'an object',
             type(None): 'null'}
    return names.get(type(value), type(value).__name__)


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def shorten(items: Sequence[str], limit: int = PRINTED_ITEMS) -> str:
    """``a, b, c`` or ``a, b, ... (N more)`` for printing."""
    shown = ', '.join(map(str, items[:limit]))
    rest = len(items) - limit
    return f'{shown}, ... ({rest} more)' if rest > 0 else shown


@dataclass
class FolderReport:
    """What a prediction folder lacked or held twice."""
    folder: str
    duplicates: Dict[str, Tuple[str, List[str]]] = field(
        default_factory=dict)  # id -> (used file, ignored files)
    missing: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # said to the user

    def lines(self, limit: int = PRINTED_ITEMS) -> List[str]:
        """Human-readable summary (lists cut to ``limit`` entries)."""
        out = []
        if self.duplicates:
            ignored = [f for _, files in self.duplicates.values()
                       for f in files]
            out.append(
                f'{len(self.duplicates)} id(s) have more than one prediction '
                f'file in {self.folder}; ignored: '
                f'{shorten([osp.basename(f) for f in ignored], limit)} (the '
                'file named after the id wins, else the first in sorted '
                'order)')
        if self.missing:
            out.append(
                f'{len(self.missing)} ground-truth sample(s) have no '
                f'prediction file in {self.folder} and score as empty '
                f'predictions: {shorten(self.missing, limit)}')
        return out + self.notes

    def as_dict(self) -> dict:
        return dict(
            folder=self.folder,
            duplicate_count=len(self.duplicates),
            duplicates={k: dict(used=used, ignored=ignored)
                        for k, (used, ignored) in self.duplicates.items()},
            missing_count=len(self.missing),
            missing=list(self.missing),
            notes=list(self.notes))

    def raise_if_strict(self, strict: bool) -> None:
        if strict and (self.duplicates or self.missing):
            problems = FolderReport(self.folder, self.duplicates,
                                    self.missing).lines(limit=50)
            raise BadRecordError('strict mode: ' + '; '.join(problems),
                                 self.folder)


def pick_files(entries: Iterable[Tuple[str, str]],
               report: FolderReport) -> Dict[str, str]:
    """``{id: file}`` from (id, file) pairs, one file per id by the
    duplicate rule; the losers go into ``report.duplicates``."""
    by_id: Dict[str, List[str]] = {}
    for key, path in entries:
        by_id.setdefault(key, []).append(path)
    chosen = {}
    for key, paths in by_id.items():
        ranked = sorted(paths, key=lambda p: (_stem(p) != key, p))
        chosen[key] = ranked[0]
        if len(ranked) > 1:
            report.duplicates[key] = (ranked[0], ranked[1:])
    return chosen


def check_known_ids(ids: Iterable[str], known: Iterable[str], folder: str,
                    what: str) -> None:
    """Predictions for samples the ground truth does not have mean the
    wrong split or wrong ground truth: an error, not a silent drop."""
    unknown = sorted(set(ids) - set(known))
    if unknown:
        raise BadRecordError(
            f'{len(unknown)} prediction(s) for {what} not in the ground '
            f'truth: {shorten(unknown)}', folder)


def json_safe(value):
    """``value`` with NaN and infinity (also nested) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_scores(path: Optional[str], scores: dict) -> None:
    """Write ``scores`` as strict JSON (null for undefined numbers)."""
    if not path:
        return
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(json_safe(scores), f, indent=2, allow_nan=False)


def format_number(value) -> str:
    """Two decimals (counts as they are); ``-`` for an undefined value."""
    if value is None or (isinstance(value, float) and
                         not math.isfinite(value)):
        return '-'
    if isinstance(value, int):
        return str(value)
    return f'{value:.2f}'
