# GeoPixel at CPU size: the real classes, tiny widths, random init.
# Same structure as geopixel_7b.py: CLIP (2 layers, width 32) on 224 px
# tiles with the 2x2 merge (64 tokens per tile instead of 400: the LLM's
# sequence shrinks from 841 to 145 image tokens at hd 1), InternLM2 (2
# layers, width 128, GQA 4/2) with partial LoRA and LoRA, SAM2 Hiera-T
# (width 16) at 256 px, SAM2 mask decoder. The tilers of the data pipeline
# must cut tiles of the same size: `tiny_tile` comes from the tiler
# fragment the synthetic pipelines use.
# With random weights there is nothing to preserve in the grounding encoder,
# so it trains here (the paper freezes a pretrained one), and the mask
# decoder has a locator (below).
from mmengine.config import read_base

from geopixel.models.architectures import GeoPixel
from geopixel.models.decoders import SAM2MaskDecoder
from geopixel.models.grounding_encoders import SAM2GroundingEncoder
from geopixel.models.heads import SegWordsHead
from geopixel.models.llms import PartialLoRAAdapter
from geopixel.models.vision_encoders import CLIPVisionEncoder
from geopixel.tokenizers import InternLM2Tokenizer

with read_base():
    from .tilers.tiny_hd_1 import tiny_tile  # noqa: F401

model = dict(
    type=GeoPixel,
    tokenizer=dict(
        type=InternLM2Tokenizer,
        path='data/synthetic/tokenizer'),
    vision_encoder=dict(
        type=CLIPVisionEncoder,
        tile_size=tiny_tile,
        clip_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2)),
    llm=dict(
        type=PartialLoRAAdapter,
        llm_config=dict(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2),
        # dropout on the frozen partial-LoRA branch only adds noise and
        # costs 40% of a CPU step (random masks); the paper keeps 0.05
        plora=dict(rank=16, alpha=16, dropout=0.0),
        # LoRA without dropout (its random masks cost 3% of a CPU step) and
        # at scaling 1 (alpha 8, r 8; the paper: alpha 16, dropout 0.05):
        # with rrsis_tiny's lr 2e-3 the 15-minute benchmark rose from
        # 51.07 / 48.23 to 55.39 / 53.61 (docs/en/notes/refer_study.md)
        lora=dict(r=8, lora_alpha=8, lora_dropout=0.0)),
    grounding_encoder=dict(
        type=SAM2GroundingEncoder,
        variant='hiera_t',
        image_size=256,
        frozen=False,
        overrides=dict(
            image_encoder=dict(
                trunk=dict(embed_dim=16, num_heads=1),
                neck=dict(
                    d_model=64,
                    backbone_channel_list=[128, 64, 32, 16],
                    position_encoding=dict(num_pos_feats=64))))),
    # SAM2's eval-time fallback picks the best of mask tokens 1-3 when token
    # 0 looks unstable; GeoPixel trains only token 0, so from random init
    # tokens 1-3 stay untrained and the fallback would return noise.
    # The locator (not in the paper) lets a decoder trained from scratch
    # follow the [SEG] prompt: without it the tiny model masks "all
    # objects" whatever the sentence (docs/en/notes/refer_study.md).
    mask_decoder=dict(
        type=SAM2MaskDecoder,
        mlp_dim=256,
        stability_fallback=False,
        locator=True),
    # Not in the paper either: each [SEG] state also names the words it
    # grounds (a bag of words), so that position words reach [SEG] before
    # the decoder can use them; without it the random LLM never routes
    # them there (docs/en/notes/refer_study.md, section 7).
    seg_words_head=dict(type=SegWordsHead),
    generation_cfg=dict(max_new_tokens=64))
