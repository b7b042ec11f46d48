"""Run the pipeline over a COCO instance file and write GeoPixelD.

Layout (the official one, read by :class:`GeoPixelDDataset`)::

    OUT/GeoPixelD.json                 train records (other splits:
                                       GeoPixelD_{split}.json)
    OUT/GeoPixelD/{split}/{stem}.png   patches
    OUT/GeoPixelD/{split}/{stem}.json  per-image JSON: id, img, height,
                                       width, gcg_description, polygons,
                                       and ours: num_instances, phrases
                                       (level, category, count, position,
                                       marker, source annotation ids),
                                       markers, texts, annotation
    OUT/marked/{split}/{stem}.png      the marked patch the annotator saw
    OUT/settings_{split}.json          how the split was made
    OUT/summary.json                   counts per split

A patch is done when its per-image JSON exists (written last,
atomically), so an interrupted run resumes where it stopped; a run with
other settings into the same folder is refused.
"""
import hashlib
import json
import os
import os.path as osp
import time
from typing import Callable, Dict, List, Optional

import numpy as np

from geopixel.datasets.chat import GCG_QUESTION
from geopixel.utils import BadRecordError, read_json
from geopixel.utils.files import atomic_write, write_png
from .backends.base import AnnotatorError
from .patching import CocoPatchSource
from .pipeline import (AnnotationPipeline, PatchAnnotation, PatchObject,
                       integer_polygons, rasterise)



def records_name(split: str) -> str:
    return 'GeoPixelD.json' if split == 'train' else \
        f'GeoPixelD_{split}.json'


def _digest(settings: dict) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def patch_objects(patch, categories: Dict[int, str],
                  pipeline: AnnotationPipeline):
    """``(objects, lost)``: the patch's instances as :class:`PatchObject`
    (integer polygons and masks), and the source ids of instances that
    rounding to integer pixels leaves without area."""
    height, width = patch.image.shape[:2]
    objects, lost = [], []
    for inst in patch.instances:
        polygons = integer_polygons(inst.polygons, height, width)
        if not polygons:
            lost.append(inst.ann_id)
            continue
        objects.append(
            PatchObject(inst.ann_id,
                        pipeline.text_name(categories[inst.category_id]),
                        polygons, rasterise(polygons, height, width)))
    return objects, lost


def per_image_json(record_id: int, rel_image: str, height: int, width: int,
                   annotation: PatchAnnotation, extra: dict) -> dict:
    return dict(
        id=record_id,
        img=rel_image,
        height=height,
        width=width,
        gcg_description=annotation.description,
        polygons=[p.polygons for p in annotation.phrases],
        num_instances=[p.num_instances for p in annotation.phrases],
        phrases=[p.record() for p in annotation.phrases],
        markers=[dict(number=m.number, x=m.x, y=m.y, small=m.small,
                      box=list(m.box())) for m in annotation.markers],
        texts=annotation.texts,
        annotation=dict(annotation.info, **extra))


def annotate_coco(pipeline: AnnotationPipeline,
                  source: CocoPatchSource,
                  out_dir: str,
                  split: str = 'train',
                  skip_empty: bool = True,
                  resume: bool = True,
                  progress: Optional[Callable] = None,
                  num_workers: int = 1,
                  path_prefix: str = '') -> dict:
    """Annotate every patch of ``source`` into ``out_dir``; returns the
    split's summary (also merged into ``out_dir/summary.json``).

    ``num_workers`` > 1 annotates that many patches at once in threads:
    for served models, whose latency, not this process, bounds the rate
    (a local transformers model runs one request at a time anyway). The
    output is the same as with one worker, in the same order.

    ``path_prefix`` goes before the paths written into the records and
    the per-image JSONs: ``'data/'`` gives the release's own paths
    (``data/GeoPixelD/train/...``), for the official trainer run from the
    folder above ``out_dir`` renamed ``data``; our reader accepts both.
    """
    if num_workers < 1:
        raise ValueError(f'num_workers must be >= 1, got {num_workers}')
    if not split or '/' in split or split.startswith('.'):
        raise ValueError(f'split must be a plain name, got {split!r}')
    start = time.time()
    split_dir = osp.join(out_dir, 'GeoPixelD', split)
    marked_dir = osp.join(out_dir, 'marked', split)
    os.makedirs(split_dir, exist_ok=True)
    os.makedirs(marked_dir, exist_ok=True)
    settings = dict(pipeline=pipeline.settings(),
                    source=dict(ann_file=osp.abspath(source.ann_file),
                                patch_size=source.patch_size,
                                stride=source.stride,
                                min_area=source.min_area,
                                small_images=source.small_images,
                                split=source.split),
                    skip_empty=skip_empty, path_prefix=path_prefix)
    digest = _digest(settings)
    settings_file = osp.join(out_dir, f'settings_{split}.json')
    if osp.isfile(settings_file):
        before = read_json(settings_file, 'settings file')
        if before.get('digest') != digest:
            raise BadRecordError(
                f'this folder holds a {split!r} split made with other '
                'settings (pipeline, backends or source); resuming would '
                'mix them. Use another output folder, or delete '
                f'{split_dir} and this file to start over', settings_file)
        if not resume:
            raise BadRecordError(
                f'the {split!r} split exists; pass resume to continue it or '
                'use another output folder', settings_file)
    else:
        atomic_write(json.dumps(dict(digest=digest, settings=settings),
                                indent=1, default=str), settings_file)

    records: List[dict] = []
    totals = dict(source_images=len(source), patches=0, annotated=0,
                  resumed=0, empty_skipped=0, holistic=0, instance=0,
                  group=0, phrases=0, objects=0, uni_target=0,
                  multi_target=0, patch_instances=0, dropped_small=0,
                  lost_to_rounding=0, describe_retries=0,
                  description_fallbacks=0, paraphrase_calls=0,
                  paraphrase_fallbacks=0)
    filtered: Dict[str, int] = {}
    categories: Dict[str, int] = {}
    iterator = iter(source)
    if progress is not None:
        iterator = progress(iterator)
    def jobs():
        for _, entry, patches in iterator:
            for patch in patches:
                totals['patches'] += 1
                totals['dropped_small'] += len(patch.dropped)
                totals['patch_instances'] += len(patch.instances)
                objects, lost = patch_objects(patch, source.categories,
                                              pipeline)
                totals['lost_to_rounding'] += len(lost)
                if not objects and skip_empty:
                    totals['empty_skipped'] += 1
                    continue
                yield entry, patch, objects, lost

    def annotate(record_id, entry, patch, objects, lost):
        """The patch's per-image JSON: read back when a resumed run made
        it, else annotated and written (the JSON last)."""
        stem = osp.splitext(patch.name)[0]
        json_path = osp.join(split_dir, stem + '.json')
        if resume and osp.isfile(json_path):
            return read_json(json_path, 'per-image JSON'), True
        height, width = patch.image.shape[:2]
        image = np.ascontiguousarray(patch.image[..., :3])
        try:
            annotation = pipeline.annotate_patch(image, objects)
        except AnnotatorError as error:
            raise AnnotatorError(f'patch {patch.name} of '
                                 f'{entry["file_name"]}: {error}') from error
        except (ValueError, TypeError) as error:
            raise BadRecordError(f'cannot annotate patch {patch.name}: '
                                 f'{error}', source.ann_file,
                                 f'image {entry["file_name"]}') from error
        write_png(image, osp.join(split_dir, stem + '.png'))
        write_png(annotation.marked_image,
                  osp.join(marked_dir, stem + '.png'))
        w = patch.window
        content = per_image_json(
            record_id, f'{path_prefix}GeoPixelD/{split}/{stem}.png', height,
            width,
            annotation,
            dict(settings_digest=digest, source_file_name=entry['file_name'],
                 window=[w.y0, w.y1, w.x0, w.x1], lost_to_rounding=lost,
                 dropped_small=[a for a, _ in patch.dropped]))
        atomic_write(json.dumps(content), json_path)
        return content, False

    for content, resumed in _in_order(annotate, jobs(), num_workers):
        totals['resumed'] += int(resumed)
        _count(content, totals, filtered, categories)
        rel = osp.splitext(content['img'])[0]
        records.append(
            dict(id=len(records),
                 conversations=[
                     {'from': 'human', 'value': GCG_QUESTION},
                     {'from': 'bot', 'value': content['gcg_description']}],
                 image=rel + '.png', polygons=rel + '.json'))
    atomic_write(json.dumps(records), osp.join(out_dir, records_name(split)))
    summary = dict(totals, filtered=filtered, phrases_per_category=dict(
        sorted(categories.items(), key=lambda kv: -kv[1])),
        records_file=records_name(split),
        seconds=round(time.time() - start, 2))
    summary_file = osp.join(out_dir, 'summary.json')
    merged = read_json(summary_file, 'summary') if osp.isfile(
        summary_file) else {}
    merged[split] = summary
    atomic_write(json.dumps(merged, indent=1), summary_file)
    return summary


def _in_order(function, jobs, num_workers: int):
    """``function(index, *job)`` for each job, results in job order; with
    several workers at most ``2 * num_workers`` jobs are in flight, so a
    large source is never held in memory."""
    if num_workers == 1:
        for index, job in enumerate(jobs):
            yield function(index, *job)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    pending = deque()
    with ThreadPoolExecutor(num_workers) as pool:
        try:
            for index, job in enumerate(jobs):
                pending.append(pool.submit(function, index, *job))
                if len(pending) >= 2 * num_workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _count(content: dict, totals: dict, filtered: dict,
           categories: dict) -> None:
    info = content.get('annotation', {})
    totals['annotated'] += 1
    totals['holistic'] += int(bool(content['texts'].get('holistic')))
    for phrase in content['phrases']:
        totals[phrase['level']] += 1
        totals['phrases'] += 1
        totals['objects'] += phrase['num_instances']
        kind = 'uni_target' if phrase['num_instances'] == 1 else \
            'multi_target'
        totals[kind] += 1
        categories[phrase['category']] = categories.get(
            phrase['category'], 0) + 1
    totals['describe_retries'] += info.get('describe_retries', 0)
    totals['description_fallbacks'] += len(
        info.get('description_fallbacks', []))
    totals['paraphrase_calls'] += info.get('paraphrase_attempts', 0)
    totals['paraphrase_fallbacks'] += int(
        bool(info.get('paraphrase_fallback')))
    for key, value in info.get('filtered', {}).items():
        filtered[key] = filtered.get(key, 0) + value


def validate_output(out_dir: str, split: str = 'train') -> int:
    """Read the split back with :class:`GeoPixelDDataset` and the mask
    loader, as training will, and check every record's phrases, masks and
    instance counts; returns the number of records. A problem is a
    :class:`BadRecordError` naming the file and record."""
    from geopixel.datasets import GeoPixelDDataset
    from geopixel.datasets.transforms import (LoadGroundingMasks,
                                              LoadImageRGB)
    from geopixel.structures import grounded_phrases
    dataset = GeoPixelDDataset(
        ann_file=osp.join(out_dir, records_name(split)), data_root=out_dir,
        pipeline=[dict(type=LoadImageRGB), dict(type=LoadGroundingMasks)],
        on_bad_record='raise', lazy_init=False)
    for index in range(len(dataset)):
        results = dataset[index]
        file = results['mask_source']['path']
        content = read_json(file, 'per-image JSON')
        answer = results['conversations'][-1][1]
        phrases = grounded_phrases(answer)
        wanted = [p['phrase'] for p in content['phrases']]
        if phrases != wanted:
            raise BadRecordError(
                f'the description grounds {phrases} but "phrases" lists '
                f'{wanted}', file, results['record_id'])
        counts = [p['num_instances'] for p in content['phrases']]
        if results['mask_instance_counts'] != counts:
            raise BadRecordError(
                f'the reader counts {results["mask_instance_counts"]} '
                f'instances per mask, "phrases" {counts}', file,
                results['record_id'])
    return len(dataset)
