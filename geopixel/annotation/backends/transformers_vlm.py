"""An annotator that runs a local Hugging Face model from a folder.

Two kinds of folder are understood:

* a vision-language model (its config type is one
  ``AutoModelForImageTextToText`` knows, or its remote code maps that
  class), read with ``AutoProcessor`` and prompted through the processor's
  chat template with an ``{'type': 'image'}`` part: it answers every task;
* a text-only causal LM (``AutoTokenizer`` + ``AutoModelForCausalLM``),
  e.g. Llama-3.1-8B-Instruct for paraphrasing: it answers text-only
  requests and refuses ones with an image.

Nothing is downloaded (``local_files_only=True``). The folder is checked
when the backend is built, so a wrong path fails before a long run starts;
the weights load on the first request (or :meth:`load`), so building a
config, recording :meth:`settings` or a dry run stays cheap.
"""
import os.path as osp
import threading
from typing import Optional

from geopixel.registry import ANNOTATORS

from .base import AnnotationRequest, AnnotatorBackend, AnnotatorError

PROCESSOR_FILES = ('processor_config.json', 'preprocessor_config.json')
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json',
                   'tokenizer.model', 'vocab.json')


def _torch_dtype(dtype):
    """``'auto'``, a torch dtype or its name (``'bfloat16'``)."""
    import torch
    if dtype == 'auto' or isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).replace('torch.', ''), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"dtype must be 'auto' or a torch dtype name such "
                         f"as 'bfloat16', got {dtype!r}")
    return value


@ANNOTATORS.register_module()
class TransformersAnnotator(AnnotatorBackend):
    """Generates with a local vision-language model or text-only LLM.

    Args:
        model_path: the model folder (``config.json``, weights, tokenizer
            or processor files, a chat template).
        device: where the model runs (``'cpu'``, ``'cuda'``, ``'cuda:1'``).
        dtype: ``'auto'`` (the checkpoint's) or a torch dtype name.
        max_new_tokens: the answer length limit.
        do_sample: sample instead of greedy decoding.
        temperature: the sampling temperature, used when ``do_sample`` and
            for pipeline retries (below).
        seed: the sampling seed. Each request samples from
            ``seed + request.attempt`` under a forked RNG, so answers are
            reproducible and the global RNG is left alone.
        sample_on_retry: greedy decoding repeats itself, so a pipeline retry
            (``request.attempt > 0``) samples instead; ``False`` keeps
            greedy decoding for every attempt.
        trust_remote_code: run the folder's own model code (needed by
            models that ship it; read it first).
        chat_template: a Jinja template replacing the folder's, for
            folders without one.
        chat_template_kwargs: extra ``apply_chat_template`` arguments
            (e.g. ``dict(enable_thinking=False)``).
    """

    def __init__(self,
                 model_path: str,
                 device: str = 'cpu',
                 dtype='auto',
                 max_new_tokens: int = 256,
                 do_sample: bool = False,
                 temperature: float = 0.7,
                 seed: int = 0,
                 sample_on_retry: bool = True,
                 trust_remote_code: bool = False,
                 chat_template: Optional[str] = None,
                 chat_template_kwargs: Optional[dict] = None):
        model_path = osp.expanduser(str(model_path))
        if not osp.isdir(model_path):
            raise AnnotatorError(f'model folder {model_path} does not exist '
                                 '(TransformersAnnotator loads local folders '
                                 'only, nothing is downloaded)')
        if not osp.isfile(osp.join(model_path, 'config.json')):
            raise AnnotatorError(f'{model_path} has no config.json: it is '
                                 'not a Hugging Face model folder')
        if not any(
                osp.isfile(osp.join(model_path, name))
                for name in TOKENIZER_FILES + PROCESSOR_FILES):
            raise AnnotatorError(
                f'{model_path} has no tokenizer or processor files (none '
                f'of {", ".join(TOKENIZER_FILES + PROCESSOR_FILES)})')
        self.model_path = model_path
        self.device = device
        self.dtype = _torch_dtype(dtype)
        self.max_new_tokens = int(max_new_tokens)
        self.do_sample = bool(do_sample)
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.sample_on_retry = bool(sample_on_retry)
        self.trust_remote_code = bool(trust_remote_code)
        self.chat_template = chat_template
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.model = None
        self.processor = None  # AutoProcessor, or the tokenizer if text-only
        self.is_vision = None
        # one request at a time: the pipeline's workers share the model, and
        # the seeded RNG fork is process-wide
        self._lock = threading.Lock()

    def settings(self) -> dict:
        return dict(type=type(self).__name__, model_path=self.model_path,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=self.do_sample, temperature=self.temperature,
                    seed=self.seed, sample_on_retry=self.sample_on_retry,
                    dtype=str(self.dtype).replace('torch.', ''))

    # loading

    def load(self):
        """Reads the processor and weights (done by the first request)."""
        if self.model is not None:
            return self
        from transformers import AutoConfig
        kwargs = dict(local_files_only=True,
                      trust_remote_code=self.trust_remote_code)
        try:
            config = AutoConfig.from_pretrained(self.model_path, **kwargs)
        except Exception as error:
            raise AnnotatorError(f'cannot read {self.model_path}/config.json:'
                                 f' {error}') from error
        self.is_vision = _is_vision_language(config)
        if self.is_vision:
            self.processor = self._load_processor(kwargs)
            model_class = 'AutoModelForImageTextToText'
        else:
            self.processor = self._load_tokenizer(kwargs)
            model_class = 'AutoModelForCausalLM'
        if self.chat_template is not None:
            self.processor.chat_template = self.chat_template
        if not getattr(self.processor, 'chat_template', None):
            raise AnnotatorError(
                f'{self.model_path} has no chat template (chat_template.jinja'
                ' or tokenizer_config.json); give one as chat_template=...')
        import transformers
        try:
            model = getattr(transformers, model_class).from_pretrained(
                self.model_path, dtype=self.dtype, **kwargs)
        except Exception as error:
            raise AnnotatorError(
                f'cannot load the weights of {self.model_path} with '
                f'{model_class} (model_type {config.model_type!r}): '
                f'{error}') from error
        self.model = model.to(self.device).eval()
        return self

    def _load_processor(self, kwargs):
        from transformers import AutoProcessor
        try:
            processor = AutoProcessor.from_pretrained(self.model_path,
                                                      **kwargs)
        except Exception as error:
            raise AnnotatorError(
                f'{self.model_path} is a vision-language model but its '
                f'processor cannot be read: {error}') from error
        if getattr(processor, 'image_processor', None) is None:
            raise AnnotatorError(
                f'{self.model_path} is a vision-language model but has no '
                f'image processor (none of {", ".join(PROCESSOR_FILES)})')
        return processor

    def _load_tokenizer(self, kwargs):
        from transformers import AutoTokenizer
        try:
            return AutoTokenizer.from_pretrained(self.model_path, **kwargs)
        except Exception as error:
            raise AnnotatorError(f'cannot read the tokenizer of '
                                 f'{self.model_path}: {error}') from error

    # generation

    def messages(self, request: AnnotationRequest) -> list:
        """The chat for one request, in the form the template expects."""
        messages = []
        if self.is_vision:
            if request.system:
                messages.append(
                    dict(role='system',
                         content=[dict(type='text', text=request.system)]))
            content = [dict(type='text', text=request.prompt)]
            if request.image is not None:
                content.insert(0, dict(type='image'))
            messages.append(dict(role='user', content=content))
        else:
            if request.system:
                messages.append(dict(role='system', content=request.system))
            messages.append(dict(role='user', content=request.prompt))
        return messages

    def generate(self, request: AnnotationRequest) -> str:
        with self._lock:
            return self._generate(request)

    def _generate(self, request: AnnotationRequest) -> str:
        import torch
        self.load()
        where = f'{request.task} request to {self.model_path}'
        if request.image is not None and not self.is_vision:
            raise AnnotatorError(
                f'{where}: the model is text-only (no image processor, '
                f'model_type {self.model.config.model_type!r}) and cannot '
                'take an image; use a vision-language model for '
                'holistic, instance and group descriptions')
        try:
            text = self.processor.apply_chat_template(
                self.messages(request), add_generation_prompt=True,
                tokenize=False, **self.chat_template_kwargs)
        except Exception as error:
            raise AnnotatorError(f'{where}: the chat template failed: '
                                 f'{error}') from error
        if self.is_vision:
            images = None
            if request.image is not None:
                from PIL import Image
                images = [Image.fromarray(request.image)]
            inputs = self.processor(images=images, text=text,
                                    add_special_tokens=False,
                                    return_tensors='pt')
        else:
            inputs = self.processor(text, add_special_tokens=False,
                                    return_tensors='pt')
        inputs = inputs.to(self.device)
        if 'pixel_values' in inputs and self.model.dtype.is_floating_point:
            inputs['pixel_values'] = inputs['pixel_values'].to(
                self.model.dtype)
        sample = self.do_sample or (self.sample_on_retry
                                    and request.attempt > 0)
        options = dict(max_new_tokens=self.max_new_tokens, do_sample=sample)
        if sample:
            options['temperature'] = self.temperature
        devices = [] if self.device == 'cpu' else None
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(self.seed + request.attempt)
            output = self.model.generate(**inputs, **options)
        # decoder-only models echo the prompt; encoder-decoders do not
        prompt_length = 0 if getattr(self.model.config, 'is_encoder_decoder',
                                     False) else inputs['input_ids'].shape[1]
        new_tokens = output[0, prompt_length:]
        answer = self.processor.decode(new_tokens,
                                       skip_special_tokens=True).strip()
        if not answer:
            raise AnnotatorError(f'{where}: the model answered nothing '
                                 f'({len(new_tokens)} new tokens, all '
                                 'special)')
        return answer


def _is_vision_language(config) -> bool:
    """Whether ``AutoModelForImageTextToText`` reads this config."""
    from transformers.models.auto.modeling_auto import \
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    auto_map = getattr(config, 'auto_map', None) or {}
    return (config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
            or 'AutoModelForImageTextToText' in auto_map)
