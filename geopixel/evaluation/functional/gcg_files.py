"""GLaMM-format files: COCO-style ground truth and per-image predictions.

Ground truth (one pair per split), as GLaMM's evaluator reads it::

    {split}_gcg_coco_caption_gt.json   images; annotations {image_id, id,
                                       caption, labels: [phrase, ...]}
    {split}_gcg_coco_mask_gt.json      images; annotations {image_id, id,
                                       category_id: 1, segmentation: RLE,
                                       area, iscrowd, bbox, num_instances};
                                       categories [{id: 1}]

``num_instances`` (ours) is how many instances a phrase's mask joins; it
decides the uni/multi-target split and is left out where the source does
not say (RLE masks). Mask annotations of an image are in the order of its
labels. Predictions: one ``{image_id}.json`` per image with ``image_id``,
``caption``, ``phrases``, ``pred_masks`` (RLE); duplicates and missing
files follow :mod:`geopixel.evaluation.functional.files`.
"""
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

from geopixel.utils import BadRecordError, decode_rle, encode_rle, read_json
from .files import FolderReport, check_known_ids, json_type, pick_files
from geopixel.structures import glamm_caption, grounded_phrases

from .gcg import rle_area, rle_bbox
from .rle import check_rle


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
                             caption=glamm_caption(answer),
                             labels=grounded_phrases(answer)))
        counts = results.get('mask_instance_counts')
        if counts is None:  # the source does not say (RLE masks)
            counts = [None] * len(results['gt_masks'])
        if len(counts) != len(results['gt_masks']):
            raise BadRecordError(
                f'{len(counts)} instance counts for '
                f'{len(results["gt_masks"])} masks', results.get('ann_file'),
                results.get('record_id'))
        for mask, count in zip(results['gt_masks'], counts):
            ann_id += 1
            rle = encode_rle(mask)
            ann = dict(image_id=image_id, id=ann_id, category_id=1,
                       segmentation=rle, area=rle_area(rle), iscrowd=0,
                       bbox=rle_bbox(rle))
            if count is not None:
                ann['num_instances'] = int(count)
            masks.append(ann)
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


KIND_SOURCES = ('num_instances', 'connected-components')
PREDICTION_KEYS = ('image_id', 'caption', 'phrases', 'pred_masks')


def _is_id(value) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def read_prediction(path: str) -> dict:
    """One GLaMM prediction file, its structure checked (the dict may be
    nested under a single key, as GLaMM allows)."""
    content = read_json(path)
    if (isinstance(content, dict) and len(content) == 1
            and isinstance(next(iter(content.values())), dict)):
        content = next(iter(content.values()))
    if not isinstance(content, dict):
        raise BadRecordError(
            'a prediction file must hold a JSON object with '
            f'{", ".join(PREDICTION_KEYS)}; it holds {json_type(content)}',
            path)
    for key in PREDICTION_KEYS:
        if key not in content:
            raise BadRecordError(f'prediction has no "{key}"', path)
    if not _is_id(content['image_id']):
        raise BadRecordError(
            '"image_id" must be a string or an integer, got '
            f'{json_type(content["image_id"])}', path)
    record = f'image_id {content["image_id"]}'
    if not isinstance(content['caption'], str):
        raise BadRecordError(
            f'"caption" must be a string, got {json_type(content["caption"])}',
            path, record)
    phrases = content['phrases']
    if not _strings(phrases):
        got = json_type(phrases) if not isinstance(phrases, list) else \
            'a list holding ' + next(json_type(p) for p in phrases
                                     if not isinstance(p, str))
        raise BadRecordError(f'"phrases" must be a list of strings, got {got}',
                             path, record)
    if not isinstance(content['pred_masks'], list):
        raise BadRecordError(
            '"pred_masks" must be a list of RLE masks, got '
            f'{json_type(content["pred_masks"])}', path, record)
    return content


def write_prediction(folder: str, record: dict) -> str:
    """One GLaMM-format prediction file: ``{image_id}.json`` with
    ``image_id``, ``caption``, ``phrases`` and ``pred_masks`` (RLE)."""
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, f'{record["image_id"]}.json')
    with open(path, 'w') as f:
        json.dump(
            dict(
                image_id=record['image_id'],
                caption=record['pred_caption'],
                phrases=record['pred_phrases'],
                pred_masks=record['pred_masks']), f)
    return path


def load_predictions(folder: str) -> Tuple[Dict[str, Tuple[str, dict]],
                                           FolderReport]:
    """``{image_id: (file, prediction)}`` from a folder of GLaMM prediction
    files, one file per image by the duplicate rule (see
    :mod:`geopixel.evaluation.functional.files`), and the report of
    duplicates."""
    files = sorted(glob.glob(osp.join(folder, '*.json')))
    if not files:
        raise BadRecordError('no prediction files (*.json)', folder)
    contents = {path: read_prediction(path) for path in files}
    report = FolderReport(folder)
    chosen = pick_files(((str(c['image_id']), path)
                         for path, c in contents.items()), report)
    return {k: (path, contents[path]) for k, path in chosen.items()}, report


def _gt_images(caption_gt: dict, mask_gt: dict, file: str) -> Dict[str,
                                                                  dict]:
    images = {}
    for k, image in enumerate(caption_gt['images']):
        if not isinstance(image, dict) or not _is_id(image.get('id')):
            raise BadRecordError('image entry has no "id"', file,
                                 f'images[{k}]')
        image_id = str(image['id'])
        if image_id in images:
            raise BadRecordError('image is listed twice', file, image_id)
        images[image_id] = image
    sizes = {str(i.get('id')): i for i in mask_gt.get('images') or []
             if isinstance(i, dict)}
    for image_id, image in images.items():
        for entry in (image, sizes.get(image_id, {})):
            if _is_size(entry.get('height')) and _is_size(entry.get('width')):
                image['size'] = (entry['height'], entry['width'])
                break
    return images


def _is_size(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and \
        value > 0


def _coco_lists(content, file: str, keys: Sequence[str]) -> None:
    if not isinstance(content, dict) or not all(
            isinstance(content.get(k), list) for k in keys):
        names = ' and '.join(f'"{k}"' for k in keys)
        got = (f'an object with keys {sorted(content)}' if isinstance(
            content, dict) else json_type(content))
        raise BadRecordError(f'ground truth must be a COCO-style object '
                             f'with {names} lists; got {got}', file)


def _gt_captions(caption_gt: dict, images: dict, file: str) -> Dict[str,
                                                                    dict]:
    first = {}
    for k, ann in enumerate(caption_gt['annotations']):
        record = f'annotation {ann.get("id", f"#{k}")}' if isinstance(
            ann, dict) else f'annotations[{k}]'
        if not isinstance(ann, dict) or str(ann.get('image_id')) not in \
                images:
            raise BadRecordError('caption annotation is not an object for '
                                 'an image in "images"', file, record)
        if not isinstance(ann.get('caption'), str):
            raise BadRecordError('caption annotation has no "caption" string',
                                 file, record)
        if not _strings(ann.get('labels')):
            raise BadRecordError('"labels" must be a list of strings', file,
                                 record)
        first.setdefault(str(ann['image_id']), ann)  # GLaMM uses the first
    for image_id in images:
        if image_id not in first:
            raise BadRecordError('image has no caption annotation', file,
                                 image_id)
    return first


def _gt_masks(mask_gt: dict, images: dict, file: str,
              kinds: str) -> Tuple[Dict[str, list], int]:
    """Per image its mask annotations with ``kind``; and how many lack a
    ``num_instances``."""
    by_image = {image_id: [] for image_id in images}
    unknown = 0
    for k, ann in enumerate(mask_gt['annotations']):
        if not isinstance(ann, dict) or 'id' not in ann:
            raise BadRecordError('mask annotation is not an object with an '
                                 '"id"', file, f'annotations[{k}]')
        record = f'annotation {ann["id"]}'
        image_id = str(ann.get('image_id'))
        if image_id not in images:
            raise BadRecordError(
                f'mask annotation for image {ann.get("image_id")!r}, which '
                'is not in the caption ground truth', file, record)
        if 'segmentation' not in ann:
            raise BadRecordError('mask annotation has no "segmentation"',
                                 file, record)
        image = images[image_id]
        if 'size' not in image:  # no height/width: the first mask's size
            size = ann['segmentation'].get('size') if isinstance(
                ann['segmentation'], dict) else None
            if not (isinstance(size, list) and len(size) == 2
                    and all(map(_is_size, size))):
                raise BadRecordError(
                    f'image {image_id} has no height/width and its mask '
                    'has no valid RLE size', file, record)
            image['size'] = tuple(size)
        where = f'{record} (image {image_id})'
        if not check_rle(ann['segmentation'], *image['size'], file, where):
            raise BadRecordError('ground-truth mask is empty', file, record)
        count = ann.get('num_instances')
        if kinds == 'connected-components':
            import cv2
            mask = decode_rle(ann['segmentation'], *image['size'], file,
                              where)
            count = cv2.connectedComponents(mask, connectivity=8)[0] - 1
        elif count is None:
            unknown += 1
        elif not _is_size(count):
            raise BadRecordError(
                f'"num_instances" must be a positive integer, got {count!r}',
                file, record)
        by_image[image_id].append(dict(
            segmentation=ann['segmentation'],
            kind=None if count is None else
            ('uni' if count <= 1 else 'multi')))
    return by_image, unknown


def records_from_files(caption_gt_file: str,
                       mask_gt_file: str,
                       pred_dir: str,
                       kinds: str = 'num_instances'
                       ) -> Tuple[List[dict], FolderReport]:
    """Records for :func:`geopixel.evaluation.functional.gcg.score_gcg` and the
    report of the prediction folder (duplicates, missing files, notes).

    Every GT image is scored; an image without a prediction file counts as
    an empty prediction and is reported. Malformed files, records or masks
    (GT or prediction) are a :class:`BadRecordError` naming them.

    ``kinds`` says where the uni/multi-target split comes from:
    ``'num_instances'`` (the GT converter's field; if any mask annotation
    lacks it, there is no split and a note says so) or
    ``'connected-components'`` (8-connected components of each GT mask, an
    approximation: touching instances count as one).
    """
    if kinds not in KIND_SOURCES:
        raise ValueError(f'kinds must be one of {KIND_SOURCES}, got '
                         f'{kinds!r}')
    captions = read_json(caption_gt_file)
    masks = read_json(mask_gt_file)
    _coco_lists(captions, caption_gt_file, ('images', 'annotations'))
    _coco_lists(masks, mask_gt_file, ('annotations', ))
    images = _gt_images(captions, masks, caption_gt_file)
    first_caption = _gt_captions(captions, images, caption_gt_file)
    gt_masks, unknown = _gt_masks(masks, images, mask_gt_file, kinds)
    preds, report = load_predictions(pred_dir)
    check_known_ids(preds, images, pred_dir, 'images')
    report.missing = [i for i in images if i not in preds]
    if unknown:
        report.notes.append(
            f'uni/multi-target scores left out (null): {unknown} of '
            f'{len(masks["annotations"])} mask annotations in '
            f'{mask_gt_file} have no "num_instances" (how many instances '
            'the mask joins). Regenerate the ground truth with '
            'tools/dataset_converters/geopixeld_to_glamm_gt.py, or pass '
            '--kinds connected-components to count the 8-connected '
            'components of each GT mask (an approximation: touching '
            'instances count as one).')
    records = []
    for image_id, image in images.items():
        cap = first_caption[image_id]
        anns = gt_masks[image_id]
        path, pred = preds.get(image_id, (None, dict(
            caption='', phrases=[], pred_masks=[])))
        size = image.get('size')
        if size is None and pred['pred_masks']:
            raise BadRecordError(
                'image has no height/width in the ground truth and no mask '
                'to take them from, so its predicted masks cannot be '
                'checked', caption_gt_file, image_id)
        for k, rle in enumerate(pred['pred_masks']):
            check_rle(rle, *size, path, f'image_id {image_id}', k)
        records.append(dict(
            image_id=image_id,
            size=size,
            gt_caption=cap['caption'],
            gt_labels=list(cap['labels']),
            gt_masks=[a['segmentation'] for a in anns],
            gt_kinds=None if unknown else [a['kind'] for a in anns],
            pred_caption=pred['caption'],
            pred_phrases=list(pred['phrases']),
            pred_masks=list(pred['pred_masks'])))
    return records, report
