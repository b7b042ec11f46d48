"""Tiny GeoPixel for tests: component configs, a built model and a batch.

Every size comes from the packaged tiny model config
(``geopixel/configs/_base_/models/geopixel_tiny.py``): tests and projects
build tiny components through these functions instead of copying numbers,
so the config stays the one source of truth.
"""
import copy
import os.path as osp
from functools import lru_cache

from .toy_data import relocate

TINY_MODEL_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', '_base_',
    'models', 'geopixel_tiny.py')
COMPONENT_KINDS = ('tokenizer', 'vision_encoder', 'llm', 'grounding_encoder',
                   'mask_decoder')


@lru_cache(maxsize=1)
def _tiny_config():
    from mmengine.config import Config
    return Config.fromfile(TINY_MODEL_CONFIG)


def tiny_model_cfg(data_root=None):
    """A fresh copy of the tiny GeoPixel ``model`` config.

    ``data_root`` replaces ``data/synthetic`` in its paths (the tokenizer
    folder); see :func:`geopixel.testing.toy_dataset`.
    """
    model = copy.deepcopy(_tiny_config().model)
    return model if data_root is None else relocate(model, data_root)


def tiny_component_cfg(kind: str, data_root=None):
    """A fresh copy of one component's tiny config.

    ``kind`` is one of :data:`COMPONENT_KINDS`. Sizes the composite model
    fills in at build time (the vision projector's ``out_channels``, the
    decoder's ``embed_dim`` and ``image_size``) are not in it.
    """
    if kind not in COMPONENT_KINDS:
        raise ValueError(f'unknown component kind {kind!r}; choose one of '
                         f'{COMPONENT_KINDS}')
    return tiny_model_cfg(data_root)[kind]


def tiny_sam_cfgs():
    """SAM (v1) grounding encoder and mask decoder configs at tiny size.

    The packaged tiny model uses SAM2; this pair swaps it for SAM v1 at the
    same input size (assign both together, as ``geopixel_7b.py`` does).
    """
    image_size = tiny_component_cfg('grounding_encoder')['image_size']
    encoder = dict(
        type='SAMGroundingEncoder',
        variant='vit_b',
        image_size=image_size,
        overrides=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            global_attn_indexes=[1],
            output_channels=32,
            mlp_dim=64))
    decoder = dict(
        type='SAMMaskDecoder',
        decoder_overrides=dict(mlp_dim=64, num_attention_heads=4))
    return encoder, decoder


def get_config(path: str, data_root=None):
    """Load a config, its ``data/synthetic`` paths moved to ``data_root``."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    return cfg if data_root is None else relocate(cfg, data_root)


def tiny_model(cfg, seed: int = 0, **changes):
    """Build the model of ``cfg`` (a config holding ``model``, or a model
    config) with ``changes`` to its top-level keys.

    The random initialisation is seeded, so a test sees the same weights on
    every run.
    """
    import torch

    from geopixel.registry import MODELS
    model_cfg = copy.deepcopy(cfg['model'] if 'model' in cfg else cfg)
    model_cfg.update(changes)
    torch.manual_seed(seed)
    return MODELS.build(model_cfg)


def demo_data(cfg,
              split: str = 'train',
              num_samples: int = 2,
              pipeline=None) -> dict:
    """The first ``num_samples`` samples of ``cfg``'s ``split`` dataloader
    dataset, collated: the input of ``model.train_step`` / ``test_step``.

    ``pipeline`` names a pipeline of the config (e.g. ``'test_pipeline'``)
    to use instead of the dataset's own.
    """
    from mmengine.dataset import pseudo_collate

    from geopixel.registry import DATASETS
    dataset_cfg = copy.deepcopy(cfg[f'{split}_dataloader']['dataset'])
    if pipeline is not None:
        dataset_cfg['pipeline'] = cfg[pipeline]
    dataset = DATASETS.build(dataset_cfg)
    if len(dataset) < num_samples:
        raise ValueError(f'the {split} dataset has {len(dataset)} samples, '
                         f'fewer than the {num_samples} asked for')
    return pseudo_collate([dataset[i] for i in range(num_samples)])


def demo_batch(cfg, model, split: str = 'train', num_samples: int = 2,
               pipeline=None):
    """:func:`demo_data` through ``model``'s data preprocessor (in training
    mode for the train split): the input of ``model(**batch, mode=...)``."""
    return model.data_preprocessor(
        demo_data(cfg, split, num_samples, pipeline), split == 'train')
