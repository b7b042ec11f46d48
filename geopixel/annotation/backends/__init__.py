"""Annotator backends (the ANNOTATORS registry): who writes the text."""
from .base import (TASKS, AnnotationRequest, AnnotatorBackend,
                   AnnotatorError, encode_png, image_data_url)
from .template import TemplateAnnotator

__all__ = [
    'TASKS', 'AnnotationRequest', 'AnnotatorBackend', 'AnnotatorError',
    'encode_png', 'image_data_url', 'TemplateAnnotator'
]
from .openai_compatible import OpenAICompatibleAnnotator  # noqa: E402
from .transformers_vlm import TransformersAnnotator  # noqa: E402

__all__ += ['OpenAICompatibleAnnotator', 'TransformersAnnotator']
