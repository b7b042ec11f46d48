"""GLaMM-format files: COCO-style ground truth and per-image predictions.

Ground truth (one pair per split), as GLaMM's evaluator reads it::

    {split}_gcg_coco_caption_gt.json   images; annotations {image_id, id,
                                       caption, labels: [phrase, ...]}
    {split}_gcg_coco_mask_gt.json      images; annotations {image_id, id,
                                       category_id: 1, segmentation: RLE,
                                       area, iscrowd, bbox, num_instances};
                                       categories [{id: 1}]

``num_instances`` (ours) is how many instances a phrase's mask joins; it
decides the uni/multi-target split. Mask annotations of an image are in
the order of its labels. Predictions: one ``{image_id}.json`` per image
with ``image_id``, ``caption``, ``phrases``, ``pred_masks`` (RLE).
"""
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

from geopixel.utils import BadRecordError, encode_rle
from .gcg import clean_caption, parse_phrases, rle_area, rle_bbox


def glamm_gt_from_dataset(dataset, progress=None) -> Tuple[dict, dict]:
    """Caption and mask GT dicts from a GeoPixelD dataset whose pipeline
    loads the image and the masks (``LoadImageRGB``, ``LoadGroundingMasks``).
    """
    images, captions, masks = [], [], []
    ann_id = 0
    indices = range(len(dataset))
    if progress is not None:
        indices = progress(indices)
    for idx in indices:
        results = dataset[idx]
        image_id = osp.splitext(osp.basename(results['img_path']))[0]
        h, w = results['ori_shape']
        answer = ' '.join(t for r, t in results['conversations']
                          if r == 'assistant')
        images.append(dict(id=image_id, file_name=osp.basename(
            results['img_path']), height=int(h), width=int(w)))
        captions.append(dict(image_id=image_id, id=len(captions) + 1,
                             caption=clean_caption(answer),
                             labels=parse_phrases(answer)))
        counts = results.get('mask_instance_counts') or [1] * len(
            results['gt_masks'])
        for mask, count in zip(results['gt_masks'], counts):
            ann_id += 1
            rle = encode_rle(mask)
            masks.append(dict(image_id=image_id, id=ann_id, category_id=1,
                              segmentation=rle, area=rle_area(rle),
                              iscrowd=0, bbox=rle_bbox(rle),
                              num_instances=int(count)))
    categories = [dict(id=1, name='object')]
    return (dict(images=images, annotations=captions),
            dict(images=images, annotations=masks, categories=categories))


def write_glamm_gt(out_dir: str, split: str, caption_gt: dict,
                   mask_gt: dict) -> Tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = (osp.join(out_dir, f'{split}_gcg_coco_caption_gt.json'),
             osp.join(out_dir, f'{split}_gcg_coco_mask_gt.json'))
    for path, content in zip(paths, (caption_gt, mask_gt)):
        with open(path, 'w') as f:
            json.dump(content, f)
    return paths


def _read(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadRecordError('file is missing', path) from None
    except json.JSONDecodeError as exc:
        raise BadRecordError(f'not valid JSON ({exc})', path) from None


def load_predictions(folder: str) -> Dict[str, dict]:
    """``{image_id: prediction}`` from a folder of GLaMM prediction files
    (a file may also nest its dict under a single key, as GLaMM allows)."""
    preds = {}
    files = sorted(glob.glob(osp.join(folder, '*.json')))
    if not files:
        raise BadRecordError('no prediction files (*.json)', folder)
    for path in files:
        content = _read(path)
        if len(content) == 1 and isinstance(next(iter(content.values())),
                                            dict):
            content = next(iter(content.values()))
        for key in ('image_id', 'caption', 'phrases', 'pred_masks'):
            if key not in content:
                raise BadRecordError(f'prediction has no "{key}"', path)
        preds[str(content['image_id'])] = content
    return preds


def records_from_files(caption_gt_file: str, mask_gt_file: str,
                       pred_dir: str) -> List[dict]:
    """Records for :func:`geopixel.evaluation.gcg.score_gcg`. Every GT image
    is scored; an image without a prediction file counts as an empty
    prediction."""
    captions = _read(caption_gt_file)
    masks = _read(mask_gt_file)
    preds = load_predictions(pred_dir)
    unknown = sorted(set(preds) - {str(i['id']) for i in captions['images']})
    if unknown:
        raise BadRecordError(
            f'{len(unknown)} prediction(s) for images not in the ground '
            f'truth, e.g. {unknown[:3]}', pred_dir)
    by_image = {}
    for ann in masks['annotations']:
        by_image.setdefault(str(ann['image_id']), []).append(ann)
    first_caption = {}
    for ann in captions['annotations']:  # GLaMM uses the first caption
        first_caption.setdefault(str(ann['image_id']), ann)
    records = []
    for image in captions['images']:
        image_id = str(image['id'])
        cap = first_caption.get(image_id)
        if cap is None:
            raise BadRecordError('image has no caption annotation',
                                 caption_gt_file, image_id)
        anns = by_image.get(image_id, [])
        pred = preds.get(image_id, dict(caption='', phrases=[],
                                        pred_masks=[]))
        records.append(dict(
            image_id=image_id,
            size=(image.get('height', 1), image.get('width', 1)),
            gt_caption=cap['caption'],
            gt_labels=list(cap.get('labels', [])),
            gt_masks=[a['segmentation'] for a in anns],
            gt_kinds=['uni' if a.get('num_instances', 1) <= 1 else 'multi'
                      for a in anns],
            pred_caption=pred['caption'],
            pred_phrases=list(pred['phrases']),
            pred_masks=list(pred['pred_masks'])))
    return records
