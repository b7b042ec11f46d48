# rrsis_tiny through MMEngine's FlexibleRunner with DeepSpeed ZeRO-2, at CPU
# settings: fp32, small buckets, no comm overlap (no CUDA streams on CPU).
#   DS_ACCELERATOR=cpu bash tools/dist_train.sh \
#       configs/geopixel/rrsis_tiny_zero2.py 2
# bf16 as the paper recipe runs it (every weight cast) trains here too:
#   --cfg-options strategy.bf16.enabled=True
# (docs/en/advanced_guides/deepspeed.md)
from mmengine.config import read_base

with read_base():
    from .rrsis_tiny import *  # noqa: F401,F403
    from .._base_.schedules.zero2_bf16_iter import (  # noqa: F401
        optim_wrapper, runner_type, strategy)

strategy.update(
    bf16=dict(enabled=False),
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        reduce_scatter=True,
        allgather_bucket_size=int(5e6),
        reduce_bucket_size=int(5e6),
        overlap_comm=False,
        contiguous_gradients=True),
    # the tiny model's frozen weights are random, not read from a file:
    # the checkpoint must hold them (the 7B recipe leaves them out)
    exclude_frozen_parameters=False)
# rrsis_tiny's learning rate (the ZeRO schedule carries the 7B one)
optim_wrapper.optimizer.update(lr=2e-3)
