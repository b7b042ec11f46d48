"""RRSIS-D referring segmentation, read from the REFER layout.

Layout under ``data_root`` (as released with RMSIN)::

    rrsisd/refs(unc).p                 pickle: list of refs
    rrsisd/instances.json              COCO images / annotations / categories
    images/rrsisd/JPEGImages/*.jpg

Every sentence of every ref in the split is one sample, as in the reference
evaluators. The prompt is GeoPixel's and the answer ``Sure, it is [SEG].``.

For training, ``sentences_per_sample > 1`` asks several sentences of one
image in one multi-turn sample (one ``[SEG]`` and one mask per turn, as LISA
trains referring segmentation): the image is encoded once for several masks,
and the turns name different objects of the same scene, which is the signal
that teaches a model to tell them apart.
"""
import os.path as osp
import pickle
from typing import Iterator, List

from geopixel.registry import DATASETS
from geopixel.utils import BadRecordError, read_json

from .base import GeoPixelBaseDataset, is_int, parse_guarded
from .chat import RRSIS_ANSWER, RRSIS_QUESTION, check_text

SPLITS = ('train', 'val', 'test')

_SAFE_BUILTINS = {
    'dict', 'list', 'tuple', 'set', 'frozenset', 'str', 'bytes', 'int',
    'float', 'bool', 'complex'
}


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles plain containers only: a refs file holds nothing else."""

    def find_class(self, module, name):
        if module in ('builtins', '__builtin__') and name in _SAFE_BUILTINS:
            import builtins
            return getattr(builtins, name)
        raise pickle.UnpicklingError(
            f'refusing to load {module}.{name}: refs files contain only '
            'lists, dicts, strings and numbers')


def load_refs(path: str) -> list:
    """The refs list of a REFER ``refs(*).p`` file, loaded safely."""
    for encoding in ('ASCII', 'latin1'):
        try:
            with open(path, 'rb') as f:
                refs = _PlainDataUnpickler(f, encoding=encoding).load()
            break
        except FileNotFoundError:
            raise BadRecordError('refs file is missing', path) from None
        except UnicodeDecodeError:
            continue
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise BadRecordError(f'cannot read refs pickle ({exc})',
                                 path) from None
    if not isinstance(refs, list):
        raise BadRecordError('refs pickle must hold a list of refs', path)
    return refs


@DATASETS.register_module()
class RRSISDDataset(GeoPixelBaseDataset):
    """Referring segmentation samples from RRSIS-D (or any REFER dataset).

    Args:
        data_root: folder holding ``rrsisd/`` and ``images/``.
        split: ``'train'``, ``'val'`` or ``'test'``.
        dataset / split_by: REFER names (``rrsisd`` / ``unc``).
        img_dir: image folder relative to ``data_root``.
        sentence_key: ``'raw'`` (as RMSIN reads it) or ``'sent'``.
        question / answer: the prompt (``{ref_exp}`` is replaced) and answer.
        sentences_per_sample: training only; up to this many sentences of
            one image per sample, taken round-robin over the image's refs
            so that the turns of a sample name different objects. Every
            sentence is still used exactly once per epoch.
    """

    METAINFO = dict(task='rrsis')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 dataset: str = 'rrsisd',
                 split_by: str = 'unc',
                 img_dir: str = 'images/rrsisd/JPEGImages',
                 sentence_key: str = 'raw',
                 question: str = RRSIS_QUESTION,
                 answer: str = RRSIS_ANSWER,
                 sentences_per_sample: int = 1,
                 **kwargs):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        if not is_int(sentences_per_sample) or sentences_per_sample < 1:
            raise ValueError('sentences_per_sample must be a positive '
                             f'integer, got {sentences_per_sample!r}')
        if sentences_per_sample > 1 and kwargs.get('test_mode', False):
            raise ValueError(
                'sentences_per_sample > 1 is for training: RRSIS-D is '
                'scored per sentence, so evaluation needs one sentence per '
                'sample')
        self.sentences_per_sample = sentences_per_sample
        self.split = split
        self.dataset_name = dataset
        self.img_dir = img_dir
        self.sentence_key = sentence_key
        self.question = question
        self.answer = answer
        self.instances_file = osp.join(data_root, dataset, 'instances.json')
        super().__init__(
            ann_file=osp.join(dataset, f'refs({split_by}).p'),
            data_root=data_root,
            **kwargs)

    def _in_split(self, ref_split: str) -> bool:
        if self.split == 'test':
            return 'test' in ref_split
        return ref_split == self.split

    def iter_data_infos(self) -> Iterator:
        if self.sentences_per_sample == 1:
            yield from self._iter_sentences()
            return
        by_image = {}
        for item in self._iter_sentences():
            if isinstance(item, BadRecordError):
                yield item
            else:
                by_image.setdefault(item['img_path'], []).append(item)
        for sentences in by_image.values():
            ordered = _round_robin(sentences)
            step = self.sentences_per_sample
            for start in range(0, len(ordered), step):
                yield _merge_turns(ordered[start:start + step])

    def _iter_sentences(self) -> Iterator:
        refs = load_refs(self.ann_file)
        instances = self._read_instances()
        images, anns = {}, {}
        for kind, index in (('images', images), ('annotations', anns)):
            yield from _index_entries(instances, kind, index,
                                      self.instances_file)
        for position, ref in enumerate(refs):
            label = f'#{position}'
            if isinstance(ref, dict):
                label = f'ref_id {ref.get("ref_id", "?")} (#{position})'
            parsed = parse_guarded(
                lambda: self._parse_ref(ref, label, images, anns),
                self.ann_file, label)
            if isinstance(parsed, BadRecordError):
                yield parsed
            else:
                yield from parsed

    def _read_instances(self) -> dict:
        file = self.instances_file
        instances = read_json(file, 'instances file')
        if not isinstance(instances, dict):
            raise BadRecordError(
                'expected a COCO JSON object with "images" and '
                f'"annotations", got a JSON {type(instances).__name__}',
                file)
        for kind in ('images', 'annotations'):
            if not isinstance(instances.get(kind), list):
                raise BadRecordError(
                    f'"{kind}" must be a list, got '
                    f'{type(instances.get(kind)).__name__}', file)
        return instances

    def _parse_ref(self, ref, label, images, anns) -> List:
        """The samples of one ref (one per sentence) and its bad sentences.

        ``images``/``anns`` map an id to its entry, or to None when the id
        is ambiguous (it appears more than once).
        """
        file = self.ann_file
        if not isinstance(ref, dict):
            raise BadRecordError(
                f'ref must be a dict, got {type(ref).__name__}', file, label)
        if not isinstance(ref.get('split'), str):
            raise BadRecordError(
                'ref needs a "split" (train, val, test...), got '
                f'{ref.get("split")!r}', file, label)
        if not self._in_split(ref['split']):
            return []
        for key in ('ann_id', 'image_id', 'sentences'):
            if key not in ref:
                raise BadRecordError(f'ref has no "{key}"', file, label)
        for key in ('ann_id', 'image_id'):
            if not is_int(ref[key]):
                raise BadRecordError(
                    f'"{key}" must be an integer id, got {ref[key]!r}', file,
                    label)
        ann = self._lookup(anns, ref['ann_id'], 'annotation', label)
        image = self._lookup(images, ref['image_id'], 'image', label)
        if ann.get('image_id') != ref['image_id']:
            raise BadRecordError(
                f'annotation {ann["id"]} belongs to image '
                f'{ann.get("image_id")}, not to the ref\'s image '
                f'{ref["image_id"]}', file, label)
        if 'segmentation' not in ann:
            raise BadRecordError(
                f'annotation {ann["id"]} has no segmentation', file, label)
        img_path = osp.join(self.data_root, self.img_dir, image['file_name'])
        if not osp.isfile(img_path):
            raise BadRecordError(f'image {img_path} is missing', file, label)
        sentences = ref['sentences']
        if not isinstance(sentences, list):
            raise BadRecordError(
                '"sentences" must be a list of {"raw", "sent", "sent_id"} '
                f'dicts, got {type(sentences).__name__}', file, label)
        if not sentences:
            raise BadRecordError('ref has no sentences', file, label)
        sizes = self.expected_sizes(
            image, img_path, self.instances_file, f'image {image["id"]}',
            f'{self.instances_file} (image {image["id"]})')
        samples = []
        for k, sent in enumerate(sentences):
            samples.append(
                parse_guarded(
                    lambda: self._sample(sent, k, label, img_path, ann, ref,
                                         sizes), file,
                    f'{label} sentence {k}'))
        return samples

    def _lookup(self, index: dict, key: int, kind: str, label: str) -> dict:
        if key not in index:
            raise BadRecordError(
                f'points at {kind} {key}, which is not in '
                f'{self.instances_file}', self.ann_file, label)
        if index[key] is None:
            raise BadRecordError(
                f'points at {kind} {key}, which appears more than once in '
                f'{self.instances_file}', self.ann_file, label)
        return index[key]

    def _sample(self, sent, k, label, img_path, ann, ref, sizes) -> dict:
        file = self.ann_file
        where = f'{label} sentence {k}'
        if not isinstance(sent, dict):
            raise BadRecordError(
                f'sentence must be a dict, got {type(sent).__name__}', file,
                where)
        text = sent.get(self.sentence_key, sent.get('sent'))
        if not isinstance(text, str) or not text.strip():
            raise BadRecordError(
                f'sentence {sent.get("sent_id")} has no text in '
                f'"{self.sentence_key}" or "sent"', file, where)
        text = check_text(text, f'sentence {sent.get("sent_id")}', file,
                          where).strip()
        return dict(
            img_path=img_path,
            conversations=[('user', self.question.format(ref_exp=text)),
                           ('assistant', self.answer)],
            num_segs=1,
            mask_source=dict(
                type='coco',
                segmentations=[ann['segmentation']],
                file=self.instances_file,
                names=[f'annotation {ann["id"]}']),
            record_id=f'{label} sent_id {sent.get("sent_id")}',
            ann_file=file,
            expected_sizes=sizes,
            task='rrsis',
            ref_exp=text,
            ref_id=ref.get('ref_id'),
            sent_id=sent.get('sent_id'),
            ann_id=ann['id'],
            image_id=ref['image_id'])


def _round_robin(samples: List[dict]) -> List[dict]:
    """One sentence of each ref in turn: A0 B0 A1 B1 ... (refs in order)."""
    by_ref = {}
    for sample in samples:
        by_ref.setdefault(sample['ann_id'], []).append(sample)
    queues = list(by_ref.values())
    ordered = []
    for k in range(max(len(q) for q in queues)):
        ordered.extend(q[k] for q in queues if k < len(q))
    return ordered


def _merge_turns(samples: List[dict]) -> dict:
    """Single-sentence samples of one image -> one multi-turn sample
    (per-sentence keys become lists, even for a single sentence)."""
    first = samples[0]
    source = first['mask_source']
    return dict(
        img_path=first['img_path'],
        conversations=[turn for s in samples for turn in s['conversations']],
        num_segs=len(samples),
        mask_source=dict(
            type=source['type'],
            segmentations=[
                seg for s in samples
                for seg in s['mask_source']['segmentations']
            ],
            file=source['file'],
            names=[name for s in samples
                   for name in s['mask_source']['names']]),
        record_id=' + '.join(s['record_id'] for s in samples),
        ann_file=first['ann_file'],
        expected_sizes=first['expected_sizes'],
        task='rrsis',
        ref_exp=[s['ref_exp'] for s in samples],
        ref_id=[s['ref_id'] for s in samples],
        sent_id=[s['sent_id'] for s in samples],
        ann_id=[s['ann_id'] for s in samples],
        image_id=first['image_id'])


def _index_entries(instances: dict, kind: str, index: dict,
                   file: str) -> Iterator[BadRecordError]:
    """Fill ``index`` (id -> entry) from ``instances[kind]``.

    Yields an error for each entry that cannot be indexed. An id seen twice
    maps to None: a ref pointing at it is refused rather than silently
    given one of the two.
    """
    required = ('id', 'file_name') if kind == 'images' else ('id', )
    singular = kind[:-1]
    for position, entry in enumerate(instances[kind]):
        label = f'{singular} #{position}'
        if not isinstance(entry, dict):
            yield BadRecordError(
                f'{singular} must be a dict, got {type(entry).__name__}',
                file, label)
            continue
        missing = [key for key in required if key not in entry]
        if missing:
            yield BadRecordError(f'{singular} has no "{missing[0]}"', file,
                                 label)
            continue
        if not is_int(entry['id']):
            yield BadRecordError(
                f'{singular} "id" must be an integer, got {entry["id"]!r}',
                file, label)
            continue
        if kind == 'images' and not isinstance(entry['file_name'], str):
            yield BadRecordError(
                f'"file_name" must be text, got {entry["file_name"]!r}',
                file, label)
            continue
        if entry['id'] in index:
            yield BadRecordError(
                f'{singular} id {entry["id"]} appears more than once', file,
                label)
            index[entry['id']] = None
            continue
        index[entry['id']] = entry
