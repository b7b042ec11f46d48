# RRSIS-D referring segmentation, REFER layout under data/rrsisd_root:
#   rrsisd/refs(unc).p, rrsisd/instances.json, images/rrsisd/JPEGImages/
from mmengine.config import read_base
from mmengine.dataset import DefaultSampler, InfiniteSampler, pseudo_collate

from geopixel.datasets import RRSISDDataset

with read_base():
    from .grounding_pipelines import *  # noqa: F401,F403

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
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
