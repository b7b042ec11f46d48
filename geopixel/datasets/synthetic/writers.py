"""Write synthetic scenes in the GeoPixelD, RRSIS-D and iSAID layouts.

Output folder::

    geopixeld/GeoPixelD.json, GeoPixelD_test.json     conversation lists
    geopixeld/GeoPixelD/{train,test}/*.png|*.json     images + polygon JSONs
    rrsisd/rrsisd/refs(unc).p, rrsisd/rrsisd/instances.json
    rrsisd/images/rrsisd/JPEGImages/*.jpg
    isaid/annotations/instancesonly_filtered_{train,val}.json
    isaid/images/{train,val}/*.png
    tokenizer/                                          sentencepiece BPE
    meta.json                                           seed, sizes, counts

Beside REFER's keys, each synthetic ref records its ``target``
(``category``, ``colour``, ``size`` (None or ``large``/``small``) and
``position``) and each sentence its ``attributes`` (the words beside the
category it says: ``size``, ``colour``, ``position``) and ``unique_by``
(those of the shortest unique description of the target), which the refer
probes (:mod:`geopixel.evaluation.functional.refer_probes`) break scores
down by.

Paths inside GeoPixelD JSON start with ``data/``, as in the official release.
"""
import json
import os
import os.path as osp
import pickle
import shutil
import time
from typing import Callable, Dict, Optional

import cv2
import numpy as np

from geopixel.tokenizers.training import train_tokenizer

from ..chat import (
    GCG_INFERENCE_QUESTION,
    GCG_QUESTION,
    INTERNLM2_CHAT,
    RRSIS_ANSWER,
    RRSIS_QUESTION,
)
from ..isaid import ISAID_CATEGORY_IDS, ISAID_CLASSES
from .scene import SceneGenerator
from .text import (gcg_description, referring_expressions,
                   referring_sentences)


def gcg_split(index: int) -> str:
    """GeoPixelD / iSAID split of image ``index`` (4 of 5 go to train)."""
    return 'test' if index % 5 == 4 else 'train'


def rrsis_split(index: int) -> str:
    """RRSIS-D split of image ``index``: 70 / 10 / 20 like the real one."""
    r = index % 10
    return 'train' if r < 7 else ('val' if r == 7 else 'test')


def _write_rgb(path: str, image: np.ndarray, jpeg_quality: int = 95) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    params = ([cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
              if path.endswith('.jpg') else [])
    if not cv2.imwrite(path, image[:, :, ::-1], params):
        raise OSError(f'could not write {path}')


def _link_or_copy(src: str, dst: str) -> None:
    os.makedirs(osp.dirname(dst), exist_ok=True)
    if osp.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _dump_json(obj, path: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def generate_synthetic_dataset(out_dir: str,
                               num_images: int = 40,
                               size: int = 512,
                               seed: int = 0,
                               refs_per_image: int = 2,
                               vocab_size: int = 1000,
                               progress: Optional[Callable] = None) -> Dict:
    """Generate ``num_images`` scenes and write every layout.

    Image ``i`` depends only on ``(seed, i)``, so a larger dataset extends a
    smaller one with the same seed.

    Returns:
        A summary dict (also written to ``meta.json``).
    """
    start = time.time()
    generator = SceneGenerator(size, size)
    geo_records = {'train': [], 'test': []}
    isaid = {
        split: dict(images=[], annotations=[], categories=[])
        for split in ('train', 'val')
    }
    rrsis_images, rrsis_anns, refs = [], [], []
    texts = [
        INTERNLM2_CHAT.render([('user', GCG_QUESTION),
                               ('assistant', 'Sure.')]),
        INTERNLM2_CHAT.prompt(GCG_INFERENCE_QUESTION), RRSIS_ANSWER
    ]
    ann_id = 0
    iterator = range(num_images)
    if progress is not None:
        iterator = progress(iterator)
    for i in iterator:
        rng = np.random.default_rng([seed, i])
        scene = generator(rng)
        h, w = scene.image.shape[:2]
        stem = f'S{i:05d}_0_{h}_0_{w}'

        # GeoPixelD
        split = gcg_split(i)
        description, seg_groups = gcg_description(scene, rng)
        png = osp.join(out_dir, 'geopixeld', 'GeoPixelD', split, stem + '.png')
        _write_rgb(png, scene.image)
        rel = f'data/GeoPixelD/{split}/{stem}'
        polygons = [[scene.instances[k].polygon for k in group]
                    for group in seg_groups]
        _dump_json(
            dict(
                id=i,
                img=rel + '.png',
                gcg_description=description,
                polygons=polygons),
            osp.join(out_dir, 'geopixeld', 'GeoPixelD', split,
                     stem + '.json'))
        geo_records[split].append(
            dict(
                id=i,
                conversations=[
                    dict(**{'from': 'human'}, value=GCG_QUESTION),
                    dict(**{'from': 'bot'}, value=description)
                ],
                image=rel + '.png',
                polygons=rel + '.json'))
        texts.append(description)

        # iSAID (train/val like the source of GeoPixelD train/test)
        isaid_split = 'train' if split == 'train' else 'val'
        _link_or_copy(
            png, osp.join(out_dir, 'isaid', 'images', isaid_split,
                          stem + '.png'))
        coco = isaid[isaid_split]
        coco['images'].append(
            dict(id=i, file_name=stem + '.png', height=h, width=w))

        # RRSIS-D
        jpg_name = f'{i:05d}.jpg'
        _write_rgb(
            osp.join(out_dir, 'rrsisd', 'images', 'rrsisd', 'JPEGImages',
                     jpg_name), scene.image)
        rrsis_images.append(
            dict(id=i, file_name=jpg_name, height=h, width=w))
        inst_ann_ids = []
        for inst in scene.instances:
            ann_id += 1
            flat = [float(v) for xy in inst.polygon for v in xy]
            area = float(cv2.contourArea(np.asarray(inst.polygon, np.int32)))
            ann = dict(
                id=ann_id,
                image_id=i,
                category_id=ISAID_CATEGORY_IDS[inst.category],
                segmentation=[flat],
                area=area,
                bbox=[float(v) for v in inst.bbox],
                iscrowd=0)
            rrsis_anns.append(ann)
            coco['annotations'].append(dict(ann))
            inst_ann_ids.append(ann_id)
        order = rng.permutation(len(scene.instances))
        made = 0
        for k in order:
            if made >= refs_per_image:
                break
            sentences = referring_sentences(scene, int(k))
            if sentences is None:
                continue
            ref_id = len(refs)
            sents = []
            for sentence in sentences:
                sent_id = sum(len(r['sentences']) for r in refs) + len(sents)
                tokens = sentence['text'].split()
                # attributes / unique_by: what the expression says and
                # what makes it unique (the probes' expression types)
                sents.append(
                    dict(raw=sentence['text'], sent=' '.join(tokens),
                         tokens=tokens, sent_id=sent_id,
                         attributes=sentence['attributes'],
                         unique_by=sentence['unique_by']))
                texts.append(RRSIS_QUESTION.format(ref_exp=sentence['text']))
            inst = scene.instances[int(k)]
            refs.append(
                dict(
                    ref_id=ref_id,
                    ann_id=inst_ann_ids[int(k)],
                    image_id=i,
                    category_id=ISAID_CATEGORY_IDS[inst.category],
                    split=rrsis_split(i),
                    file_name=jpg_name,
                    sentences=sents,
                    sent_ids=[s['sent_id'] for s in sents],
                    target=dict(category=inst.category, colour=inst.colour,
                                size=inst.size_word,
                                position=scene.position_of(inst))))
            made += 1

    categories = [
        dict(id=ISAID_CATEGORY_IDS[n], name=n) for n in ISAID_CLASSES
    ]
    _dump_json(geo_records['train'],
               osp.join(out_dir, 'geopixeld', 'GeoPixelD.json'))
    _dump_json(geo_records['test'],
               osp.join(out_dir, 'geopixeld', 'GeoPixelD_test.json'))
    for split, coco in isaid.items():
        coco['categories'] = categories
        _dump_json(
            coco,
            osp.join(out_dir, 'isaid', 'annotations',
                     f'instancesonly_filtered_{split}.json'))
    _dump_json(
        dict(images=rrsis_images, annotations=rrsis_anns,
             categories=categories),
        osp.join(out_dir, 'rrsisd', 'rrsisd', 'instances.json'))
    refs_path = osp.join(out_dir, 'rrsisd', 'rrsisd', 'refs(unc).p')
    with open(refs_path + '.tmp', 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    os.replace(refs_path + '.tmp', refs_path)
    train_tokenizer(texts, osp.join(out_dir, 'tokenizer'), vocab_size)

    summary = dict(
        seed=seed,
        num_images=num_images,
        size=size,
        geopixeld=dict(
            train=len(geo_records['train']), test=len(geo_records['test'])),
        rrsisd=dict(
            refs=len(refs),
            sentences=sum(len(r['sentences']) for r in refs),
            **{
                s: sum(len(r['sentences']) for r in refs if r['split'] == s)
                for s in ('train', 'val', 'test')
            }),
        isaid=dict(
            train=len(isaid['train']['images']),
            val=len(isaid['val']['images']),
            instances=len(rrsis_anns)),
        seconds=round(time.time() - start, 2))
    _dump_json(summary, osp.join(out_dir, 'meta.json'))
    return summary


def write_scene(out_dir: str, seed: int, size: int = 256) -> Dict:
    """One scene for trying a model: ``scene.png`` plus ``scene.json`` (each
    instance's category, box and referring expressions) and
    ``expressions.txt`` (one unique expression per line).

    Draw it with a seed the training data did not use and it is held out.
    """
    scene = SceneGenerator(size, size)(np.random.default_rng([seed, 0]))
    os.makedirs(out_dir, exist_ok=True)
    _write_rgb(osp.join(out_dir, 'scene.png'), scene.image)
    objects = []
    for k, inst in enumerate(scene.instances):
        objects.append(dict(category=inst.category, bbox=inst.bbox,
                            expressions=referring_expressions(scene, k)
                            or []))
    summary = dict(seed=seed, size=size, objects=objects)
    _dump_json(summary, osp.join(out_dir, 'scene.json'))
    with open(osp.join(out_dir, 'expressions.txt'), 'w',
              encoding='utf-8') as f:
        f.writelines(e[0] + '\n' for e in
                     (o['expressions'] for o in objects) if e)
    return summary


def write_scene_geotiff(path: str,
                        size: int,
                        seed: int = 0,
                        tile: int = 1024,
                        crs: str = 'EPSG:32633',
                        origin=(500000.0, 4100000.0),
                        pixel_size: float = 0.5) -> None:
    """A ``size`` px square georeferenced RGB GeoTIFF (tiled, deflate),
    written block by block from synthetic ``tile`` px scenes, never whole:
    a large scene for trying windowed inference and GIS outputs."""
    from geopixel.gis.dependencies import require_raster
    rasterio = require_raster('writing a GeoTIFF')
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    generator = SceneGenerator(tile, tile)
    blocks = [
        generator(np.random.default_rng([seed, k])).image for k in range(4)
    ]
    profile = dict(driver='GTiff', width=size, height=size, count=3,
                   dtype='uint8', crs=crs, tiled=True, blockxsize=256,
                   blockysize=256, compress='deflate', BIGTIFF='IF_SAFER',
                   transform=from_origin(*origin, pixel_size, pixel_size))
    with rasterio.open(path, 'w', **profile) as dst:
        for i, y in enumerate(range(0, size, tile)):
            for j, x in enumerate(range(0, size, tile)):
                h, w = min(tile, size - y), min(tile, size - x)
                block = blocks[(i + j) % len(blocks)][:h, :w]
                dst.write(np.ascontiguousarray(block.transpose(2, 0, 1)),
                          window=Window(x, y, w, h))
