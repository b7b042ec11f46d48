"""GeoPixelD: grounded conversations over iSAID tiles (the official format).

Two on-disk layouts are read:

* the training layout: a JSON list of records
  ``{"id", "conversations": [{"from", "value"}...], "image": path,
  "polygons": path-to-per-image-json}`` (or ``"segmentation": [RLE...]``
  instead of ``"polygons"``), paths relative to a data root;
* a folder of per-image JSONs (``{"id", "img", "gcg_description",
  "polygons"}``) next to their images, as in ``GeoPixelD/test/``; the
  question is then ``question``.

The k-th ``[SEG]`` of a conversation owns the k-th mask.
"""
import glob
import os.path as osp
from typing import Iterator, List, Optional, Sequence

from geopixel.registry import DATASETS
from geopixel.utils import BadRecordError, read_json, resolve_data_path

from .base import (
    GeoPixelBaseDataset,
    parse_guarded,
)
from .chat import (GCG_QUESTION, check_text, count_turn_segs,
                   normalise_turns)

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp')


@DATASETS.register_module()
class GeoPixelDDataset(GeoPixelBaseDataset):
    """Grounded conversation generation data in the GeoPixelD format.

    Args:
        ann_file: the conversation JSON list, or a folder of per-image JSONs.
        data_root: root that record paths are relative to. Paths stored as
            ``data/GeoPixelD/...`` are also tried without the ``data/``
            prefix, so both the repository root and its ``data/`` folder
            work. Defaults to the folder of ``ann_file``.
        question: the question for the per-image-JSON layout.
        on_bad_record: ``'raise'`` or ``'skip'`` (see ``datasets/base.py``).
    """

    METAINFO = dict(task='gcg')

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 question: str = GCG_QUESTION,
                 **kwargs):
        self.question = question
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

    def _roots(self) -> List[str]:
        roots = []
        for root in (self.data_root, osp.dirname(self.ann_file)):
            if root and root not in roots:
                roots.append(root)
        return roots or ['.']

    def iter_data_infos(self) -> Iterator:
        if osp.isdir(self.ann_file):
            yield from self._iter_folder(self.ann_file)
            return
        records = read_json(self.ann_file, 'annotation file')
        if not isinstance(records, list):
            raise BadRecordError('expected a JSON list of records',
                                 self.ann_file)
        for index, record in enumerate(records):
            yield parse_guarded(lambda: self._parse_record(index, record),
                                self.ann_file, f'#{index}')

    def _parse_record(self, index: int, record) -> dict:
        file = self.ann_file
        if not isinstance(record, dict):
            raise BadRecordError('record is not a JSON object', file,
                                 f'#{index}')
        label = f'#{index} (id {record.get("id", "?")})'
        image = record.get('image')
        if isinstance(image, list) and len(image) == 1:
            image = image[0]
        if not isinstance(image, str):
            raise BadRecordError(
                '"image" must be one path (grounding uses a single image; '
                f'got {type(image).__name__})', file, label)
        roots = self._roots()
        img_path = resolve_data_path(image, roots, file, label)
        turns = normalise_turns(record.get('conversations'), file, label)
        num_segs = count_turn_segs(turns)
        if 'polygons' in record:
            if not isinstance(record['polygons'], str):
                raise BadRecordError(
                    '"polygons" must be the path of a per-image polygon JSON',
                    file, label)
            source = dict(
                type='polygon_file',
                path=resolve_data_path(record['polygons'], roots, file,
                                       label))
        elif 'segmentation' in record:
            rles = record['segmentation']
            if not (isinstance(rles, list)
                    and all(isinstance(rle, dict) for rle in rles)):
                raise BadRecordError(
                    '"segmentation" must be a list of COCO RLE dicts', file,
                    label)
            if len(rles) != num_segs:
                raise BadRecordError(
                    f'the conversation has {num_segs} [SEG] token(s) but '
                    f'"segmentation" holds {len(rles)} mask(s)', file, label)
            source = dict(type='rle', rles=rles)
        elif num_segs:
            raise BadRecordError(
                f'the conversation has {num_segs} [SEG] token(s) but the '
                'record has neither "polygons" nor "segmentation"', file,
                label)
        else:
            source = None
        return dict(
            img_path=img_path,
            conversations=turns,
            num_segs=num_segs,
            mask_source=source,
            record_id=label,
            ann_file=file,
            expected_sizes=self.expected_sizes(record, img_path, file, label,
                                           "the record's height/width"),
            task='gcg')

    def _iter_folder(self, folder: str) -> Iterator:
        files = sorted(glob.glob(osp.join(folder, '*.json')))
        if not files:
            raise BadRecordError('folder holds no per-image JSON files',
                                 folder)
        for file in files:
            yield parse_guarded(lambda: self._parse_image_json(file), file,
                                None)

    def _parse_image_json(self, file: str) -> dict:
        content = read_json(file, 'annotation file')
        if not isinstance(content, dict):
            raise BadRecordError('expected a JSON object', file)
        label = f'id {content.get("id", osp.basename(file))}'
        for key in ('gcg_description', 'polygons'):
            if key not in content:
                raise BadRecordError(f'missing "{key}"', file, label)
        description = content['gcg_description']
        if not isinstance(description, str):
            raise BadRecordError(
                f'"gcg_description" must be text, got '
                f'{type(description).__name__}', file, label)
        check_text(description, '"gcg_description"', file, label)
        if not isinstance(content['polygons'], list):
            raise BadRecordError('"polygons" must be a list (one entry per '
                                 '[SEG])', file, label)
        img_path = _sibling_image(file)
        if img_path is None and isinstance(content.get('img'), str):
            img_path = resolve_data_path(content['img'],
                                         [osp.dirname(file)] + self._roots(),
                                         file, label)
        if img_path is None:
            raise BadRecordError('no image next to the JSON and no usable '
                                 '"img" path', file, label)
        turns = [('user', self.question), ('assistant', description)]
        return dict(
            img_path=img_path,
            conversations=turns,
            num_segs=count_turn_segs(turns),
            mask_source=dict(type='polygon_file', path=file),
            record_id=label,
            ann_file=file,
            expected_sizes=self.expected_sizes(content, img_path, file, label,
                                           'the JSON\'s height/width'),
            task='gcg')


def _sibling_image(json_path: str,
                   suffixes: Sequence[str] = IMAGE_SUFFIXES
                   ) -> Optional[str]:
    stem = osp.splitext(json_path)[0]
    for suffix in suffixes:
        if osp.isfile(stem + suffix):
            return stem + suffix
    return None
