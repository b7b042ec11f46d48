"""GeoPixelInferencer: ask a trained GeoPixel about your own images.

Built from a config and a checkpoint (any file ``tools/test.py`` reads,
loaded the same checked way) or from a built model, it reuses the config's
test pipeline minus the annotation loading (:mod:`.pipeline`). Each image
is loaded, tiled and encoded once (``GeoPixel.image_contexts``); every
question about it is tokenized by the config's chat step and answered by
``GeoPixel.respond``, which reuses the image prefix's KV cache, so N
questions cost the image once and a chat turn costs its new tokens only.
"""
import glob
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from torch import nn

from geopixel.datasets.chat import (GCG_INFERENCE_QUESTION, RRSIS_ANSWER,
                                    RRSIS_QUESTION, check_text)
from geopixel.registry import INFERENCERS, MODELS, TRANSFORMS
from geopixel.utils import BadRecordError

from .pipeline import InferencePipeline, find_chat_steps
from .results import InferenceResult

TASKS = ('gcg', 'refer', 'ask')
ANSWER_MODES = ('generate', 'teacher_forced')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp',
                    '.webp', '.jp2')


def list_images(inputs) -> list:
    """``inputs`` as a list of images: a folder gives its image files
    (by extension, sorted), a glob pattern its matches (sorted), a list
    stays a list, anything else is one image."""
    if isinstance(inputs, (str, os.PathLike)):
        path = os.fspath(inputs)
        if osp.isdir(path):
            files = sorted(
                osp.join(path, f) for f in os.listdir(path)
                if f.lower().endswith(IMAGE_EXTENSIONS)
                and osp.isfile(osp.join(path, f)))
            if not files:
                raise BadRecordError('no image files (' +
                                     ', '.join(IMAGE_EXTENSIONS) + ')',
                                     path)
            return files
        if glob.has_magic(path) and not osp.exists(path):
            files = sorted(p for p in glob.glob(path) if osp.isfile(p))
            if not files:
                raise BadRecordError('the pattern matches no file', path)
            return files
        return [path]
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    return [inputs]


def image_name(image, index: int) -> str:
    """A file's base name, else ``image_{index}``."""
    path = _path_of(image)
    return osp.basename(path) if path else f'image_{index}'


@INFERENCERS.register_module()
class GeoPixelInferencer(BaseInferencer):
    """Grounded answers and masks for images, from a trained GeoPixel.

    Args:
        model: a config (file path, ``Config`` or dict) to build the model
            from, or a built ``GeoPixel`` (then ``cfg`` gives the config
            whose test pipeline prepares the images).
        weights: a checkpoint to load (as ``tools/test.py`` loads it:
            ``geopixel.checkpoint.load_model_weights``).
        device: ``'cuda'``, ``'cpu'``...; by default CUDA when available.
        cfg: the config, when ``model`` is a built model.
        strict: the checkpoint must fit the model exactly (every key, every
            shape); False loads what fits (``load_report`` says the rest).
        trust_checkpoint: allow fully unpickling a checkpoint that a
            weights-only read refuses (only for files you vouch for).
        bands / stretch: override the image loader's band choice and
            stretch (see ``LoadImageRGB``).
        show_progress: a progress bar over images.
    """

    def __init__(self,
                 model,
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 cfg=None,
                 strict: bool = True,
                 trust_checkpoint: bool = False,
                 bands: Optional[Sequence[int]] = None,
                 stretch: Optional[str] = None,
                 show_progress: bool = True):
        self.strict = strict
        self.trust_checkpoint = trust_checkpoint
        self.bands = bands
        self.stretch = stretch
        self.load_report = None
        self._given_model = None
        if isinstance(model, nn.Module):
            if cfg is None:
                raise ValueError('a built model needs cfg=, the config whose '
                                 'test pipeline prepares the images')
            self._given_model, model = model, cfg
        if isinstance(model, (str, os.PathLike)):
            from geopixel.engine.runner_setup import load_config
            model = load_config(os.fspath(model))
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        super().__init__(model, weights, device, scope='geopixel',
                         show_progress=show_progress)

    # -- construction (BaseInferencer hooks) ------------------------------
    def _init_model(self, cfg, weights: Optional[str], device: str):
        model, self._given_model = self._given_model, None
        if model is None:
            model = MODELS.build(cfg.model)
        if weights is not None:
            from geopixel.checkpoint import load_model_weights
            self.load_report = load_model_weights(
                model, weights, strict=self.strict,
                trusted=self.trust_checkpoint)
        return model.to(device).eval()

    def _init_pipeline(self, cfg) -> InferencePipeline:
        pipeline = cfg.test_dataloader.dataset.pipeline
        chats = find_chat_steps(pipeline, cfg.get('test_pipeline'),
                                cfg.get('teacher_forced_test_pipeline'))
        if 'generate' not in chats:
            raise ValueError(
                'the config has no generation chat step (FormatChat with '
                'for_generation=True) in test_dataloader.dataset.pipeline, '
                'test_pipeline or teacher_forced_test_pipeline')
        self.chat_steps = {
            mode: TRANSFORMS.build(step)
            for mode, step in chats.items()
        }
        return InferencePipeline(pipeline, self.bands, self.stretch)

    def _init_collate(self, cfg):
        # GeoPixel's data preprocessor takes lists of samples
        return pseudo_collate

    def _init_visualizer(self, cfg):
        # overlays come from InferenceResult.overlay (no global Visualizer)
        return None

    # -- prompts ----------------------------------------------------------
    def question(self, task: str, prompt: Optional[str] = None) -> str:
        """The user turn of ``task``: the GeoPixelD description question
        (``gcg``), the RRSIS-D question about the expression ``prompt``
        (``refer``) or ``prompt`` itself (``ask``)."""
        if task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, got {task!r}')
        if task == 'gcg':
            if prompt:
                raise ValueError('task gcg asks the GeoPixelD question; '
                                 'use task ask for a question of your own')
            return GCG_INFERENCE_QUESTION
        if not prompt or not prompt.strip():
            raise ValueError(
                f'task {task} needs a prompt: ' +
                ('the expression of the object to segment'
                 if task == 'refer' else 'the question'))
        check_text(prompt, 'the prompt')
        if task == 'refer':
            return RRSIS_QUESTION.format(ref_exp=prompt.strip())
        return prompt

    def answer_mode(self, task: str, answer_mode: Optional[str]) -> str:
        """``refer`` forces the RRSIS-D answer when the model predicts
        teacher-forced (unless ``answer_mode`` says otherwise); everything
        else is generated."""
        if answer_mode is not None:
            if answer_mode not in ANSWER_MODES:
                raise ValueError(f'answer_mode must be one of '
                                 f'{ANSWER_MODES}, got {answer_mode!r}')
            if answer_mode == 'teacher_forced' and task != 'refer':
                raise ValueError('only task refer has an answer to force')
            return answer_mode
        if task == 'refer' and self.model.predict_mode == 'teacher_forced':
            return 'teacher_forced'
        return 'generate'

    def encode(self, num_image_tokens: int, question: str, mode: str,
               where: str, turns: Sequence = ()) -> Dict:
        """Token ids of one question (the chat step's, as the dataset's
        pipeline makes them), the image's place among them and the text.

        ``turns`` (earlier ``(role, text)`` chat turns) make the prompt the
        whole conversation (``ChatTemplate.prompt_after``). A prompt longer
        than the chat step's ``max_length`` is a :class:`BadRecordError`
        naming ``where`` and the lengths.
        """
        if mode not in self.chat_steps:
            raise ValueError(
                f'answer mode {mode} needs a FormatChat step with '
                f'for_generation={mode == "generate"} in the config '
                '(test_pipeline / teacher_forced_test_pipeline)')
        chat = self.chat_steps[mode]
        conversation = [('user', question)]
        if mode == 'teacher_forced':
            conversation.append(('assistant', RRSIS_ANSWER))
        results = dict(conversations=conversation,
                       num_image_tokens=num_image_tokens)
        try:
            if turns:
                text = chat.template.prompt_after(turns, question)
                ids = chat.tokenizer.encode(text, add_special_tokens=True)
                total = num_image_tokens + len(ids)
                if total > chat.max_length:
                    raise BadRecordError(
                        f'sequence of {total} tokens ({num_image_tokens} '
                        f'image + {len(ids)} text) exceeds max_length='
                        f'{chat.max_length}')
                results.update(input_ids=ids, conversation_text=text,
                               image_token_index=int(chat.bos_before_image))
            else:
                results = chat(results)
        except BadRecordError as err:
            raise BadRecordError(f'the prompt: {err.problem}',
                                 where) from None
        return dict(ids=torch.as_tensor(results['input_ids']),
                    image_token_index=int(results['image_token_index']),
                    text=results['conversation_text'])

    # -- images -----------------------------------------------------------
    def load(self, image, name: str, hd_num: Optional[int] = None) -> Dict:
        """Run the image part of the pipeline on one image: the packed
        sample, its RGB pixels and the seconds of ``load`` and
        ``tiling``. Any failure is a :class:`BadRecordError` naming the
        image."""
        where = _path_of(image) or name
        valid = image_path = None
        try:
            if _is_image_source(image):
                start = time.perf_counter()
                image_path = image.path
                image, valid = image.read()
                read_s = time.perf_counter() - start
            packed, timings = self.pipeline(image, name, hd_num)
        except BadRecordError:
            raise
        except (ValueError, OSError) as exc:
            raise BadRecordError(
                f'cannot prepare the image ({type(exc).__name__}: {exc})',
                where) from None
        if valid is not None:
            timings['load'] += read_s
        sample = packed['data_samples']
        rgb = packed['inputs']['image'].permute(1, 2, 0).numpy()
        return dict(packed=packed, rgb=rgb, timings=timings, where=where,
                    name=name, valid=valid,
                    image_path=image_path or sample.metainfo.get('img_path'),
                    num_image_tokens=int(
                        sample.metainfo.get('num_image_tokens', 0)))

    def contexts(self, loaded: Sequence[Dict]) -> list:
        """``ImageContext`` of each loaded image, encoded as one batch."""
        data = self.model.data_preprocessor(
            self.collate_fn([item['packed'] for item in loaded]), False)
        return self.model.image_contexts(data['inputs'],
                                         data['data_samples'])

    # -- answering --------------------------------------------------------
    def __call__(self,
                 inputs,
                 task: str = 'gcg',
                 prompt: Union[None, str, Sequence[str]] = None,
                 hd_num: Optional[int] = None,
                 batch_size: int = 1,
                 answer_mode: Optional[str] = None,
                 generation_cfg: Optional[dict] = None,
                 collect_errors: bool = False) -> List[InferenceResult]:
        """Answer ``task`` about each image of ``inputs``.

        Args:
            inputs: an image (path, H x W x 3 uint8 RGB array, PIL image),
                a list of them, a folder or a glob pattern.
            task: ``'gcg'``, ``'refer'`` or ``'ask'``.
            prompt: the expression (``refer``) or question (``ask``); a list
                asks each about every image, through one image encoding.
            hd_num: the tile budget for these images (default: the
                config's).
            batch_size: images encoded and decoded together.
            answer_mode: ``'generate'`` or ``'teacher_forced'`` (``refer``
                only); by default the model's ``predict_mode`` decides.
            generation_cfg: overrides of the model's ``generation_cfg``.
            collect_errors: return an image's or question's failure as a
                result with ``error`` set instead of raising.

        Returns:
            One :class:`InferenceResult` per image and prompt, image by
            image, prompts in order within an image.
        """
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        prompts = (list(prompt) if isinstance(prompt, (list, tuple)) else
                   [prompt])
        if not prompts:
            raise ValueError('prompt is an empty list: nothing to ask')
        mode = self.answer_mode(task, answer_mode)
        questions = [(p, self.question(task, p)) for p in prompts]
        images = list_images(inputs)
        results = []
        bar = self._progress(len(images))
        for start in range(0, len(images), batch_size):
            chunk = [(image, image_name(image, start + i))
                     for i, image in enumerate(images[start:start +
                                                      batch_size])]
            results.extend(
                self._answer_chunk(chunk, task, questions, mode, hd_num,
                                   generation_cfg, collect_errors))
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        return results

    def _progress(self, total: int):
        if not self.show_progress or total < 2:
            return None
        from tqdm import tqdm
        return tqdm(total=total, desc='images', unit='img')

    def _answer_chunk(self, chunk, task, questions, mode, hd_num,
                      generation_cfg, collect_errors) -> list:
        answers = {}  # (image index, question index) -> result
        timed = set()  # images whose image stages a result reports
        loaded = []
        for i, (image, name) in enumerate(chunk):
            try:
                loaded.append((i, self.load(image, name, hd_num)))
            except BadRecordError as err:
                if not collect_errors:
                    raise
                for j, (_, question) in enumerate(questions):
                    answers[i, j] = InferenceResult(
                        name=name, task=task, question=question,
                        image_path=_path_of(image), error=str(err))
        contexts = self.contexts([item for _, item in loaded]) if (
            loaded) else []
        for j, (prompt, question) in enumerate(questions):
            ready = []
            for (i, item), ctx in zip(loaded, contexts):
                try:
                    encoded = self.encode(item['num_image_tokens'], question,
                                          mode, item['where'])
                except BadRecordError as err:
                    if not collect_errors:
                        raise
                    answers[i, j] = InferenceResult(
                        name=item['name'], task=task, question=question,
                        image_path=item['image_path'], error=str(err))
                    continue
                ready.append((i, item, ctx, encoded))
            if not ready:
                continue
            responses = self.model.respond(
                [ctx for _, _, ctx, _ in ready],
                [e['ids'] for _, _, _, e in ready],
                [e['image_token_index'] for _, _, _, e in ready],
                teacher_forced=mode == 'teacher_forced',
                generation_cfg=generation_cfg)
            for (i, item, ctx, encoded), response in zip(ready, responses):
                answers[i, j] = self._result(item, ctx, response, task,
                                             question, prompt, mode,
                                             encoded['text'], i not in timed)
                timed.add(i)
        return [answers[i, j] for i in range(len(chunk))
                for j in range(len(questions))]

    def _result(self, item, ctx, response, task, question, prompt, mode,
                text, first_question) -> InferenceResult:
        timings = dict(response.timings)
        if first_question:
            timings.update(item['timings'])
            timings.update(ctx.timings)
        forced = mode == 'teacher_forced'
        return InferenceResult.build(
            name=item['name'], image_path=item['image_path'],
            image=item['rgb'], task=task, question=question, prompt=text,
            answer=RRSIS_ANSWER if forced else response.text,
            answer_mode=mode, phrases=response.phrases,
            mask_logits=response.masks, valid=item['valid'],
            ids=response.ids.tolist(), timings=timings,
            default_phrase=prompt if task == 'refer' else None)

    # -- conversations ----------------------------------------------------
    def session(self, image, hd_num: Optional[int] = None,
                generation_cfg: Optional[dict] = None) -> 'InferenceSession':
        """A conversation about one image, encoded once (see
        :class:`InferenceSession`)."""
        return InferenceSession(self, image, hd_num, generation_cfg)

    # -- scenes larger than the HD grid ------------------------------------
    def predict_scene(self,
                      image,
                      task: str = 'gcg',
                      prompt: Optional[str] = None,
                      window: int = 1024,
                      overlap: int = 128,
                      out_dir: Optional[str] = None,
                      stem: Optional[str] = None,
                      hd_num: Optional[int] = None,
                      answer_mode: Optional[str] = None,
                      generation_cfg: Optional[dict] = None,
                      nodata: Optional[float] = None,
                      geojson: bool = False,
                      tolerance: float = 1.0,
                      progress=None):
        """Answer ``task`` (``'gcg'`` or ``'refer'``) on a scene of any size,
        window by window (:func:`geopixel.apis.scene.run_scene`).

        ``image`` is opened with ``geopixel.gis.open_image_source`` (the
        inferencer's ``bands``/``stretch``, and ``nodata``): a GeoTIFF is
        read one window at a time. Each window is answered as one image
        (``hd_num``, ``answer_mode``, ``generation_cfg`` as for
        ``__call__``). With ``out_dir``, writes ``{stem}.json`` (the
        scene: windows, texts, objects or the mask as RLE crops, CRS and
        geotransform), ``{stem}_mask.tif`` (georeferenced like the image;
        ``refer``: the 0/1 mask written window by window as the run goes;
        ``gcg``: object ``i`` labelled ``i + 1``) and, with ``geojson``,
        ``{stem}.geojson`` (one feature per object, or the ``refer``
        mask). ``progress(done, total)`` follows the windows.

        Returns:
            The stitched :class:`~geopixel.apis.scene.SceneResult`.
        """
        from geopixel.gis import MaskRasterWriter, open_image_source

        from .geo import require_georeferenced
        from .scene import TASKS as SCENE_TASKS
        from .scene import WindowPrediction, run_scene
        if task not in SCENE_TASKS:
            raise ValueError(f'a scene takes task {" or ".join(SCENE_TASKS)}'
                             f', got {task!r}')
        mode = self.answer_mode(task, answer_mode)
        question = self.question(task, prompt)

        def predict_window(rgb):
            result, = self(rgb, task, prompt, hd_num, answer_mode=mode,
                           generation_cfg=generation_cfg)
            return WindowPrediction(result.answer,
                                    [o.phrase for o in result.objects],
                                    result.masks, result.timings)

        with open_image_source(image, self.bands, self.stretch or
                               'percentile', nodata) as src:
            if geojson:
                require_georeferenced(src)
            stem = stem or osp.splitext(image_name(image, 0))[0]
            mask_path = (osp.join(out_dir, f'{stem}_mask.tif')
                         if out_dir else None)
            if out_dir:
                os.makedirs(out_dir, exist_ok=True)

            def run(write_mask=None):
                return run_scene(src.width, src.height, src.read,
                                 predict_window, task, window, overlap,
                                 write_mask=write_mask, progress=progress)

            if mask_path and task == 'refer':
                with MaskRasterWriter(mask_path, src.width, src.height,
                                      src.transform, src.crs) as writer:
                    scene = run(writer.write)
            else:
                scene = run()
            if mask_path and task == 'gcg':
                dtype = ('uint16' if len(scene.objects) < 2**16 else
                         'uint32')
                with MaskRasterWriter(mask_path, src.width, src.height,
                                      src.transform, src.crs,
                                      dtype) as writer:
                    scene.write_labels(writer.write)
            if out_dir:
                self._write_scene(scene, src, question, out_dir, stem,
                                  geojson, tolerance, prompt)
        return scene

    @staticmethod
    def _write_scene(scene, src, question, out_dir, stem, geojson,
                     tolerance, prompt) -> None:
        from geopixel.gis import crs_name, write_geojson

        from .geo import pieces_feature
        summary = dict(
            image=src.path, question=question,
            crs=crs_name(src.crs) if src.crs is not None else None,
            transform=list(src.transform)[:6] if src.transform else None,
            **scene.to_json())
        with open(osp.join(out_dir, f'{stem}.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(summary, f, indent=1, ensure_ascii=False)
        if not geojson:
            return
        if scene.task == 'refer':
            features = [pieces_feature(scene.mask.pieces, prompt, 0,
                                       src.transform, src.crs, tolerance)]
        else:
            features = [
                pieces_feature(obj.pieces, obj.phrase, i, src.transform,
                               src.crs, tolerance,
                               dict(category=obj.category,
                                    windows=obj.windows))
                for i, obj in enumerate(scene.objects)
            ]
        write_geojson(osp.join(out_dir, f'{stem}.geojson'), features,
                      src.crs)

    # -- BaseInferencer's abstract steps ----------------------------------
    def visualize(self, inputs: list, preds: List[InferenceResult],
                  show: bool = False, **kwargs) -> list:
        """The overlay of each result (``InferenceResult.overlay``)."""
        return [r.overlay() for r in preds if r.ok]

    def postprocess(self, preds: List[InferenceResult], visualization=None,
                    return_datasample: bool = False, **kwargs) -> dict:
        """MMEngine's result dict: JSON-ready predictions and overlays."""
        return dict(predictions=[r.to_json() for r in preds],
                    visualization=visualization)


def _path_of(image) -> Optional[str]:
    """The file an input names, if any."""
    if _is_image_source(image):
        return image.path
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else None


def _is_image_source(image) -> bool:
    from geopixel.gis import ImageSource
    return isinstance(image, ImageSource)


class InferenceSession:
    """Questions and a chat about one image that is encoded once.

    ``ask`` answers independent questions: each starts from the cached
    image prefix. ``chat`` keeps a conversation: each turn's prompt is the
    whole conversation so far (``ChatTemplate.prompt_after``), and the
    model reuses what it already holds of it, so a turn costs its new
    tokens only. ``reset`` forgets the conversation (not the image).
    """

    def __init__(self, inferencer: GeoPixelInferencer, image,
                 hd_num: Optional[int] = None,
                 generation_cfg: Optional[dict] = None):
        self.inferencer = inferencer
        self.generation_cfg = generation_cfg
        self.item = inferencer.load(image, image_name(image, 0), hd_num)
        self.context = inferencer.contexts([self.item])[0]
        self.turns: List[tuple] = []
        self._image_timings_reported = False

    def ask(self, prompt: Optional[str] = None, task: str = 'ask',
            answer_mode: Optional[str] = None) -> InferenceResult:
        """One independent question (the conversation is not changed)."""
        inf = self.inferencer
        mode = inf.answer_mode(task, answer_mode)
        question = inf.question(task, prompt)
        encoded = inf.encode(self.item['num_image_tokens'], question, mode,
                             self.item['where'])
        return self._respond(encoded, task, question, prompt, mode)

    def chat(self, question: str) -> InferenceResult:
        """The next turn of the conversation."""
        inf = self.inferencer
        question = inf.question('ask', question)
        encoded = inf.encode(self.item['num_image_tokens'], question,
                             'generate', self.item['where'], self.turns)
        result = self._respond(encoded, 'chat', question, question,
                               'generate')
        self.turns += [('user', question), ('assistant', result.answer)]
        return result

    def reset(self) -> None:
        """Forget the conversation; the image stays encoded."""
        self.turns = []

    def _respond(self, encoded, task, question, prompt, mode):
        inf = self.inferencer
        response = inf.model.respond(
            [self.context], [encoded['ids']], encoded['image_token_index'],
            teacher_forced=mode == 'teacher_forced',
            generation_cfg=self.generation_cfg)[0]
        first = not self._image_timings_reported
        self._image_timings_reported = True
        return inf._result(self.item, self.context, response, task, question,
                           prompt, mode, encoded['text'], first)
