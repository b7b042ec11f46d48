"""What the web demo (``tools/demo/app.py``) does, without the web page.

:class:`DemoBackend` takes an uploaded file and a question and returns
everything the page shows: the answer as HTML with each grounded phrase in
its mask's colour, the overlay (any subset of masks, colours kept), the
timings and the files to download (JSON, mask PNGs, GeoJSON for a
georeferenced image). It checks the upload limits and turns every bad file
into a :class:`DemoInputError` whose message the page shows as it is.
Images are encoded once: follow-up questions about the same file (same
bytes) reuse its :class:`~geopixel.apis.InferenceSession`. Keeping this
apart from the web UI library lets the tests drive it directly.
"""
import hashlib
import html
import os
import os.path as osp
import re
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from geopixel.structures import SEG_TOKEN
from geopixel.structures.vocabulary import PHRASE_AT_END
from geopixel.utils import BadRecordError
from geopixel.visualization import draw_grounded_masks, palette

from .results import TIMING_KEYS, InferenceResult, safe_name

#: the page's task names and the inferencer's
TASKS = OrderedDict([
    ('Grounded description', 'gcg'),
    ('Referring segmentation', 'refer'),
    ('Free question', 'ask'),
])

_TAG = re.compile(r'</?p>')


class DemoInputError(ValueError):
    """A problem with what the user gave (file or question), worded for
    the page."""


@dataclass
class DemoLimits:
    """Upload limits: file size in MB and width x height in pixels."""
    max_upload_mb: float = 25.0
    max_pixels: int = 4096 * 4096

    def __post_init__(self):
        if not self.max_upload_mb > 0:
            raise ValueError(
                f'max_upload_mb must be > 0, got {self.max_upload_mb!r}')
        if not (isinstance(self.max_pixels, int) and self.max_pixels > 0):
            raise ValueError(
                f'max_pixels must be a positive int, got {self.max_pixels!r}')


@dataclass
class DemoAnswer:
    """One answer as the page shows it.

    Attributes:
        result: the inferencer's result.
        html: the answer, phrases in their masks' colours.
        labels: one legend entry per mask, ``"k: phrase"`` (from 1).
        colours: RGB per mask, as in the overlay.
        files: JSON, mask PNGs (zip) and, for a georeferenced image, the
            GeoJSON, to download.
        image_cached: the image encoding came from an earlier question.
        seconds: wall time of the whole answer.
    """
    result: InferenceResult
    html: str
    labels: List[str]
    colours: List[tuple]
    files: List[str]
    image_cached: bool
    seconds: float
    georeferenced: bool = False

    def overlay(self, selected: Optional[Sequence[int]] = None
                ) -> np.ndarray:
        """The image with the masks of ``selected`` (indices from 0; all
        by default) in their own colours, and their legend."""
        keep = (range(len(self.labels)) if selected is None else
                sorted(set(int(k) for k in selected)))
        for k in keep:
            if not 0 <= k < len(self.labels):
                raise ValueError(f'no mask {k}: the answer has '
                                 f'{len(self.labels)}')
        return draw_grounded_masks(
            self.result.image, [self.result.masks[k] for k in keep],
            [self.labels[k] for k in keep], alpha=0.45,
            colours=[self.colours[k] for k in keep])

    def timings_text(self) -> str:
        timings = self.result.timings
        parts = [f'{k} {timings[k]:.2f} s' for k in TIMING_KEYS
                 if timings.get(k, 0.0) > 0.0005]
        cached = ('image already encoded' if self.image_cached else
                  'image encoded for this question')
        return (f'{self.seconds:.2f} s in all ({cached}); ' +
                (', '.join(parts) or 'no stage timed'))


def answer_html(answer: str, labels: Sequence[str],
                colours: Sequence[tuple]) -> str:
    """``answer`` as HTML: the ``<p> ... </p>`` phrase right before the
    k-th ``[SEG]`` in mask k's colour, each ``[SEG]`` as a chip of that
    colour numbered k + 1 (a referring answer has no phrase: its chip
    carries the expression); everything escaped."""
    pieces = answer.split(SEG_TOKEN)
    out = []
    for k, piece in enumerate(pieces):
        last = k == len(pieces) - 1
        found = None if last else PHRASE_AT_END.search(piece)
        head = piece[:found.start()] if found else piece
        out.append(html.escape(_TAG.sub('', head)))
        if last:
            break
        colour = _css(colours[k]) if k < len(colours) else '#cccccc'
        if found:
            out.append(f'<span class="gp-phrase" data-mask="{k}" '
                       f'style="background:{colour}">'
                       f'{html.escape(found.group(1).strip())}</span>')
        title = html.escape(labels[k] if k < len(labels) else f'mask {k}')
        # without its own phrase the chip names what the mask is of (the
        # expression of a referring question), unless that is a bare number
        own = labels[k].split(': ', 1)[-1] if k < len(labels) else ''
        chip = ('' if found or own == f'mask {k}' else
                f' {html.escape(own)}')
        out.append(f' <span class="gp-seg" data-mask="{k}" title="{title}" '
                   f'style="background:{colour}">[{k + 1}]{chip}</span>')
    return ('<div class="gp-answer">' + ''.join(out).strip() + '</div>')


def _css(rgb: tuple) -> str:
    return '#{:02x}{:02x}{:02x}'.format(*rgb)


class DemoBackend:
    """Answers questions about uploaded images for the web demo.

    Args:
        inferencer: a :class:`~geopixel.apis.GeoPixelInferencer`.
        limits: upload limits.
        out_dir: where answers' files go (a new temporary folder by
            default).
        cache_size: images whose encoding is kept for follow-up questions.
        hd_num: tile budget per image (default: the config's).
    """

    def __init__(self, inferencer, limits: Optional[DemoLimits] = None,
                 out_dir: Optional[str] = None, cache_size: int = 4,
                 hd_num: Optional[int] = None):
        if cache_size < 1:
            raise ValueError(f'cache_size must be >= 1, got {cache_size}')
        self.inferencer = inferencer
        self.limits = limits or DemoLimits()
        self.out_dir = out_dir or tempfile.mkdtemp(prefix='geopixel_demo_')
        self.cache_size = cache_size
        self.hd_num = hd_num
        self._sessions: 'OrderedDict[str, tuple]' = OrderedDict()
        self._lock = threading.RLock()  # answer() holds it around session()
        self._answers = 0

    # -- input ------------------------------------------------------------
    def check_upload(self, path: Optional[str]) -> str:
        """The upload's content hash, after the size check."""
        if not path:
            raise DemoInputError('Upload an image first (PNG, JPEG or '
                                 'GeoTIFF).')
        name = osp.basename(path)
        try:
            size = os.path.getsize(path)
        except OSError:
            raise DemoInputError(f'{name}: the upload is gone; upload the '
                                 'image again.') from None
        limit = self.limits.max_upload_mb * 1024 * 1024
        if size > limit:
            raise DemoInputError(
                f'{name} is {size / 2**20:.1f} MB, over the upload limit '
                f'of {self.limits.max_upload_mb:g} MB.')
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
        return digest.hexdigest()

    def _open(self, path: str):
        from geopixel.gis import GISDependencyError, open_image_source
        name = osp.basename(path)
        try:
            return open_image_source(path, max_pixels=self.limits.max_pixels)
        except GISDependencyError as exc:
            raise DemoInputError(f'{name}: {exc}') from None
        except BadRecordError as exc:
            raise DemoInputError(
                f'{name} cannot be used: {exc.problem}. The demo reads PNG, '
                'JPEG and GeoTIFF images.') from None
        except (OSError, ValueError) as exc:
            raise DemoInputError(
                f'{name} is not an image the demo can read (PNG, JPEG or '
                f'GeoTIFF): {exc}') from None

    def session(self, path: str):
        """``(session, source, cached)`` for the uploaded file: its
        session from the cache when the same bytes were asked about
        before."""
        with self._lock:
            return self._session(path)

    def _session(self, path: str):
        key = self.check_upload(path)
        if key in self._sessions:
            self._sessions.move_to_end(key)
            session, source = self._sessions[key]
            return session, source, True
        source = self._open(path)
        try:
            session = self.inferencer.session(source, self.hd_num)
        except BadRecordError as exc:
            source.close()
            raise DemoInputError(
                f'{osp.basename(path)} cannot be used: {exc}') from None
        except BaseException:
            source.close()
            raise
        self._sessions[key] = (session, source)
        while len(self._sessions) > self.cache_size:
            _, (_, old) = self._sessions.popitem(last=False)
            old.close()
        return session, source, False

    # -- answering --------------------------------------------------------
    def answer(self, path: Optional[str], task: str,
               question: str = '') -> DemoAnswer:
        """Answer ``task`` (a page name from :data:`TASKS` or ``gcg`` /
        ``refer`` / ``ask``) about the uploaded file at ``path``."""
        task = TASKS.get(task, task)
        if task not in TASKS.values():
            raise DemoInputError(f'Unknown task {task!r}; choose one of: '
                                 f'{", ".join(TASKS)}.')
        question = (question or '').strip()
        if task == 'gcg':
            question = ''
        elif not question:
            raise DemoInputError(
                'Type the object to segment.' if task == 'refer' else
                'Type a question.')
        start = time.perf_counter()
        with self._lock:
            session, source, cached = self.session(path)
            try:
                result = session.ask(question or None, task=task)
            except ValueError as exc:  # e.g. text the tokenizer refuses
                raise DemoInputError(f'The question cannot be asked: '
                                     f'{exc}') from None
            seconds = time.perf_counter() - start
            self._answers += 1
            out = osp.join(self.out_dir, f'answer_{self._answers:04d}')
            stem = safe_name(osp.splitext(osp.basename(path))[0])
            files = self._write_files(result, source, out, stem)
        labels = [f'{o.index + 1}: {o.phrase}' for o in result.objects]
        colours = palette(len(labels))
        return DemoAnswer(
            result=result,
            html=answer_html(result.answer, labels, colours),
            labels=labels, colours=colours, files=files,
            image_cached=cached, seconds=seconds,
            georeferenced=source.transform is not None)

    @staticmethod
    def _write_files(result: InferenceResult, source, out: str,
                     stem: str) -> List[str]:
        written = result.save(out, stem)
        masks = [p for p in written if re.search(r'_mask\d+_.*\.png$', p)]
        files = [written[0]]
        archive = osp.join(out, f'{stem}_masks.zip')
        with zipfile.ZipFile(archive, 'w', zipfile.ZIP_DEFLATED) as zf:
            for p in masks:
                zf.write(p, osp.basename(p))
        files.append(archive)
        if source.transform is not None:
            from .geo import write_result_gis
            files.append(
                write_result_gis(result, source.transform, source.crs, out,
                                 stem)[0])
        return files

    def close(self) -> None:
        with self._lock:
            for _, source in self._sessions.values():
                source.close()
            self._sessions.clear()
