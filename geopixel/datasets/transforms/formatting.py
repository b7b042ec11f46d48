"""Turn a loaded sample into token ids, labels and model inputs."""
from typing import Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from geopixel.registry import TOKENIZERS, TRANSFORMS
from geopixel.structures import (SEG_TOKEN, GeoPixelDataSample,
                                 grounded_phrases)
from geopixel.utils import BadRecordError

from ..chat import CHAT_TEMPLATES, exact_labels, official_labels

LABEL_MODES = ('official', 'exact')


@TRANSFORMS.register_module()
class FormatChat(BaseTransform):
    """Render the conversation, tokenize it and build CE labels.

    Args:
        tokenizer: tokenizer config, e.g. ``dict(type=InternLM2Tokenizer,
            path='checkpoints/GeoPixel-7B')`` (built by ``TOKENIZERS``), or
            an object.
        template: chat template name (``'internlm2'``).
        label_mode: ``'official'`` reproduces the released recipe (which
            leaves the first answer token unsupervised); ``'exact'``
            supervises every answer token.
        bos_before_image: the official recipe puts the image before BOS in
            training and after it at inference; this sets
            ``image_token_index`` (1 if True, else 0).
        max_length: maximum image + text tokens (16384 officially); longer
            samples are bad records rather than silently truncated, because
            truncation can cut ``[SEG]`` tokens away from their masks.
        for_generation: render only the first question and the assistant
            prefix (no labels); the answer is kept as ``gt_answer``.
    """

    def __init__(self,
                 tokenizer,
                 template: str = 'internlm2',
                 label_mode: str = 'official',
                 bos_before_image: bool = False,
                 max_length: int = 16384,
                 for_generation: bool = False):
        if label_mode not in LABEL_MODES:
            raise ValueError(f'label_mode must be one of {LABEL_MODES}')
        if template not in CHAT_TEMPLATES:
            raise ValueError(f'unknown chat template {template!r}; known: '
                             f'{sorted(CHAT_TEMPLATES)}')
        self.tokenizer = TOKENIZERS.build(tokenizer)
        self.template = CHAT_TEMPLATES[template]
        self.label_mode = label_mode
        self.bos_before_image = bos_before_image
        self.max_length = max_length
        self.for_generation = for_generation
        tok, tpl = self.tokenizer, self.template
        self.seg_id = tok.token_id(SEG_TOKEN)
        self.end_of_turn_id = tok.token_id(tpl.end_of_turn_token)
        self.start_of_turn_id = tok.token_id(tpl.start_of_turn_token)
        self.assistant_prefix_ids = tok.encode(
            tpl.assistant_prefix, add_special_tokens=False)

    def transform(self, results: dict) -> dict:
        turns = results['conversations']
        record = results.get('record_id')
        file = results.get('ann_file')
        answers = ' '.join(t for r, t in turns if r == 'assistant')
        if self.for_generation:
            question = next(t for r, t in turns if r == 'user')
            text = self.template.prompt(question)
            results['gt_answer'] = answers
        else:
            text = self.template.render(turns)
        try:
            ids = self.tokenizer.encode(text, add_special_tokens=True)
        except Exception as exc:  # tokenizers raise many types
            raise BadRecordError(
                f'cannot tokenize the conversation ({type(exc).__name__}: '
                f'{exc})', file, record) from None
        seg_positions = [i for i, t in enumerate(ids) if t == self.seg_id]
        if not self.for_generation and 'gt_masks' in results:
            n_masks = len(results['gt_masks'])
            if len(seg_positions) != n_masks:
                raise BadRecordError(
                    f'{len(seg_positions)} [SEG] token(s) after tokenization '
                    f'but {n_masks} mask(s)', file, record)
        n_image = int(results.get('num_image_tokens', 0))
        if n_image + len(ids) > self.max_length:
            raise BadRecordError(
                f'sequence of {n_image + len(ids)} tokens ({n_image} image + '
                f'{len(ids)} text) exceeds max_length={self.max_length}',
                file, record)
        results['input_ids'] = np.asarray(ids, dtype=np.int64)
        if not self.for_generation:
            results['labels'] = np.asarray(self._labels(ids), dtype=np.int64)
        results['seg_token_positions'] = seg_positions
        results['image_token_index'] = 1 if self.bos_before_image else 0
        results['conversation_text'] = text
        results['phrases'] = grounded_phrases(answers)
        return results

    def _labels(self, ids: Sequence[int]):
        eos = self.tokenizer.eos_token_id
        if self.label_mode == 'official':
            return official_labels(ids, self.end_of_turn_id, eos)
        return exact_labels(ids, self.start_of_turn_id, self.end_of_turn_id,
                            eos, self.assistant_prefix_ids)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(tokenizer={self.tokenizer!r}, '
                f'label_mode={self.label_mode!r}, bos_before_image='
                f'{self.bos_before_image}, for_generation='
                f'{self.for_generation})')


DEFAULT_META_KEYS = ('img_path', 'ori_shape', 'hd_grid', 'num_image_tokens',
                     'image_token_index', 'seg_token_positions', 'phrases',
                     'conversation_text', 'gt_answer', 'ref_exp', 'task',
                     'record_id',
                     'ann_file', 'sample_idx', 'ref_id', 'sent_id',
                     'ann_id', 'image_id', 'tile_meta', 'category_names',
                     'mask_instance_counts')


def _chw_uint8(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(
        2, 0, 1).contiguous()


@TRANSFORMS.register_module()
class PackGeoPixelInputs(BaseTransform):
    """Pack into ``{'inputs': {...}, 'data_samples': GeoPixelDataSample}``.

    ``inputs`` holds uint8 [3, H, W] tensors: ``hd_image`` (the tiled
    canvas, for the vision encoder) and ``image`` (the original, for the
    grounding encoder). Normalisation happens in the model's data
    preprocessor, on the device, in one batch.
    """

    def __init__(self, meta_keys: Optional[Sequence[str]] = None):
        self.meta_keys = tuple(meta_keys or DEFAULT_META_KEYS)

    def transform(self, results: dict) -> dict:
        inputs = {}
        if 'hd_image' in results:
            inputs['hd_image'] = _chw_uint8(results['hd_image'])
        if 'img' in results:
            inputs['image'] = _chw_uint8(results['img'])
        sample = GeoPixelDataSample(metainfo={
            k: results[k]
            for k in self.meta_keys if k in results
        })
        for key in ('input_ids', 'labels'):
            if key in results:
                sample.set_field(torch.from_numpy(results[key]), key)
        if 'gt_masks' in results:
            sample.gt_masks = torch.from_numpy(results['gt_masks'])
        if 'gt_labels' in results:
            sample.gt_labels = torch.from_numpy(results['gt_labels'])
        if 'gt_bboxes' in results:
            sample.gt_bboxes = torch.from_numpy(results['gt_bboxes'])
        return dict(inputs=inputs, data_samples=sample)


__all__ = ['FormatChat', 'PackGeoPixelInputs']
