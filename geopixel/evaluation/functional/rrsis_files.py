"""RRSIS-D prediction files, so any model's outputs score like ours.

A prediction folder holds one file per sample (every sentence of every
ref), keyed by REFER's ``sent_id`` (unique in a REFER dataset)::

    {sent_id}.png    one band, nonzero = foreground, at the image's
                     original size (what ``RRSISMetric(prediction_dir=...)``
                     and ``tools/test.py --out DIR`` write, as 0/255)
    {sent_id}.json   {"sent_id": ..., "pred_mask": COCO RLE}

A PNG is keyed by its file name, a JSON file by its ``sent_id``.
Duplicates (both a PNG and a JSON file for one sentence, or JSON files
naming the same ``sent_id``) and missing files follow
:mod:`geopixel.evaluation.functional.files`; the ground truth comes from
the RRSIS-D annotation files through
:class:`geopixel.datasets.RRSISDDataset`, its masks rasterised at the size
``instances.json`` gives (images are not decoded).
"""
import glob
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from geopixel.utils import BadRecordError, read_json
from .files import FolderReport, check_known_ids, json_type, pick_files
from .rle import decode_checked_rle
from .rrsis import THRESHOLDS, rrsis_scores, sample_intersection_union


def write_prediction_png(folder: str, sent_id, mask: np.ndarray) -> str:
    """``{sent_id}.png``: the binary mask as a 0/255 single-band PNG."""
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, f'{sent_id}.png')
    Image.fromarray(np.asarray(mask, bool).astype(np.uint8) * 255).save(path)
    return path


def _read_png(path: str, record: str, height: int,
              width: int) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(path) as img:
            if img.size != (width, height):
                raise BadRecordError(
                    f'mask is {img.size[0]}x{img.size[1]} (width x height) '
                    f'but the image is {width}x{height}', path, record)
            if len(img.getbands()) != 1:
                raise BadRecordError(
                    f'mask must have one band (nonzero = foreground), got '
                    f'mode {img.mode}', path, record)
            return np.asarray(img) != 0
    except (OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as exc:
        if isinstance(exc, BadRecordError):
            raise
        raise BadRecordError(f'not a readable mask image ({exc})', path,
                             record) from None


def read_prediction_json(path: str) -> dict:
    """A ``{sent_id, pred_mask}`` file, its structure checked."""
    content = read_json(path)
    if not isinstance(content, dict):
        raise BadRecordError(
            'a prediction file must hold a JSON object with "sent_id" and '
            f'"pred_mask"; it holds {json_type(content)}', path)
    for key in ('sent_id', 'pred_mask'):
        if key not in content:
            raise BadRecordError(f'prediction has no "{key}"', path)
    sent_id = content['sent_id']
    if not isinstance(sent_id, (int, str)) or isinstance(sent_id, bool):
        raise BadRecordError(
            f'"sent_id" must be an integer or a string, got '
            f'{json_type(sent_id)}', path)
    return content


def load_prediction_files(folder: str) -> Tuple[Dict[str, str],
                                                FolderReport]:
    """``{sent_id: file}`` by the duplicate rule, and the report."""
    pngs = sorted(glob.glob(osp.join(folder, '*.png')))
    jsons = sorted(glob.glob(osp.join(folder, '*.json')))
    if not pngs and not jsons:
        raise BadRecordError('no prediction files (*.png or *.json)', folder)
    entries = [(osp.splitext(osp.basename(p))[0], p) for p in pngs]
    entries += [(str(read_prediction_json(p)['sent_id']), p) for p in jsons]
    report = FolderReport(folder)
    return pick_files(entries, report), report


def read_prediction(path: str, sent_id: str, height: int,
                    width: int) -> np.ndarray:
    """The boolean mask stored in a prediction file, checked against the
    image size."""
    record = f'sent_id {sent_id}'
    if path.endswith('.png'):
        return _read_png(path, record, height, width)
    rle = read_prediction_json(path)['pred_mask']
    return decode_checked_rle(rle, height, width, path, record) > 0


def gt_samples(data_root: str, split: str, **dataset_kwargs) -> List[dict]:
    """Every sample of an RRSIS-D split, in dataset order: ``sent_id``
    (str), ``size`` (h, w from ``instances.json``), ``segmentation``,
    ``file`` and ``record``. Masks are rasterised later, one at a time."""
    from geopixel.datasets import RRSISDDataset
    dataset = RRSISDDataset(data_root=data_root, split=split, pipeline=[],
                            **dataset_kwargs)
    samples, seen = [], set()
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        file, record = info.get('ann_file'), info.get('record_id')
        sent_id = info.get('sent_id')
        if sent_id is None:
            raise BadRecordError('sentence has no sent_id (prediction files '
                                 'are named by it)', file, record)
        if str(sent_id) in seen:
            raise BadRecordError(f'sent_id {sent_id} appears twice in the '
                                 'split', file, record)
        seen.add(str(sent_id))
        source = info['mask_source']
        sizes = info.get('expected_sizes') or ()
        if not sizes:
            raise BadRecordError(
                f'{dataset.instances_file} gives no height/width for image '
                f'{info.get("image_id")}', file, record)
        if len(source['segmentations']) != 1:
            raise BadRecordError('an RRSIS sample needs exactly one mask',
                                 file, record)
        names = source.get('names') or ['mask 0']
        samples.append(dict(sent_id=str(sent_id), size=tuple(sizes[0][:2]),
                            segmentation=source['segmentations'][0],
                            file=source.get('file', file),
                            record=f'{record} {names[0]}'))
    return samples


def _gt_mask(sample: dict) -> np.ndarray:
    from geopixel.utils.masks import coco_segmentation_to_mask
    return coco_segmentation_to_mask(sample['segmentation'], *sample['size'],
                                     sample['file'], sample['record']) > 0


def score_prediction_folder(pred_dir: str,
                            samples: Sequence[dict],
                            resolution: Optional[int] = None,
                            thresholds: Sequence[float] = THRESHOLDS,
                            strict: bool = False
                            ) -> Tuple[Dict[str, float], FolderReport]:
    """RRSIS scores of a prediction folder against ``samples`` (see
    :func:`gt_samples`), the same computation as ``RRSISMetric``. A sample
    without a file is an empty prediction (reported; an error if
    ``strict``)."""
    files, report = load_prediction_files(pred_dir)
    ids = [s['sent_id'] for s in samples]
    check_known_ids(files, ids, pred_dir, 'sent_ids')
    report.missing = [i for i in ids if i not in files]
    report.raise_if_strict(strict)
    pairs = []
    for sample in samples:
        gt = _gt_mask(sample)
        path = files.get(sample['sent_id'])
        pred = (read_prediction(path, sample['sent_id'], *gt.shape)
                if path else np.zeros_like(gt))
        pairs.append(sample_intersection_union(pred, gt, resolution))
    return rrsis_scores(pairs, thresholds), report
