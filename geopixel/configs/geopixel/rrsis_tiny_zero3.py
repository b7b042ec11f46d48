# rrsis_tiny with DeepSpeed ZeRO-3 (parameters sharded too), at CPU
# settings; see rrsis_tiny_zero2.py.
#   DS_ACCELERATOR=cpu bash tools/dist_train.sh \
#       configs/geopixel/rrsis_tiny_zero3.py 2
from mmengine.config import read_base

with read_base():
    from .rrsis_tiny_zero2 import *  # noqa: F401,F403

strategy.update(
    zero_optimization=dict(
        stage=3,
        overlap_comm=False,
        contiguous_gradients=True,
        stage3_gather_16bit_weights_on_model_save=True,
        # shard every parameter, however small: by default ZeRO-3 keeps
        # parameters under 1e5 elements whole on every rank, which at tiny
        # size is nearly all of them, and the run would not exercise the
        # gathers that the 7B model does
        stage3_param_persistence_threshold=0))
