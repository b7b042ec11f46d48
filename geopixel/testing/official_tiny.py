"""The official tiny checkpoint's architecture as geopixel configs.

The parity fixtures (``fixtures/official_parity`` of the shared reference
data) hold a tiny checkpoint saved by the official implementation; these
builders give the geopixel model it loads into, for parity tests.
"""
import json
import os.path as osp

SAM2_TINY_OVERRIDES = dict(
    image_encoder=dict(
        trunk=dict(embed_dim=8, num_heads=1),
        neck=dict(
            d_model=32,
            backbone_channel_list=[64, 32, 16, 8],
            position_encoding=dict(num_pos_feats=32))))
CLIP_TINY = dict(
    hidden_size=16,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    projection_dim=32)


def llm_config(parity_dir: str) -> dict:
    """The InternLM2 settings of the fixture checkpoint's config.json."""
    with open(osp.join(parity_dir, 'checkpoint', 'config.json')) as f:
        values = json.load(f)
    keys = ('vocab_size', 'hidden_size', 'intermediate_size',
            'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
            'rms_norm_eps', 'rope_theta', 'rope_scaling',
            'max_position_embeddings')
    return {k: values[k] for k in keys}


def official_tiny_model(parity_dir: str, llm_type: str = 'FrozenLLMAdapter',
                        **kwargs):
    """GeoPixel with the fixture checkpoint loaded (every key must fit).

    ``kwargs`` go to :class:`GeoPixel` (e.g. ``generation_cfg``, or
    ``checkpoint=None, ixc_checkpoint=...`` to load it as IXC-2.5).
    """
    from geopixel.models.architectures import GeoPixel
    from geopixel.tokenizers import InternLM2Tokenizer
    ckpt = osp.join(parity_dir, 'checkpoint')
    return GeoPixel(
        tokenizer=dict(type=InternLM2Tokenizer, path=ckpt),
        vision_encoder=dict(type='CLIPVisionEncoder', clip_config=CLIP_TINY),
        # the training fixture ran partial LoRA with dropout p = 0
        llm=dict(
            type=llm_type,
            llm_config=llm_config(parity_dir),
            plora=dict(rank=256, alpha=256, dropout=0.0)),
        grounding_encoder=dict(
            type='SAM2GroundingEncoder',
            variant='hiera_t',
            overrides=SAM2_TINY_OVERRIDES),
        mask_decoder=dict(type='SAM2MaskDecoder'),
        **dict(dict(checkpoint=ckpt), **kwargs))
