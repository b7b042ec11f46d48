# RRSIS-D referring segmentation, REFER layout under data/rrsisd_root:
#   rrsisd/refs(unc).p, rrsisd/instances.json, images/rrsisd/JPEGImages/
# At hd 1, as GeoPixel fine-tunes and evaluates it (finetune.sh); scored
# teacher-forced (the answer is given), as LISA and GeoPixel report it.
from mmengine.config import read_base
from mmengine.dataset import DefaultSampler, InfiniteSampler, pseudo_collate

from geopixel.datasets import RRSISDDataset

with read_base():
    # order matters: the hd-1 tilers override the hd-9 ones of the base
    from .grounding_pipelines import *  # noqa: F401,F403
    from ..models.tilers.adaptive_hd_1 import *  # noqa: F401,F403

train_tiling.tiler = train_tiler
test_tiling.tiler = test_tiler
train_pipeline = [*loading, train_tiling, train_chat, *packing]
test_pipeline = [*loading, test_tiling, generation_chat, *packing]
teacher_forced_test_pipeline = [
    *loading, test_tiling, teacher_forced_chat, *packing
]

data_root = 'data/rrsisd_root'

train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type=InfiniteSampler, shuffle=True),
    collate_fn=dict(type=pseudo_collate),
    dataset=dict(
        type=RRSISDDataset,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline,
        on_bad_record='skip'))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type=DefaultSampler, shuffle=False),
    collate_fn=dict(type=pseudo_collate),
    dataset=dict(
        type=RRSISDDataset,
        data_root=data_root,
        split='val',
        pipeline=teacher_forced_test_pipeline,
        test_mode=True))
test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
