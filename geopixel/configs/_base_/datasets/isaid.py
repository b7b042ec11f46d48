# iSAID instance annotations (the source of GeoPixelD), devkit layout:
#   annotations/instancesonly_filtered_{train,val}.json, images/{train,val}/
from mmengine.dataset import DefaultSampler, pseudo_collate

from geopixel.datasets import (
                               ISAIDDataset,
                               LoadImageRGB,
                               LoadInstanceAnnotations,
                               PackGeoPixelInputs,
)

data_root = 'data/iSAID_patches'
pipeline = [
    dict(type=LoadImageRGB),
    dict(type=LoadInstanceAnnotations),
    dict(type=PackGeoPixelInputs),
]
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    sampler=dict(type=DefaultSampler, shuffle=False),
    collate_fn=dict(type=pseudo_collate),
    dataset=dict(
        type=ISAIDDataset,
        data_root=data_root,
        ann_file='annotations/instancesonly_filtered_train.json',
        data_prefix=dict(img_path='images/train/'),
        pipeline=pipeline,
        on_bad_record='skip'))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    sampler=dict(type=DefaultSampler, shuffle=False),
    collate_fn=dict(type=pseudo_collate),
    dataset=dict(
        type=ISAIDDataset,
        data_root=data_root,
        ann_file='annotations/instancesonly_filtered_val.json',
        data_prefix=dict(img_path='images/val/'),
        pipeline=pipeline,
        test_mode=True))
