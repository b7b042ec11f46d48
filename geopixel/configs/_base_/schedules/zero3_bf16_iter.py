# ZeRO-3 variant of zero2_bf16_iter.py (parameters sharded too).
from mmengine.config import read_base

with read_base():
    from .zero2_bf16_iter import *  # noqa: F401,F403

strategy.update(
    zero_optimization=dict(
        stage=3,
        overlap_comm=True,
        contiguous_gradients=True,
        stage3_gather_16bit_weights_on_model_save=True))
