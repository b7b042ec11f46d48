"""Deterministic synthetic remote-sensing data for demos and tests."""
from .scene import Instance, Scene, SceneGenerator
from .text import (ATTRIBUTES, gcg_description, referring_expressions,
                   referring_sentences)
from .writers import (
                      gcg_split,
                      generate_synthetic_dataset,
                      rrsis_split,
                      train_tokenizer,
                      write_scene,
                      write_scene_geotiff,
)

__all__ = [
    'Instance', 'Scene', 'SceneGenerator', 'gcg_description',
    'referring_expressions', 'referring_sentences', 'ATTRIBUTES',
    'generate_synthetic_dataset', 'gcg_split',
    'rrsis_split', 'train_tokenizer', 'write_scene', 'write_scene_geotiff'
]
