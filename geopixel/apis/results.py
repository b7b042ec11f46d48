"""What the inferencer returns for one image and question, and its files."""
import json
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from geopixel.structures import seg_phrases

TIMING_KEYS = ('load', 'tiling', 'vision', 'grounding', 'prefill', 'decode',
               'masks')


def safe_name(text: str, limit: int = 40) -> str:
    """``text`` as a file-name part: letters, digits, ``-`` and ``_``."""
    return re.sub(r'[^A-Za-z0-9_-]+', '_', text).strip('_')[:limit] or 'mask'


@dataclass
class GroundedMask:
    """The mask of one ``[SEG]``, described without its pixels.

    Attributes:
        index: the ``[SEG]``'s position among the answer's ``[SEG]``s.
        phrase: the phrase it grounds (see :meth:`InferenceResult.build`).
        rle: COCO RLE (compressed, ``counts`` as str) of the mask.
        bbox: ``[x, y, w, h]`` in pixels; zeros for an empty mask.
        area: pixels in the mask.
    """
    index: int
    phrase: str
    rle: dict
    bbox: List[int]
    area: int

    @classmethod
    def describe(cls, index: int, phrase: str,
                 mask: np.ndarray) -> 'GroundedMask':
        from geopixel.evaluation.functional.gcg import rle_area, rle_bbox
        from geopixel.utils import encode_rle
        rle = encode_rle(mask)
        return cls(index, phrase, rle, [int(v) for v in rle_bbox(rle)],
                   int(rle_area(rle)))

    def to_json(self) -> dict:
        return dict(index=self.index, phrase=self.phrase, rle=self.rle,
                    bbox=self.bbox, area=self.area)


@dataclass
class InferenceResult:
    """One answer about one image.

    Attributes:
        name: the image's name (file name, or ``image_{i}`` for arrays).
        image_path: the file read, or None for arrays and PIL images.
        size: ``(h, w)`` of the image (masks have this size).
        task: ``'gcg'``, ``'refer'``, ``'ask'`` or ``'chat'``.
        question: the user turn (the filled prompt).
        prompt: the text the model read, in the chat template (for a chat
            turn, the whole conversation so far).
        answer: the generated answer (end-of-turn removed), or the given
            answer in teacher-forced mode.
        answer_mode: ``'generate'`` or ``'teacher_forced'``.
        phrases: the answer's ``<p> ... </p>`` phrases (GLaMM's rule, what
            :class:`~geopixel.evaluation.GCGMetric` reads).
        masks: bool [n, h, w], one per ``[SEG]`` in order (logits > 0).
        objects: per mask: phrase, RLE, box and area.
        timings: seconds per stage (:data:`TIMING_KEYS`); the image stages
            (load, tiling, vision, grounding) count on the first question
            of an image only, and a batch's LLM stages are the batch's.
        ids: generated token ids (empty when teacher forced).
        image: the decoded RGB image (H x W x 3 uint8), for overlays.
        error: why this image or question failed; then nothing else is
            set.
    """
    name: str
    image_path: Optional[str] = None
    size: Tuple[int, int] = (0, 0)
    task: str = ''
    question: str = ''
    prompt: str = ''
    answer: str = ''
    answer_mode: str = 'generate'
    phrases: List[str] = field(default_factory=list)
    masks: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 0, 0), bool))
    objects: List[GroundedMask] = field(default_factory=list)
    timings: Dict[str, float] = field(default_factory=dict)
    ids: List[int] = field(default_factory=list)
    image: Optional[np.ndarray] = field(default=None, repr=False)
    error: Optional[str] = None

    @classmethod
    def build(cls, name: str, image_path: Optional[str], image: np.ndarray,
              task: str, question: str, prompt: str, answer: str,
              answer_mode: str,
              phrases: Sequence[str], mask_logits, ids: Sequence[int],
              timings: Dict[str, float],
              default_phrase: Optional[str] = None,
              valid: Optional[np.ndarray] = None) -> 'InferenceResult':
        """A result from a model answer. Mask k is labelled by the phrase
        of the k-th ``[SEG]`` (:func:`seg_phrases`), else by
        ``default_phrase`` (the expression of a referring question), else
        ``mask k``. Pixels where ``valid`` is False (nodata) are in no
        mask."""
        masks = (mask_logits > 0).cpu().numpy().astype(bool)
        if valid is not None:
            masks &= valid[None]
        own = seg_phrases(answer)
        objects = []
        for k, mask in enumerate(masks):
            phrase = own[k] if k < len(own) else None
            objects.append(GroundedMask.describe(
                k, phrase or default_phrase or f'mask {k}', mask))
        return cls(
            name=name, image_path=image_path, size=tuple(image.shape[:2]),
            task=task, question=question, prompt=prompt, answer=answer,
            answer_mode=answer_mode, phrases=list(phrases), masks=masks,
            objects=objects,
            timings={k: float(timings.get(k, 0.0)) for k in TIMING_KEYS},
            ids=[int(i) for i in ids], image=image)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        """Everything but the arrays (masks travel as RLE)."""
        if self.error is not None:
            return dict(name=self.name, image=self.image_path,
                        task=self.task, question=self.question,
                        error=self.error)
        return dict(
            name=self.name, image=self.image_path, height=self.size[0],
            width=self.size[1], task=self.task, question=self.question,
            prompt=self.prompt, answer=self.answer,
            answer_mode=self.answer_mode, phrases=self.phrases, ids=self.ids,
            masks=[o.to_json() for o in self.objects],
            timings=self.timings)

    def overlay(self, alpha: float = 0.45) -> np.ndarray:
        """The image with each mask in its phrase's colour, outlined, and a
        legend (:func:`~geopixel.visualization.draw_grounded_masks`)."""
        from geopixel.visualization import draw_grounded_masks
        return draw_grounded_masks(
            self.image, self.masks, [o.phrase for o in self.objects],
            alpha=alpha, title=self.name)

    def save(self, out_dir: str, stem: Optional[str] = None) -> List[str]:
        """Write ``{stem}.json``, ``{stem}_mask{k}_{phrase}.png`` (0/255)
        per mask and ``{stem}_overlay.png`` into ``out_dir``; returns the
        paths. ``stem`` defaults to the name without its extension."""
        from PIL import Image
        if self.error is not None:
            raise ValueError(f'{self.name} has no result to save: '
                             f'{self.error}')
        stem = stem or osp.splitext(self.name)[0]
        os.makedirs(out_dir, exist_ok=True)
        paths = [osp.join(out_dir, f'{stem}.json')]
        with open(paths[0], 'w', encoding='utf-8') as f:
            json.dump(self.to_json(), f, indent=1, ensure_ascii=False)
        for obj, mask in zip(self.objects, self.masks):
            path = osp.join(
                out_dir, f'{stem}_mask{obj.index}_{safe_name(obj.phrase)}'
                '.png')
            Image.fromarray(mask.astype(np.uint8) * 255).save(path)
            paths.append(path)
        paths.append(osp.join(out_dir, f'{stem}_overlay.png'))
        Image.fromarray(self.overlay()).save(paths[-1])
        return paths
