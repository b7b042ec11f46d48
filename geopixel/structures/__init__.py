"""Data structures and the vocabulary shared by the data pipeline, the
model and the metrics."""
from .vocabulary import (GEOPIXEL_TOKENS, IGNORE_INDEX, PHRASE_END,
                         PHRASE_START, SEG_TOKEN, count_seg, glamm_caption,
                         glamm_phrases, grounded_phrases, phrase_category,
                         seg_phrases)

__all__ = [
    'GeoPixelDataSample', 'GEOPIXEL_TOKENS', 'IGNORE_INDEX', 'PHRASE_END',
    'PHRASE_START', 'SEG_TOKEN', 'count_seg', 'glamm_caption',
    'glamm_phrases', 'grounded_phrases', 'phrase_category', 'seg_phrases'
]


def __getattr__(name):
    # the data sample needs MMEngine; the vocabulary must not (the tokenizer
    # and the metrics' text rules import it)
    if name == 'GeoPixelDataSample':
        from .data_sample import GeoPixelDataSample
        return GeoPixelDataSample
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
