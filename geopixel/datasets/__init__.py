"""Datasets (DATASETS registry), chat formatting and the data pipeline."""
from .base import GeoPixelBaseDataset, unwrap_datasets
from .chat import (
                   GCG_INFERENCE_QUESTION,
                   GCG_QUESTION,
                   INTERNLM2_CHAT,
                   RRSIS_ANSWER,
                   RRSIS_QUESTION,
                   ChatTemplate,
                   official_labels,
)
from .geopixeld import GeoPixelDDataset
from .isaid import ISAID_CLASSES, ISAID_PHRASES, ISAIDDataset
from .rrsisd import RRSISDDataset
from .transforms import (
                   FormatChat,
                   LoadGroundingMasks,
                   LoadImageRGB,
                   LoadInstanceAnnotations,
                   PackGeoPixelInputs,
                   TileImage,
)

__all__ = [
    'GeoPixelBaseDataset', 'unwrap_datasets', 'GeoPixelDDataset',
    'RRSISDDataset', 'ISAIDDataset', 'ISAID_CLASSES', 'ISAID_PHRASES',
    'ChatTemplate', 'INTERNLM2_CHAT', 'GCG_QUESTION', 'GCG_INFERENCE_QUESTION',
    'RRSIS_QUESTION', 'RRSIS_ANSWER', 'official_labels',
    'LoadImageRGB', 'LoadGroundingMasks', 'LoadInstanceAnnotations',
    'TileImage', 'FormatChat', 'PackGeoPixelInputs'
]
