# GeoPixel-7B as in the paper: CLIP ViT-L/14 at 560 px (from IXC-2.5),
# InternLM2-7B with partial LoRA (r 256, from IXC-2.5) and LoRA (r 8, alpha
# 16), SAM2 Hiera-L at 1024 px (frozen) with its trainable mask decoder, and
# the [SEG] projector. Weights come from local paths (nothing is
# downloaded):
#   checkpoints/internlm-xcomposer2d5-7b   IXC-2.5 folder (LLM, CLIP, proj)
#   checkpoints/internlm-xcomposer2d5-clip CLIP ViT-L/14-560 folder (config)
#   checkpoints/sam2_hiera_large.pt        SAM2 checkpoint
# Swaps are one line: model.llm.type = FullLoRAAdapter (LoRA without
# partial LoRA) or FrozenLLMAdapter; for SAM v1 ViT-H:
#   model.grounding_encoder, model.mask_decoder = sam_vit_h
from geopixel.models.architectures import GeoPixel
from geopixel.models.decoders import SAM2MaskDecoder, SAMMaskDecoder
from geopixel.models.grounding_encoders import (SAM2GroundingEncoder,
                                                SAMGroundingEncoder)
from geopixel.models.llms import PartialLoRAAdapter
from geopixel.models.vision_encoders import CLIPVisionEncoder
from geopixel.tokenizers import InternLM2Tokenizer

ixc_path = 'checkpoints/internlm-xcomposer2d5-7b'
sam2_checkpoint = 'checkpoints/sam2_hiera_large.pt'

model = dict(
    type=GeoPixel,
    tokenizer=dict(type=InternLM2Tokenizer, path=ixc_path),
    # ViT-L/14 at 560 px (the class defaults); weights from ixc_checkpoint
    vision_encoder=dict(type=CLIPVisionEncoder),
    # InternLM2-7B (the config defaults), vocabulary grown to the tokenizer
    llm=dict(
        type=PartialLoRAAdapter,
        train_embeddings='full',
        gradient_checkpointing=True),
    grounding_encoder=dict(
        type=SAM2GroundingEncoder,
        variant='hiera_l',
        image_size=1024,
        checkpoint=sam2_checkpoint),
    mask_decoder=dict(type=SAM2MaskDecoder, checkpoint=sam2_checkpoint),
    # LLM, CLIP, projector and separators from IXC-2.5 in one read
    ixc_checkpoint=ixc_path,
    generation_cfg=dict(max_new_tokens=512))

# SAM v1 ViT-H instead of SAM2 (a local Hugging Face facebook/sam-vit-huge):
# (grounding encoder, mask decoder), assigned together
sam_vit_h = [
    dict(
        type=SAMGroundingEncoder,
        variant='vit_h',
        checkpoint='checkpoints/sam-vit-huge'),
    dict(type=SAMMaskDecoder, checkpoint='checkpoints/sam-vit-huge'),
]
