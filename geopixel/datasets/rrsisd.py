"""RRSIS-D referring segmentation, read from the REFER layout.

Layout under ``data_root`` (as released with RMSIN)::

    rrsisd/refs(unc).p                 pickle: list of refs
    rrsisd/instances.json              COCO images / annotations / categories
    images/rrsisd/JPEGImages/*.jpg

Every sentence of every ref in the split is one sample, as in the reference
evaluators. The prompt is GeoPixel's and the answer ``Sure, it is [SEG].``.
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
                 **kwargs):
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
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
