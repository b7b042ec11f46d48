"""iSAID instance segmentation (COCO JSON from the iSAID devkit).

The devkit writes ``instancesonly_filtered_{train,val}.json`` with 15
categories whose names are spelled as below (mixed case included). The
annotation pipeline that builds GeoPixelD-style data starts from this.
"""
import math
import numbers
import os.path as osp
from typing import Iterator

from geopixel.registry import DATASETS
from geopixel.utils import BadRecordError, read_json

from .base import (
    GeoPixelBaseDataset,
    is_int,
    parse_guarded,
)

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
        coco = self._read_coco(file)
        by_image = {}
        image_ids = {
            image['id']
            for image in coco['images']
            if isinstance(image, dict) and is_int(image.get('id'))
        }
        for position, ann in enumerate(coco['annotations']):
            label = f'annotation #{position}'
            if not isinstance(ann, dict):
                yield BadRecordError(
                    f'annotation must be a dict, got {type(ann).__name__}',
                    file, label)
            elif not (is_int(ann.get('image_id'))
                      and ann['image_id'] in image_ids):
                yield BadRecordError(
                    f'annotation {ann.get("id")} points at image '
                    f'{ann.get("image_id")!r}, which is not in "images"',
                    file, label)
            else:
                by_image.setdefault(ann['image_id'], []).append(
                    (position, ann))
        img_root = self.data_prefix.get('img_path', '')
        for position, image in enumerate(coco['images']):
            label = f'image #{position}'
            if isinstance(image, dict):
                label = f'image_id {image.get("id")}'
            parsed = parse_guarded(
                lambda: self._parse_image(image, label, by_image, img_root),
                file, label)
            if parsed is not None:
                yield parsed

    @staticmethod
    def _read_coco(file: str) -> dict:
        coco = read_json(file, 'annotation file')
        if not isinstance(coco, dict):
            raise BadRecordError(
                f'expected a COCO JSON object, got a JSON '
                f'{type(coco).__name__}', file)
        for key in ('images', 'annotations', 'categories'):
            if key not in coco:
                raise BadRecordError(f'not a COCO file: no "{key}"', file)
            if not isinstance(coco[key], list):
                raise BadRecordError(
                    f'"{key}" must be a list, got '
                    f'{type(coco[key]).__name__}', file)
        for cat in coco['categories']:
            name = cat.get('name') if isinstance(cat, dict) else None
            expected = ISAID_CATEGORY_IDS.get(name)
            if expected is None or expected != cat.get('id'):
                raise BadRecordError(
                    f'category {cat} is not an iSAID category (ids 1-15: '
                    f'{", ".join(ISAID_CLASSES)})', file)
        return coco

    def _parse_image(self, image, label, by_image, img_root):
        """The sample of one image; None when ``filter_empty`` drops it."""
        file = self.ann_file
        if not isinstance(image, dict):
            raise BadRecordError(
                f'image must be a dict, got {type(image).__name__}', file,
                label)
        if not is_int(image.get('id')):
            raise BadRecordError(
                f'image "id" must be an integer, got {image.get("id")!r}',
                file, label)
        if not isinstance(image.get('file_name'), str):
            raise BadRecordError(
                'image "file_name" must be text, got '
                f'{image.get("file_name")!r}', file, label)
        instances = [
            self._parse_annotation(ann, file, f'{label} annotation #{k}')
            for k, ann in by_image.get(image['id'], [])
        ]
        if self.filter_empty and not instances:
            return None
        img_path = osp.join(img_root, image['file_name'])
        if not osp.isfile(img_path):
            raise BadRecordError(f'image {img_path} is missing', file, label)
        sizes = self.expected_sizes(image, img_path, file, label,
                                    'its COCO image entry')
        return dict(
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
            expected_sizes=sizes,
            task='instance')

    @staticmethod
    def _parse_annotation(ann: dict, file: str, ann_label: str) -> dict:
        if not is_int(ann.get('id')):
            raise BadRecordError(
                f'annotation "id" must be an integer, got {ann.get("id")!r}',
                file, ann_label)
        category = ann.get('category_id')
        if not (is_int(category) and 1 <= category <= len(ISAID_CLASSES)):
            raise BadRecordError(
                f'category_id {category!r} is not 1-15', file, ann_label)
        segmentation = ann.get('segmentation')
        if not isinstance(segmentation, (list, dict)):
            raise BadRecordError(
                'annotation needs a "segmentation" (polygons or RLE), got '
                f'{segmentation!r}', file, ann_label)
        bbox = ann.get('bbox')
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(
                isinstance(v, numbers.Real) and not isinstance(v, bool)
                and math.isfinite(v) for v in bbox)):
            raise BadRecordError(
                f'bbox must be [x, y, w, h] finite numbers, got {bbox!r}',
                file, ann_label)
        return dict(
            ann_id=ann['id'],
            category_id=category,
            segmentation=segmentation,
            bbox=bbox,
            area=ann.get('area'),
            iscrowd=ann.get('iscrowd', 0))
