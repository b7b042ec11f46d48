# GeoPixelD grounded conversation generation, official layout:
#   data/GeoPixelD.json, data/GeoPixelD/{train,test}/*.png|*.json
from mmengine.config import read_base
from mmengine.dataset import DefaultSampler, InfiniteSampler, pseudo_collate

from geopixel.datasets import GeoPixelDDataset

with read_base():
    from .grounding_pipelines import *  # noqa: F401,F403

data_root = 'data/'

train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type=InfiniteSampler, shuffle=True),
    collate_fn=dict(type=pseudo_collate),
    dataset=dict(
        type=GeoPixelDDataset,
        data_root=data_root,
        ann_file='GeoPixelD.json',
        pipeline=train_pipeline,
        on_bad_record='skip'))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type=DefaultSampler, shuffle=False),
    collate_fn=dict(type=pseudo_collate),
    dataset=dict(
        type=GeoPixelDDataset,
        data_root=data_root,
        ann_file='GeoPixelD/test',
        # chat.py's inference prompt (configs hold literals, not imports:
        # an imported constant would not survive dumping the config)
        question=('Can you provide a thorough description of this image? '
                  'Please output with interleaved segmentation masks for '
                  'the corresponding phrases.'),
        pipeline=test_pipeline,
        test_mode=True))
val_dataloader = test_dataloader
