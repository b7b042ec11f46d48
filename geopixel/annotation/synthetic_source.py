"""iSAID-style input for the pipeline from the synthetic scene generator:
large images and one COCO instance file per split, so the whole pipeline,
patching included, runs without a real dataset (tests, the demo,
``tools/annotate/annotate.py --synthetic``)."""
import json
import os
import os.path as osp
from typing import Dict

import numpy as np

from geopixel.utils.files import atomic_write, write_png


def write_synthetic_source(out_dir: str, num_images: int = 10,
                           size: int = 1000, seed: int = 0,
                           val_every: int = 5) -> Dict[str, dict]:
    """Write ``out_dir/{train,val}/S{i:05d}.png`` and
    ``out_dir/{train,val}.json`` (COCO polygons, iSAID categories);
    image ``i`` goes to val when ``i % val_every == val_every - 1``.
    Returns ``{split: {ann_file, image_dir, images, instances}}``."""
    from geopixel.datasets.isaid import ISAID_CATEGORY_IDS, ISAID_CLASSES
    from geopixel.datasets.synthetic.scene import SceneGenerator
    if num_images < 1 or size < 128:
        raise ValueError('need num_images >= 1 and size >= 128')
    generator = SceneGenerator(size, size)
    splits = {s: dict(images=[], annotations=[]) for s in ('train', 'val')}
    ann_id = 0
    for i in range(num_images):
        split = 'val' if i % val_every == val_every - 1 else 'train'
        scene = generator(np.random.default_rng([seed, i]))
        name = f'S{i:05d}.png'
        os.makedirs(osp.join(out_dir, split), exist_ok=True)
        write_png(scene.image, osp.join(out_dir, split, name))
        h, w = scene.image.shape[:2]
        splits[split]['images'].append(
            dict(id=i, file_name=name, height=h, width=w))
        for inst in scene.instances:
            ann_id += 1
            flat = [float(v) for xy in inst.polygon for v in xy]
            xs, ys = flat[0::2], flat[1::2]
            splits[split]['annotations'].append(
                dict(id=ann_id, image_id=i,
                     category_id=ISAID_CATEGORY_IDS[inst.category],
                     segmentation=[flat], iscrowd=0,
                     bbox=[min(xs), min(ys),
                           max(xs) - min(xs), max(ys) - min(ys)]))
    categories = [dict(id=ISAID_CATEGORY_IDS[n], name=n)
                  for n in ISAID_CLASSES]
    out = {}
    for split, coco in splits.items():
        if not coco['images']:
            continue
        ann_file = osp.join(out_dir, f'{split}.json')
        atomic_write(json.dumps(dict(coco, categories=categories)),
                     ann_file)
        out[split] = dict(ann_file=ann_file,
                          image_dir=osp.join(out_dir, split),
                          images=len(coco['images']),
                          instances=len(coco['annotations']))
    return out
