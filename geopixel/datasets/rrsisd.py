"""RRSIS-D referring segmentation, read from the REFER layout.

Layout under ``data_root`` (as released with RMSIN)::

    rrsisd/refs(unc).p                 pickle: list of refs
    rrsisd/instances.json              COCO images / annotations / categories
    images/rrsisd/JPEGImages/*.jpg

Every sentence of every ref in the split is one sample, as in the reference
evaluators. The prompt is GeoPixel's and the answer ``Sure, it is [SEG].``.
"""
import json
import os.path as osp
import pickle
from typing import Iterator

from geopixel.registry import DATASETS
from geopixel.utils import BadRecordError

from .base import GeoPixelBaseDataset
from .chat import RRSIS_ANSWER, RRSIS_QUESTION

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

    def _in_split(self, ref: dict) -> bool:
        ref_split = ref.get('split', '')
        if self.split == 'test':
            return 'test' in ref_split
        return ref_split == self.split

    def iter_data_infos(self) -> Iterator:
        refs = load_refs(self.ann_file)
        try:
            with open(self.instances_file, encoding='utf-8') as f:
                instances = json.load(f)
        except FileNotFoundError:
            raise BadRecordError('instances file is missing',
                                 self.instances_file) from None
        except json.JSONDecodeError as exc:
            raise BadRecordError(f'not valid JSON ({exc})',
                                 self.instances_file) from None
        images = {img['id']: img for img in instances.get('images', [])}
        anns = {ann['id']: ann for ann in instances.get('annotations', [])}
        for index, ref in enumerate(refs):
            if not isinstance(ref, dict):
                yield BadRecordError('ref is not a dict', self.ann_file,
                                     f'#{index}')
                continue
            if not self._in_split(ref):
                continue
            try:
                yield from self._parse_ref(ref, index, images, anns)
            except BadRecordError as err:
                yield err

    def _parse_ref(self, ref, index, images, anns):
        file = self.ann_file
        label = f'ref_id {ref.get("ref_id", "?")} (#{index})'
        for key in ('ann_id', 'image_id', 'sentences'):
            if key not in ref:
                raise BadRecordError(f'ref has no "{key}"', file, label)
        ann = anns.get(ref['ann_id'])
        if ann is None:
            raise BadRecordError(
                f'points at annotation {ref["ann_id"]}, which is not in '
                f'{self.instances_file}', file, label)
        image = images.get(ref['image_id'])
        if image is None:
            raise BadRecordError(
                f'points at image {ref["image_id"]}, which is not in '
                f'{self.instances_file}', file, label)
        if ann.get('image_id') != ref['image_id']:
            raise BadRecordError(
                f'annotation {ann["id"]} belongs to image {ann.get("image_id")}'
                f', not to the ref\'s image {ref["image_id"]}', file, label)
        if 'segmentation' not in ann:
            raise BadRecordError(
                f'annotation {ann["id"]} has no segmentation', file, label)
        img_path = osp.join(self.data_root, self.img_dir, image['file_name'])
        if not osp.isfile(img_path):
            raise BadRecordError(f'image {img_path} is missing', file, label)
        sentences = ref['sentences']
        if not sentences:
            raise BadRecordError('ref has no sentences', file, label)
        for sent in sentences:
            text = sent.get(self.sentence_key, sent.get('sent'))
            if not isinstance(text, str) or not text.strip():
                raise BadRecordError(
                    f'sentence {sent.get("sent_id")} is empty', file, label)
            text = text.strip()
            yield dict(
                img_path=img_path,
                conversations=[('user', self.question.format(ref_exp=text)),
                               ('assistant', self.answer)],
                num_segs=1,
                mask_source=dict(
                    type='coco',
                    segmentations=[ann['segmentation']],
                    ann_hw=(image.get('height'), image.get('width'))),
                record_id=f'{label} sent_id {sent.get("sent_id")}',
                ann_file=file,
                task='rrsis',
                ref_exp=text,
                ref_id=ref.get('ref_id'),
                sent_id=sent.get('sent_id'),
                ann_id=ann['id'],
                image_id=ref['image_id'])
