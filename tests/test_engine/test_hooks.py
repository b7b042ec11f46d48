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


def test_time_budget_counts_training_not_validation(monkeypatch):
    from geopixel.engine.hooks import TimeBudgetHook
    clock = iter([0.0, 30.0, 100.0, 150.0])
    monkeypatch.setattr('time.monotonic', lambda: next(clock))
    hook = TimeBudgetHook(minutes=1.0)
    loop = types.SimpleNamespace(_max_iters=1000)
    runner = types.SimpleNamespace(train_loop=loop, iter=0,
                                   logger=ListLogger())
    runner.logger.info = lambda msg: None
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)  # 30 s
    assert loop._max_iters == 1000
    hook.after_val_epoch(runner)  # 70 s of validation: not counted
    runner.iter = 1
    hook.after_train_iter(runner, 1)  # +50 s = 80 s > 60 s
    # this iteration becomes the last: the checkpoint hook saves it and
    # the loop validates, as at the end of a full schedule
    assert loop._max_iters == 2 and hook.spent == 80.0


def test_visualization_hook_writes_one_picture_per_sample(tmp_path):
    import torch

    from geopixel.engine.hooks import GeoPixelVisualizationHook
    from geopixel.structures import GeoPixelDataSample
    samples = []
    for i in range(2):
        s = GeoPixelDataSample(metainfo=dict(img_path=f'/x/img{i}.png',
                                             phrases=['a']))
        s.gt_masks = torch.ones(1, 8, 8, dtype=torch.uint8)
        s.pred_masks = torch.randn(1, 8, 8)
        samples.append(s)
    batch = dict(inputs=dict(image=[torch.zeros(3, 8, 8, dtype=torch.uint8)]
                             * 2))
    hook = GeoPixelVisualizationHook(str(tmp_path / 'show'), max_samples=1)
    hook.after_test_iter(None, 0, batch, samples)
    assert sorted(p.name for p in (tmp_path / 'show').iterdir()) == [
        '00000_img0.png'
    ]
