"""The config's test pipeline, split for inference.

A dataset pipeline runs once per sample: load, tile, tokenize, pack. The
inferencer runs its image part (load -> tile -> pack) once per image and
its chat step once per question, so the annotation loading goes, the image
loader takes what a user holds (a path, an array, a PIL image) and the chat
steps are kept apart. Every other step is kept as the config has it, so the
inferencer's samples equal the dataset's.
"""
import copy
import inspect
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from geopixel.datasets.transforms import (FormatChat, LoadGroundingMasks,
                                          LoadImageRGB,
                                          LoadInstanceAnnotations, TileImage)
from geopixel.datasets.transforms.image_io import tiff_band_count
from geopixel.registry import TILERS, TRANSFORMS
from geopixel.utils import BadRecordError

ANNOTATION_STEPS = (LoadGroundingMasks, LoadInstanceAnnotations)
# PIL modes of 8 bits per sample, which convert('RGB') keeps exact
PIL_8BIT_MODES = ('1', 'L', 'LA', 'P', 'PA', 'RGB', 'RGBA', 'RGBX', 'CMYK',
                  'YCbCr', 'La', 'RGBa')


class LoadInferenceImage(LoadImageRGB):
    """:class:`LoadImageRGB` for what a user holds in ``results['img']``.

    A path is decoded by ``LoadImageRGB``'s rules (pixel cap, bands,
    stretch), except that a single-band TIFF needs ``bands`` (a SAR band,
    a DEM or a panchromatic band is not a photograph: the user says how to
    show it, as the GIS reader asks). An array must be H x W x 3 uint8
    RGB; a PIL image must have 8 bits per sample (other images: pass the
    file's path, which the band and stretch rules read exactly).
    ``results['name']`` names the image in errors.
    """

    def transform(self, results: dict) -> dict:
        image = results.pop('img')
        name = results.get('name')
        if isinstance(image, (str, os.PathLike)):
            path = results['img_path'] = os.fspath(image)
            if self.bands is None and tiff_band_count(path) == 1:
                raise BadRecordError(
                    'a single-band raster: say how to show it, e.g. '
                    'bands=(1, 1, 1) (tools/infer.py --bands 1,1,1) for '
                    'grey', path, name)
            return super().transform(results)
        if isinstance(image, Image.Image):
            if image.mode not in PIL_8BIT_MODES:
                raise BadRecordError(
                    f'a PIL image of mode {image.mode!r} has more than 8 '
                    'bits per sample; pass the file path (decoded exactly '
                    'and stretched) or an H x W x 3 uint8 array', None, name)
            image = np.asarray(image.convert('RGB'))
        elif not isinstance(image, np.ndarray):
            raise BadRecordError(
                'an image must be a file path, an H x W x 3 uint8 RGB '
                f'array or a PIL image, not {type(image).__name__}', None,
                name)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise BadRecordError(
                f'an image array must be H x W x 3 uint8 RGB, got shape '
                f'{image.shape} of {image.dtype}', None, name)
        if not image.size:
            raise BadRecordError(f'the image array is empty ({image.shape})',
                                 None, name)
        results['img'] = np.array(image, dtype=np.uint8, order='C')
        results['ori_shape'] = results['img_shape'] = image.shape[:2]
        return results


def _step_class(step: dict):
    kind = step['type']
    return TRANSFORMS.get(kind) if isinstance(kind, str) else kind


def _subclass(cls, bases) -> bool:
    return isinstance(cls, type) and issubclass(cls, bases)


def find_chat_steps(*pipelines: Optional[Sequence[dict]]) -> Dict[str, dict]:
    """The ``FormatChat`` step configs of ``pipelines``, by mode:
    ``'generate'`` (``for_generation=True``) and ``'teacher_forced'``; the
    first pipeline holding a mode wins."""
    found = {}
    for pipeline in pipelines:
        for step in pipeline or ():
            if _subclass(_step_class(step), FormatChat):
                mode = ('generate' if step.get('for_generation', False)
                        else 'teacher_forced')
                found.setdefault(mode, copy.deepcopy(step))
    return found


class InferencePipeline:
    """The image part of a test pipeline, built per ``hd_num``.

    Args:
        pipeline: the test pipeline's step configs. ``LoadImageRGB`` becomes
            :class:`LoadInferenceImage` with the same settings; annotation
            loading and the chat step are dropped; the rest stays in order.
        bands / stretch: override the loader's settings when given.
    """

    def __init__(self, pipeline: Sequence[dict],
                 bands: Optional[Sequence[int]] = None,
                 stretch: Optional[str] = None):
        self.steps: List[dict] = []
        self._tiling: Optional[int] = None
        for step in pipeline:
            cls = _step_class(step)
            if _subclass(cls, ANNOTATION_STEPS + (FormatChat, )):
                continue
            step = copy.deepcopy(dict(step))
            if _subclass(cls, LoadImageRGB):
                step['type'] = LoadInferenceImage
                if bands is not None:
                    step['bands'] = tuple(bands)
                if stretch is not None:
                    step['stretch'] = stretch
            elif _subclass(cls, TileImage):
                self._tiling = len(self.steps)
            self.steps.append(step)
        if not any(_subclass(_step_class(s), LoadInferenceImage)
                   for s in self.steps):
            raise ValueError('the test pipeline has no LoadImageRGB step '
                             'to read images with')
        self._built: Dict[Optional[int], list] = {}

    def __call__(self, image, name: str,
                 hd_num: Optional[int] = None) -> Tuple[dict, dict]:
        """One packed sample (``inputs``, ``data_samples``) of ``image``,
        and the seconds spent loading it and on the other steps
        (``load``, ``tiling``)."""
        if hd_num not in self._built:
            self._built[hd_num] = [
                TRANSFORMS.build(s) for s in self._steps(hd_num)
            ]
        results = dict(img=image, name=name)
        timings = dict(load=0.0, tiling=0.0)
        for transform in self._built[hd_num]:
            start = time.perf_counter()
            results = transform(results)
            key = ('load' if isinstance(transform, LoadInferenceImage) else
                   'tiling')
            timings[key] += time.perf_counter() - start
        return results, timings

    def _steps(self, hd_num: Optional[int]) -> List[dict]:
        if hd_num is None:
            return self.steps
        if self._tiling is None:
            raise ValueError('hd_num needs a TileImage step in the test '
                             'pipeline')
        if not isinstance(hd_num, int) or hd_num < 1:
            raise ValueError(f'hd_num must be a positive int, got {hd_num!r}')
        steps = copy.deepcopy(self.steps)
        tiler = steps[self._tiling]['tiler']
        kind = tiler.get('type') if isinstance(tiler, dict) else None
        cls = TILERS.get(kind) if isinstance(kind, str) else kind
        if cls is None or 'hd_num' not in inspect.signature(cls).parameters:
            raise ValueError(
                f'the tiler {tiler!r} takes no hd_num; set its grid in the '
                'config instead')
        tiler['hd_num'] = hd_num
        return steps
