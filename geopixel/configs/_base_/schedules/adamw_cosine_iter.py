# The paper recipe's optimiser on a single machine (DDP or one device):
# AdamW lr 3e-4, no weight decay, betas (0.9, 0.95), linear warm-up then
# cosine decay to 0, gradient clipping at 1.0.
from mmengine.optim import CosineAnnealingLR, LinearLR, OptimWrapper
from mmengine.runner import IterBasedTrainLoop, TestLoop, ValLoop
from torch.optim import AdamW

max_iters = 2000
warmup_iters = 100
val_interval = 500

optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=AdamW, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.0),
    clip_grad=dict(max_norm=1.0))

param_scheduler = [
    dict(
        type=LinearLR,
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type=CosineAnnealingLR,
        eta_min=0.0,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters),
]

train_cfg = dict(
    type=IterBasedTrainLoop, max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
