# The annotation pipeline with models behind OpenAI-compatible endpoints
# (vLLM, LMDeploy, llama.cpp, Ollama, OpenAI): a vision-language model for
# the descriptions, an instruction LLM for the paraphrase (the paper used
# IXC-2.5 and Llama-3.1-8B-Instruct). Start the servers first, e.g.
#   lmdeploy serve api_server /models/internlm-xcomposer2d5-7b \
#       --server-port 23333
#   vllm serve /models/Llama-3.1-8B-Instruct --port 8000
#   python tools/annotate/annotate.py configs/annotation/openai_endpoint.py \
#       --ann-file iSAID/train.json --image-dir iSAID/train/images \
#       --out data/annotated
from mmengine.config import read_base

with read_base():
    from .template import *  # noqa: F401,F403

annotator = dict(
    type='OpenAICompatibleAnnotator',
    base_url='http://127.0.0.1:23333/v1',
    model='internlm-xcomposer2d5-7b',
    temperature=0.2,
    max_tokens=256)
paraphraser = dict(
    type='OpenAICompatibleAnnotator',
    base_url='http://127.0.0.1:8000/v1',
    model='Llama-3.1-8B-Instruct',
    temperature=0.3,
    max_tokens=768)
