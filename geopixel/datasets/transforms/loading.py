"""Loading images and masks, with errors that name the file and record."""
import json
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image, UnidentifiedImageError

from geopixel.registry import TRANSFORMS
from geopixel.utils import BadRecordError
from geopixel.utils.masks import (
    coco_segmentation_to_mask,
    decode_rle,
    polygons_to_mask,
    stack_masks,
)

_HIGH_DEPTH_MODES = ('I;16', 'I;16B', 'I;16L', 'I', 'F')


def read_image_rgb(path: str, record: Optional[object] = None) -> np.ndarray:
    """An H x W x 3 uint8 RGB array from any image PIL reads.

    Palette, grey and alpha images are converted to RGB (the official
    training path converts too; its inference path forgets to). 16-bit and
    float single-band rasters (common for remote sensing) are stretched
    between their 2nd and 98th percentiles and repeated on three channels.
    """
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in _HIGH_DEPTH_MODES:
                band = np.asarray(img, dtype=np.float64)
                lo, hi = np.percentile(band, (2, 98))
                scale = 255.0 / (hi - lo) if hi > lo else 0.0
                band = np.clip((band - lo) * scale, 0, 255).astype(np.uint8)
                return np.ascontiguousarray(np.stack([band] * 3, axis=-1))
            return np.array(img.convert('RGB'), dtype=np.uint8)
    except FileNotFoundError:
        raise BadRecordError('image file is missing', path, record) from None
    except UnidentifiedImageError:
        raise BadRecordError('not a readable image (corrupt or unsupported '
                             'format)', path, record) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadRecordError(f'corrupt image ({exc})', path,
                             record) from None


@TRANSFORMS.register_module()
class LoadImageRGB(BaseTransform):
    """Read ``img_path`` into ``img`` (H x W x 3 uint8, **RGB** order).

    Adds ``ori_shape`` and ``img_shape`` as (h, w).
    """

    def transform(self, results: dict) -> dict:
        img = read_image_rgb(results['img_path'], results.get('record_id'))
        results['img'] = img
        results['ori_shape'] = img.shape[:2]
        results['img_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadGroundingMasks(BaseTransform):
    """Rasterise the masks of a grounded conversation into ``gt_masks``.

    Reads ``results['mask_source']``, one of:

    * ``{'type': 'polygon_file', 'path': ...}``: a GeoPixelD per-image JSON
      whose ``polygons[k]`` is the list of polygons of the k-th ``[SEG]``
      (filled with ``cv2.fillPoly`` and OR-ed, as the official loader does);
    * ``{'type': 'rle', 'rles': [...]}``: inline COCO RLE, one per ``[SEG]``;
    * ``{'type': 'coco', 'segmentations': [...]}``: COCO ``segmentation``
      fields (flat polygons or RLE), one per ``[SEG]`` (RRSIS-D);
    * ``None``: a conversation without masks.

    The number of masks must equal ``results['num_segs']`` (the ``[SEG]``
    count of the whole conversation).
    """

    def transform(self, results: dict) -> dict:
        h, w = results['ori_shape']
        source = results.get('mask_source')
        record = results.get('record_id')
        file = results.get('ann_file')
        masks = []
        instances = []  # polygons (instances) behind each mask
        if source is None:
            pass
        elif source['type'] == 'polygon_file':
            file = source['path']
            polygons = self._read_polygons(file, record)
            for k, mask_polygons in enumerate(polygons):
                if not isinstance(mask_polygons, list):
                    raise BadRecordError(
                        f'mask {k}: expected a list of polygons, got '
                        f'{type(mask_polygons).__name__}', file, record)
                masks.append(
                    polygons_to_mask(mask_polygons, h, w, file, record, k))
                instances.append(len(mask_polygons))
        elif source['type'] == 'rle':
            for k, rle in enumerate(source['rles']):
                masks.append(decode_rle(rle, h, w, file, record, k))
        elif source['type'] == 'coco':
            ann_hw = tuple(source.get('ann_hw') or ())
            if ann_hw and None not in ann_hw and ann_hw != (h, w):
                raise BadRecordError(
                    f'the annotation file gives the image as {ann_hw[1]}x'
                    f'{ann_hw[0]} but {results["img_path"]} is {w}x{h}',
                    file, record)
            for k, seg in enumerate(source['segmentations']):
                masks.append(
                    coco_segmentation_to_mask(seg, h, w, file,
                                              f'{record} mask {k}'))
        else:
            raise BadRecordError(f'unknown mask source {source["type"]!r}',
                                 file, record)
        num_segs = results.get('num_segs')
        if num_segs is not None and num_segs != len(masks):
            raise BadRecordError(
                f'the conversation has {num_segs} [SEG] token(s) but '
                f'{len(masks)} mask(s); the k-th [SEG] must own the k-th '
                'mask', file, record)
        results['gt_masks'] = stack_masks(masks, h, w)
        # RLE and COCO segmentations do not say how many instances a mask
        # joins; count them as one (the uni-target case)
        results['mask_instance_counts'] = instances or [1] * len(masks)
        return results

    @staticmethod
    def _read_polygons(path: str, record) -> list:
        try:
            with open(path, encoding='utf-8') as f:
                content = json.load(f)
        except FileNotFoundError:
            raise BadRecordError('polygon file is missing', path,
                                 record) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRecordError(f'polygon file is not valid JSON ({exc})',
                                 path, record) from None
        if not isinstance(content, dict) or 'polygons' not in content:
            raise BadRecordError('polygon file has no "polygons" list', path,
                                 record)
        polygons = content['polygons']
        if not isinstance(polygons, list):
            raise BadRecordError('"polygons" must be a list (one entry per '
                                 '[SEG])', path, record)
        return polygons


@TRANSFORMS.register_module()
class LoadInstanceAnnotations(BaseTransform):
    """Instance masks, labels and boxes from COCO-style ``instances``.

    Produces ``gt_masks`` [N, H, W] uint8, ``gt_labels`` [N] int64 (category
    ids) and ``gt_bboxes`` [N, 4] float32 (x1, y1, x2, y2).
    """

    def transform(self, results: dict) -> dict:
        h, w = results['ori_shape']
        record = results.get('record_id')
        masks, labels, boxes = [], [], []
        for inst in results.get('instances', []):
            masks.append(
                coco_segmentation_to_mask(
                    inst['segmentation'], h, w, results.get('ann_file'),
                    f'{record} annotation {inst.get("ann_id")}'))
            labels.append(inst['category_id'])
            x, y, bw, bh = inst['bbox']
            boxes.append([x, y, x + bw, y + bh])
        results['gt_masks'] = stack_masks(masks, h, w)
        results['gt_labels'] = np.asarray(labels, dtype=np.int64)
        results['gt_bboxes'] = np.asarray(
            boxes, dtype=np.float32).reshape(-1, 4)
        return results
