# The annotation pipeline with models loaded in-process by transformers from
# local folders (nothing is downloaded): a vision-language model for the
# descriptions and an instruction LLM for the paraphrase. IXC-2.5 needs its
# own remote code and transformers 4.x: serve it and use
# openai_endpoint.py instead.
#   python tools/annotate/annotate.py configs/annotation/local_vlm.py \
#       --ann-file iSAID/train.json --image-dir iSAID/train/images \
#       --out data/annotated
from mmengine.config import read_base

with read_base():
    from .template import *  # noqa: F401,F403

annotator = dict(
    type='TransformersAnnotator',
    model_path='checkpoints/Qwen2-VL-7B-Instruct',
    device='cuda',
    dtype='bfloat16',
    max_new_tokens=256)
paraphraser = dict(
    type='TransformersAnnotator',
    model_path='checkpoints/Llama-3.1-8B-Instruct',
    device='cuda',
    dtype='bfloat16',
    max_new_tokens=768)
