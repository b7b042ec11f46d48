"""iSAID instance segmentation (COCO JSON from the iSAID devkit).

The devkit writes ``instancesonly_filtered_{train,val}.json`` with 15
categories whose names are spelled as below (mixed case included). The
annotation pipeline that builds GeoPixelD-style data starts from this.
"""
import json
import os.path as osp
from typing import Iterator

from geopixel.registry import DATASETS
from geopixel.utils import BadRecordError

from .base import GeoPixelBaseDataset

ISAID_CLASSES = ('ship', 'storage_tank', 'baseball_diamond', 'tennis_court',
                 'basketball_court', 'Ground_Track_Field', 'Bridge',
                 'Large_Vehicle', 'Small_Vehicle', 'Helicopter',
                 'Swimming_pool', 'Roundabout', 'Soccer_ball_field', 'plane',
                 'Harbor')
# category_id i + 1 is ISAID_CLASSES[i] (id 0 is "unlabeled").
ISAID_CATEGORY_IDS = {name: i + 1 for i, name in enumerate(ISAID_CLASSES)}
# How GeoPixelD-style text names each category.
ISAID_PHRASES = {
    'ship': 'ship',
    'storage_tank': 'storage tank',
    'baseball_diamond': 'baseball diamond',
    'tennis_court': 'tennis court',
    'basketball_court': 'basketball court',
    'Ground_Track_Field': 'ground track field',
    'Bridge': 'bridge',
    'Large_Vehicle': 'large vehicle',
    'Small_Vehicle': 'small vehicle',
    'Helicopter': 'helicopter',
    'Swimming_pool': 'swimming pool',
    'Roundabout': 'roundabout',
    'Soccer_ball_field': 'soccer ball field',
    'plane': 'plane',
    'Harbor': 'harbor',
}


@DATASETS.register_module()
class ISAIDDataset(GeoPixelBaseDataset):
    """One sample per image with all its instances.

    Args:
        ann_file: ``instancesonly_filtered_{split}.json``.
        data_root: dataset root.
        data_prefix: ``dict(img_path='images/')``, relative to ``data_root``.
        filter_empty: leave out images without instances.
    """

    METAINFO = dict(classes=ISAID_CLASSES, task='instance')

    def __init__(self, *args, filter_empty: bool = False, **kwargs):
        self.filter_empty = filter_empty
        kwargs.setdefault('data_prefix', dict(img_path='images/'))
        super().__init__(*args, **kwargs)

    def iter_data_infos(self) -> Iterator:
        file = self.ann_file
        try:
            with open(file, encoding='utf-8') as f:
                coco = json.load(f)
        except FileNotFoundError:
            raise BadRecordError('annotation file is missing', file) from None
        except json.JSONDecodeError as exc:
            raise BadRecordError(f'not valid JSON ({exc})', file) from None
        for key in ('images', 'annotations', 'categories'):
            if key not in coco:
                raise BadRecordError(f'not a COCO file: no "{key}"', file)
        for cat in coco['categories']:
            expected = ISAID_CATEGORY_IDS.get(cat.get('name'))
            if expected != cat.get('id'):
                raise BadRecordError(
                    f'category {cat} is not an iSAID category (ids 1-15: '
                    f'{", ".join(ISAID_CLASSES)})', file)
        by_image = {}
        for ann in coco['annotations']:
            by_image.setdefault(ann.get('image_id'), []).append(ann)
        img_root = self.data_prefix.get('img_path', '')
        for image in coco['images']:
            label = f'image_id {image.get("id")}'
            try:
                instances = [
                    self._parse_annotation(ann, file, label)
                    for ann in by_image.get(image.get('id'), [])
                ]
                if self.filter_empty and not instances:
                    continue
                img_path = osp.join(img_root, image['file_name'])
                if not osp.isfile(img_path):
                    raise BadRecordError(f'image {img_path} is missing', file,
                                         label)
                yield dict(
                    img_path=img_path,
                    image_id=image['id'],
                    height=image.get('height'),
                    width=image.get('width'),
                    instances=instances,
                    category_names=[
                        ISAID_CLASSES[i['category_id'] - 1] for i in instances
                    ],
                    record_id=label,
                    ann_file=file,
                    task='instance')
            except BadRecordError as err:
                yield err

    @staticmethod
    def _parse_annotation(ann: dict, file: str, label: str) -> dict:
        ann_label = f'{label} annotation {ann.get("id")}'
        if ann.get('category_id') not in range(1, len(ISAID_CLASSES) + 1):
            raise BadRecordError(
                f'category_id {ann.get("category_id")} is not 1-15', file,
                ann_label)
        if 'segmentation' not in ann:
            raise BadRecordError('annotation has no segmentation', file,
                                 ann_label)
        bbox = ann.get('bbox')
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise BadRecordError(f'bbox must be [x, y, w, h], got {bbox}',
                                 file, ann_label)
        return dict(
            ann_id=ann.get('id'),
            category_id=ann['category_id'],
            segmentation=ann['segmentation'],
            bbox=bbox,
            area=ann.get('area'),
            iscrowd=ann.get('iscrowd', 0))
