"""The bad-record summary hook reports what a skipping dataset left out."""
import json
import logging
import types

from PIL import Image

from geopixel.datasets import GeoPixelDDataset, LoadGroundingMasks, LoadImageRGB
from geopixel.engine.hooks import BadRecordSummaryHook


class ListLogger:
    def __init__(self):
        self.records = []

    def log(self, level, msg):
        self.records.append((level, msg))


def skipping_dataset(tmp_path):
    data = tmp_path / 'data' / 'GeoPixelD' / 'train'
    data.mkdir(parents=True)
    Image.new('RGB', (32, 32)).save(data / 'x.png')
    json.dump(dict(polygons=[[[[1, 1], [9, 1], [9, 9]]]]),
              open(data / 'x.json', 'w'))
    json.dump(dict(polygons=[]), open(data / 'bad.json', 'w'))
    good = dict(id=0, image='data/GeoPixelD/train/x.png',
                polygons='data/GeoPixelD/train/x.json',
                conversations=[{'from': 'human', 'value': 'Q'},
                               {'from': 'gpt', 'value': '<p> a </p> [SEG]'}])
    records = [good,
               dict(good, id=1, polygons='data/GeoPixelD/train/bad.json'),
               dict(good, id=2, image='data/GeoPixelD/train/missing.png')]
    ann = tmp_path / 'data' / 'GeoPixelD.json'
    json.dump(records, open(ann, 'w'))
    return GeoPixelDDataset(
        ann_file=str(ann),
        pipeline=[dict(type=LoadImageRGB), dict(type=LoadGroundingMasks)],
        on_bad_record='skip')


def test_summary_after_epoch(tmp_path):
    dataset = skipping_dataset(tmp_path)
    dataset[1]  # found bad while reading: skipped and replaced
    logger = ListLogger()
    runner = types.SimpleNamespace(
        logger=logger,
        _train_loop=types.SimpleNamespace(
            dataloader=types.SimpleNamespace(dataset=dataset)))
    BadRecordSummaryHook().after_train_epoch(runner)
    assert len(logger.records) == 1
    level, message = logger.records[0]
    assert level == logging.WARNING
    assert ('1 bad record(s) left out while loading annotations, 1 found bad '
            'while reading samples') in message
    assert '2 records in the dataset' in message
