"""Loading images and masks, with errors that name the file and record."""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from geopixel.registry import TRANSFORMS
from geopixel.utils import BadRecordError, read_json
from geopixel.utils.masks import (
    coco_segmentation_to_mask,
    decode_rle,
    polygons_to_mask,
    stack_masks,
)

from ..base import declared_size
from .image_io import DEFAULT_MAX_PIXELS, STRETCHES, read_image_rgb


def check_image_size(shape: Sequence[int], expected: Sequence[tuple],
                     img_path: str, file: Optional[str],
                     record: Optional[object]) -> None:
    """The decoded ``(h, w)`` must equal every ``(h, w, source)`` given.

    A size that disagrees means the annotation and the image do not belong
    together (or one is corrupt); masks would be drawn on the wrong canvas.
    """
    h, w = shape
    for exp_h, exp_w, source in expected:
        if (exp_h, exp_w) != (h, w):
            raise BadRecordError(
                f'{source} gives the image as {exp_w}x{exp_h} (width x '
                f'height) but {img_path} is {w}x{h}', file, record)


@TRANSFORMS.register_module()
class LoadImageRGB(BaseTransform):
    """Read ``img_path`` into ``img`` (H x W x 3 uint8, **RGB** order).

    Adds ``ori_shape`` and ``img_shape`` as (h, w). When the dataset put
    ``expected_sizes`` (``[(h, w, source), ...]``) in the sample, the
    decoded size must match each.

    Args:
        max_pixels: refuse images of more pixels (width x height) than
            this, checked from the header before decoding; ``None`` lifts
            the cap. The default, ``2**28``, is 16384 x 16384.
        bands: three band numbers (from 1, as GDAL numbers them) to show as
            R, G, B; needed for images whose band count is not 1 or 3 (plus
            alpha), e.g. ``(3, 2, 1)`` for a B-G-R-NIR raster.
        stretch: how samples of more than 8 bits become 0-255:
            ``'percentile'`` (2nd-98th percentile per band) or ``'range'``
            (the type's full range; 0-1 for floats).

    See ``geopixel/datasets/transforms/image_io.py`` for the full rules.
    """

    def __init__(self,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 bands: Optional[Sequence[int]] = None,
                 stretch: str = 'percentile'):
        if max_pixels is not None and not (isinstance(max_pixels, int)
                                           and max_pixels > 0):
            raise ValueError('max_pixels must be a positive int or None, got '
                             f'{max_pixels!r}')
        if bands is not None:
            bands = tuple(bands)
            if len(bands) != 3 or not all(
                    isinstance(b, int) and b >= 1 for b in bands):
                raise ValueError('bands must be three band numbers counted '
                                 f'from 1, e.g. (3, 2, 1); got {bands!r}')
        if stretch not in STRETCHES:
            raise ValueError(f'stretch must be one of {STRETCHES}, got '
                             f'{stretch!r}')
        self.max_pixels = max_pixels
        self.bands = bands
        self.stretch = stretch

    def transform(self, results: dict) -> dict:
        record = results.get('record_id')
        img = read_image_rgb(results['img_path'], record, self.max_pixels,
                             self.bands, self.stretch)
        check_image_size(img.shape[:2], results.get('expected_sizes', ()),
                         results['img_path'], results.get('ann_file'),
                         record)
        results['img'] = img
        results['ori_shape'] = img.shape[:2]
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(max_pixels={self.max_pixels}, '
                f'bands={self.bands}, stretch={self.stretch!r})')


@TRANSFORMS.register_module()
class LoadGroundingMasks(BaseTransform):
    """Rasterise the masks of a grounded conversation into ``gt_masks``.

    Reads ``results['mask_source']``, one of:

    * ``{'type': 'polygon_file', 'path': ...}``: a GeoPixelD per-image JSON
      whose ``polygons[k]`` is the list of polygons of the k-th ``[SEG]``
      (filled with ``cv2.fillPoly`` and OR-ed, as the official loader does);
    * ``{'type': 'rle', 'rles': [...]}``: inline COCO RLE, one per ``[SEG]``;
    * ``{'type': 'coco', 'segmentations': [...]}``: COCO ``segmentation``
      fields (flat polygons or RLE), one per ``[SEG]`` (RRSIS-D), with
      optional ``file`` (where they are stored) and ``names`` (what to
      call each in errors);
    * ``None``: a conversation without masks.

    The number of masks must equal ``results['num_segs']`` (the ``[SEG]``
    count of the whole conversation). ``mask_instance_counts`` is the
    number of polygons (instances) of each mask for polygon files, and
    ``None`` for RLE and COCO sources, which do not say. A polygon file
    that declares ``height``/``width`` must match the image.
    """

    def transform(self, results: dict) -> dict:
        h, w = results['ori_shape']
        source = results.get('mask_source')
        record = results.get('record_id')
        file = results.get('ann_file')
        masks = []
        # instances (polygons) behind each mask; None where the source
        # does not say (RLE and COCO segmentations)
        instances = None
        if source is None:
            instances = []
        elif source['type'] == 'polygon_file':
            file = source['path']
            content = self._read_polygon_file(file, record)
            declared = declared_size(content, file, record)
            if declared:
                check_image_size((h, w), [declared + ('the polygon file', )],
                                 results['img_path'], file, record)
            instances = []
            for k, mask_polygons in enumerate(content['polygons']):
                if not isinstance(mask_polygons, list):
                    raise BadRecordError(
                        f'mask {k}: expected a list of polygons, got '
                        f'{type(mask_polygons).__name__}', file, record)
                masks.append(
                    polygons_to_mask(mask_polygons, h, w, file, record, k))
                instances.append(len(mask_polygons))
            if 'num_instances' in content:
                instances = self._declared_instances(content, file, record)
        elif source['type'] == 'rle':
            for k, rle in enumerate(source['rles']):
                masks.append(decode_rle(rle, h, w, file, record, k))
        elif source['type'] == 'coco':
            file = source.get('file', file)
            names = source.get('names') or [
                f'mask {k}' for k in range(len(source['segmentations']))
            ]
            for seg, name in zip(source['segmentations'], names):
                masks.append(
                    coco_segmentation_to_mask(seg, h, w, file,
                                              f'{record} {name}'))
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
        results['mask_instance_counts'] = instances
        return results

    @staticmethod
    def _declared_instances(content: dict, file: str, record) -> list:
        """The file's own ``num_instances`` (one per mask, as the
        annotation pipeline writes it): a clipped instance can be several
        polygons, so the polygon count alone would call it a group."""
        declared = content['num_instances']
        if not (isinstance(declared, list)
                and len(declared) == len(content['polygons'])
                and all(isinstance(n, int) and not isinstance(n, bool)
                        and n > 0 for n in declared)):
            raise BadRecordError(
                '"num_instances" must list one positive integer per mask '
                f'({len(content["polygons"])}), got {declared!r}', file,
                record)
        return list(declared)

    @staticmethod
    def _read_polygon_file(path: str, record) -> dict:
        content = read_json(path, 'polygon file', record)
        if not isinstance(content, dict) or 'polygons' not in content:
            raise BadRecordError('polygon file has no "polygons" list', path,
                                 record)
        if not isinstance(content['polygons'], list):
            raise BadRecordError('"polygons" must be a list (one entry per '
                                 '[SEG])', path, record)
        return content


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
