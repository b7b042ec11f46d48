"""Shared dataset machinery: the bad-record policy.

Every geopixel dataset takes ``on_bad_record``:

* ``'raise'`` (default): the first bad record stops the run with a
  :class:`~geopixel.utils.BadRecordError` naming the file, record and
  problem;
* ``'skip'``: the record is left out, a warning with the same message is
  logged, and it is counted. Records found bad while reading the annotation
  file are summarised once, right after loading; records found bad while a
  sample is prepared (a corrupt image, a polygon file whose mask count does
  not match) are summarised at the end of every epoch by
  :class:`geopixel.engine.hooks.BadRecordSummaryHook`, or by any tool through
  :meth:`GeoPixelBaseDataset.bad_record_summary`.

Evaluation never skips: a test-mode dataset raises on a bad sample, because
leaving a sample out silently changes the metric.
"""
import logging
import multiprocessing as mp
import os.path as osp
import re
from typing import Callable, Iterator, List, Optional, Tuple

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from geopixel.utils import BadRecordError
from geopixel.utils.files import is_int

POLICIES = ('raise', 'skip')
_MAX_LOGGED = 20


class SharedFlags:
    """One flag per record plus an event counter, shared with workers.

    DataLoader workers inherit (fork) or receive at spawn the shared
    memory, so a record found bad in one worker is known to all and to the
    main process, which reports the counts.
    """

    def __init__(self, size: int):
        ctx = mp.get_context()
        self._flags = ctx.Array('b', max(size, 1), lock=False)
        self._events = ctx.Value('l', 0)

    def mark(self, index: int) -> bool:
        """Flag ``index``; True if it was not flagged before."""
        new = not self._flags[index]
        self._flags[index] = 1
        return new

    def is_marked(self, index: int) -> bool:
        return bool(self._flags[index])

    def count_marked(self) -> int:
        return sum(self._flags[:])

    def add_event(self) -> None:
        with self._events.get_lock():
            self._events.value += 1

    def pop_events(self) -> int:
        with self._events.get_lock():
            value = self._events.value
            self._events.value = 0
        return value

    def __getstate__(self):
        from multiprocessing.context import assert_spawning
        try:
            assert_spawning(self._events)
            return dict(self.__dict__)
        except RuntimeError:
            # Pickled outside process start-up (deepcopy, cache): the copy
            # keeps private flags; it cannot report to the original anyway.
            return dict(
                _flags=bytearray(self._flags[:]),
                _events=_LocalValue(self._events.value))


class _LocalValue:
    """Process-local stand-in for a shared ``Value``."""

    def __init__(self, value=0):
        self.value = value

    def get_lock(self):
        import contextlib
        return contextlib.nullcontext()


class GeoPixelBaseDataset(BaseDataset):
    """BaseDataset with the bad-record policy; subclasses yield records.

    Subclasses implement :meth:`iter_data_infos`, a generator that yields a
    ``data_info`` dict per sample, or a :class:`BadRecordError` instance for
    a record that cannot be used (yielded, not raised, so the policy decides).

    ``check_patch_names`` (default True): an image named as an iSAID patch,
    ``{id}_{y0}_{y1}_{x0}_{x1}.png``, must be (y1 - y0) x (x1 - x0); turn it
    off for datasets whose names follow another scheme.
    """

    def __init__(self, *args, on_bad_record: str = 'raise',
                 check_patch_names: bool = True, **kwargs):
        if on_bad_record not in POLICIES:
            raise ValueError(f'on_bad_record must be one of {POLICIES}, got '
                             f'{on_bad_record!r}')
        self.on_bad_record = on_bad_record
        self.check_patch_names = check_patch_names
        self.load_skipped: List[str] = []
        self._bad = SharedFlags(0)
        self._runtime_logged = 0
        super().__init__(*args, **kwargs)

    def full_init(self) -> None:
        was_initialised = self._fully_initialized
        super().full_init()
        if not was_initialised:
            # after filtering/serialisation, before any DataLoader worker
            self._bad = SharedFlags(len(self))

    # -- loading ----------------------------------------------------------
    def iter_data_infos(self) -> Iterator:
        raise NotImplementedError

    def load_data_list(self) -> List[dict]:
        data_list = []
        self.load_skipped = []
        for item in self.iter_data_infos():
            if isinstance(item, BadRecordError):
                if self.on_bad_record == 'raise':
                    raise item
                self.load_skipped.append(str(item))
                if len(self.load_skipped) <= _MAX_LOGGED:
                    print_log(f'skipping bad record: {item}', 'current',
                              logging.WARNING)
                continue
            data_list.append(item)
        if self.load_skipped:
            print_log(
                f'{type(self).__name__}: skipped {len(self.load_skipped)} '
                f'bad record(s) while loading, kept {len(data_list)} '
                '(on_bad_record="skip")', 'current', logging.WARNING)
        if not data_list:
            raise BadRecordError('no usable samples', self._describe_source())
        return data_list

    def expected_sizes(self, entry: dict, img_path: str, file: str,
                       label: str, source: str) -> List[tuple]:
        """``(h, w, source)`` sizes the decoded image must have: the
        entry's ``height``/``width``, if any, and the iSAID patch name, if
        the image has one (and ``check_patch_names``)."""
        sizes = []
        declared = declared_size(entry, file, label)
        if declared:
            sizes.append(declared + (source, ))
        from_name = patch_name_size(img_path) if self.check_patch_names \
            else None
        if from_name:
            sizes.append(from_name)
        return sizes

    def _describe_source(self) -> str:
        return str(self.ann_file or self.data_root)

    # -- fetching ---------------------------------------------------------
    def prepare_data(self, idx: int):
        skipping = self.on_bad_record == 'skip' and not self.test_mode
        if skipping and self._bad.is_marked(idx):
            self._bad.add_event()  # known bad: replaced without re-reading
            return None
        try:
            return super().prepare_data(idx)
        except BadRecordError as err:
            if not skipping:
                raise
            self._bad.mark(idx)
            self._bad.add_event()
            if self._runtime_logged < _MAX_LOGGED:
                self._runtime_logged += 1
                print_log(f'skipping bad record: {err}', 'current',
                          logging.WARNING)
            return None

    def bad_record_summary(self, reset: bool = True) -> dict:
        """What was skipped: at load time, and while reading samples.

        ``skipped_at_runtime`` counts distinct records found bad so far;
        ``replaced_fetches`` counts fetches of a bad record that were
        replaced by another record since the last ``reset``.
        """
        return dict(
            dataset=type(self).__name__,
            skipped_at_load=len(self.load_skipped),
            skipped_at_runtime=self._bad.count_marked(),
            replaced_fetches=self._bad.pop_events() if reset else None,
            kept=len(self) if self._fully_initialized else None)


# iSAID devkit patches: {image id}_{y0}_{y1}_{x0}_{x1}.png cut from
# image[y0:y1, x0:x1] (split.py); whole images keep their plain name.
_PATCH_NAME = re.compile(r'^[^_]+_(\d+)_(\d+)_(\d+)_(\d+)\.png$')


def patch_name_size(path: str) -> Optional[Tuple[int, int, str]]:
    """``(h, w, source)`` that an iSAID patch name implies, else None."""
    name = osp.basename(path)
    match = _PATCH_NAME.match(name)
    if match is None:
        return None
    y0, y1, x0, x1 = (int(v) for v in match.groups())
    if y1 <= y0 or x1 <= x0:
        return None
    return (y1 - y0, x1 - x0, f'the iSAID patch name {name} '
            '({id}_{y0}_{y1}_{x0}_{x1}; check_patch_names=False if your '
            'names mean something else)')


def declared_size(entry: dict, file: Optional[str],
                  record: Optional[object]) -> Optional[Tuple[int, int]]:
    """``(height, width)`` declared by a record, None if it declares none.

    Both keys or neither; each a positive integer.
    """
    if 'height' not in entry and 'width' not in entry:
        return None
    height, width = entry.get('height'), entry.get('width')
    if not (is_int(height) and is_int(width) and height > 0 and width > 0):
        raise BadRecordError(
            '"height" and "width" must both be positive integers, got '
            f'{height!r} and {width!r}', file, record)
    return int(height), int(width)


def parse_guarded(parse: Callable[[], object], file: Optional[str],
                  record: Optional[object]):
    """``parse()``, or the :class:`BadRecordError` it raised (returned).

    Any other error met while parsing one record (a malformed record that
    no check foresaw) becomes a ``BadRecordError`` naming the record, so it
    is skipped and counted under ``on_bad_record='skip'`` instead of
    stopping the run.
    """
    try:
        return parse()
    except BadRecordError as err:
        return err
    except (TypeError, KeyError, AttributeError, ValueError,
            IndexError) as exc:
        return BadRecordError(
            f'malformed record ({type(exc).__name__}: {exc})', file, record)


def unwrap_datasets(dataset) -> List[object]:
    """The leaf datasets inside Concat/Repeat/ClassBalanced wrappers."""
    leaves, stack = [], [dataset]
    while stack:
        node = stack.pop()
        if hasattr(node, 'datasets'):
            stack.extend(node.datasets)
        elif hasattr(node, 'dataset'):
            stack.append(node.dataset)
        else:
            leaves.append(node)
    return leaves
