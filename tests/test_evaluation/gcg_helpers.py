"""Small GLaMM-format ground truth and prediction folders for tests."""
import json
import os

import numpy as np

from geopixel.evaluation.functional.gcg import rle_area, rle_bbox
from geopixel.evaluation.functional.gcg_files import write_prediction
from geopixel.utils import encode_rle

SIZE = 32
LABELS = ['car', 'cars']


def box(y0, y1, x0, x1, size=SIZE):
    m = np.zeros((size, size), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def image_masks(k):
    """Image k: a uni-target car and a multi-target group of cars."""
    return [box(k, k + 8, 0, 8), box(12, 30, k + 10, k + 20)]


def write_gcg_split(root, images=4, num_instances=True):
    """GT files and a folder of perfect predictions under ``root``;
    returns their paths."""
    os.makedirs(root, exist_ok=True)
    ids = [f'img{k}' for k in range(images)]
    caption = dict(images=[], annotations=[])
    mask = dict(images=[], annotations=[], categories=[dict(id=1)])
    pred_dir = os.path.join(root, 'preds')
    for k, image_id in enumerate(ids):
        entry = dict(id=image_id, file_name=f'{image_id}.png',
                     height=SIZE, width=SIZE)
        caption['images'].append(entry)
        mask['images'].append(entry)
        caption['annotations'].append(dict(
            image_id=image_id, id=k + 1, caption=f'a car and cars {k}',
            labels=LABELS))
        rles = [encode_rle(m) for m in image_masks(k)]
        for rle, count in zip(rles, (1, 3)):
            ann = dict(image_id=image_id, id=len(mask['annotations']) + 1,
                       category_id=1, segmentation=rle, area=rle_area(rle),
                       bbox=rle_bbox(rle), iscrowd=0)
            if num_instances:
                ann['num_instances'] = count
            mask['annotations'].append(ann)
        write_prediction(pred_dir, dict(
            image_id=image_id, pred_caption=f'a car and cars {k}',
            pred_phrases=LABELS, pred_masks=rles))
    paths = dict(caption_gt=os.path.join(root, 'caption_gt.json'),
                 mask_gt=os.path.join(root, 'mask_gt.json'),
                 pred_dir=pred_dir)
    for key, content in (('caption_gt', caption), ('mask_gt', mask)):
        with open(paths[key], 'w') as f:
            json.dump(content, f)
    return paths


def tool_args(paths, *extra):
    return ['--pred-dir', paths['pred_dir'], '--caption-gt',
            paths['caption_gt'], '--mask-gt', paths['mask_gt'], *extra]


def strict_json(path):
    """Parse as strict JSON: NaN / Infinity are an error."""
    def refuse(name):
        raise ValueError(f'{path} holds {name}')
    with open(path) as f:
        return json.load(f, parse_constant=refuse)
