# The grounding pipelines for the bundled synthetic data: its own
# sentencepiece tokenizer and one tile per image (hd 1) of the tiny model's
# size (the synthetic data is what the tiny CPU configs train on). Make the
# data with `python tools/dataset_converters/make_synthetic.py --out
# data/synthetic`.
from mmengine.config import read_base

with read_base():
    # order matters: the tiny hd-1 tilers override the hd-9 ones of the base
    from .grounding_pipelines import *  # noqa: F401,F403
    from ..models.tilers.tiny_hd_1 import *  # noqa: F401,F403

synthetic_root = 'data/synthetic'
tokenizer.update(path=synthetic_root + '/tokenizer')
train_chat.tokenizer = tokenizer
generation_chat.tokenizer = tokenizer
teacher_forced_chat.tokenizer = tokenizer
train_tiling.tiler = train_tiler
test_tiling.tiler = test_tiler

train_pipeline = [*loading, train_tiling, train_chat, *packing]
test_pipeline = [*loading, test_tiling, generation_chat, *packing]
teacher_forced_test_pipeline = [
    *loading, test_tiling, teacher_forced_chat, *packing
]
