"""The bad-record summary hook reports what a skipping dataset left out."""
import json
import logging
import types

import pytest

from PIL import Image

from geopixel.datasets import (GeoPixelDDataset, LoadGroundingMasks,
                               LoadImageRGB)
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


def vis_inputs(n):
    import torch

    from geopixel.structures import GeoPixelDataSample
    samples = []
    for i in range(n):
        s = GeoPixelDataSample(metainfo=dict(img_path=f'/x/img{i}.png',
                                             phrases=['a']))
        s.gt_masks = torch.ones(1, 8, 8, dtype=torch.uint8)
        s.pred_masks = torch.randn(1, 8, 8)
        samples.append(s)
    images = [torch.zeros(3, 8, 8, dtype=torch.uint8)] * n
    return dict(inputs=dict(image=images)), samples


def vis_runner(tmp_path):
    from mmengine.visualization import LocalVisBackend

    from geopixel.visualization import GeoPixelVisualizer
    visualizer = GeoPixelVisualizer(
        name=f'vis-{tmp_path.name}', save_dir=str(tmp_path / 'vis'),
        vis_backends=[dict(type=LocalVisBackend)])
    return types.SimpleNamespace(visualizer=visualizer, iter=7)


def test_visualization_hook_draws_test_samples_through_the_visualizer(
        tmp_path):
    from geopixel.engine.hooks import GeoPixelVisualizationHook
    runner = vis_runner(tmp_path)
    batch, samples = vis_inputs(3)
    GeoPixelVisualizationHook(test_out_dir=str(tmp_path / 'off')) \
        .after_test_iter(runner, 0, batch, samples)
    assert not (tmp_path / 'off').exists()  # draw=False: nothing
    hook = GeoPixelVisualizationHook(draw=True, interval=2,
                                     test_out_dir=str(tmp_path / 'show'))
    hook.after_test_iter(runner, 0, batch, samples)
    hook.after_test_iter(runner, 1, batch, samples)  # samples 3, 4, 5
    assert sorted(p.name for p in (tmp_path / 'show').iterdir()) == [
        '00000_img0.png', '00002_img2.png', '00004_img1.png'
    ]
    capped = GeoPixelVisualizationHook(draw=True, interval=1, max_samples=1,
                                       test_out_dir=str(tmp_path / 'one'))
    capped.after_test_iter(runner, 0, batch, samples)
    assert len(list((tmp_path / 'one').iterdir())) == 1


def test_visualization_hook_sends_validation_to_the_backends(tmp_path):
    from geopixel.engine.hooks import GeoPixelVisualizationHook
    runner = vis_runner(tmp_path)
    batch, samples = vis_inputs(2)
    hook = GeoPixelVisualizationHook(draw=True, interval=2)
    for batch_idx in range(4):  # batches 2 and 4 draw their first sample
        runner.iter = 10 + batch_idx  # the training step it is filed under
        hook.after_val_iter(runner, batch_idx, batch, samples)
    written = sorted(p.name for p in (tmp_path / 'vis').rglob('*.png'))
    assert written == ['val_img0_11.png', 'val_img0_13.png']


def test_time_budget_fits_the_schedule_to_the_budget(monkeypatch):
    """A cosine schedule planned for 1,000 iterations on a machine that
    manages 10 in the budget ends at iteration 10, at its minimum."""
    import torch
    from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR

    from geopixel.engine.hooks import TimeBudgetHook
    now = [0.0]
    monkeypatch.setattr('time.monotonic', lambda: now[0])
    optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    warmup = LinearLR(optim, start_factor=0.5, by_epoch=False, begin=0,
                      end=2)
    cosine = CosineAnnealingLR(optim, by_epoch=False, begin=2, end=1000,
                               eta_min=0.0)
    loop = types.SimpleNamespace(_max_iters=1000)
    runner = types.SimpleNamespace(train_loop=loop, iter=0,
                                   param_schedulers=[warmup, cosine],
                                   logger=ListLogger())
    runner.logger.info = lambda msg: None
    hook = TimeBudgetHook(minutes=1.0, fit_schedule=True, min_iters=2)
    hook.before_train(runner)
    lrs = []
    while runner.iter < loop._max_iters:
        now[0] += 6.0  # 6 s per iteration: 10 fit in the minute
        optim.step()
        hook.after_train_iter(runner, runner.iter)
        for scheduler in (warmup, cosine):
            scheduler.step()
        lrs.append(optim.param_groups[0]['lr'])
        runner.iter += 1
    assert loop._max_iters == 10 and runner.iter == 10
    assert (warmup.end, cosine.end, cosine.T_max) == (2, 10, 8)
    # the same learning rates as a schedule planned for 10 iterations
    optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    planned = [LinearLR(optim, start_factor=0.5, by_epoch=False, begin=0,
                        end=2),
               CosineAnnealingLR(optim, by_epoch=False, begin=2, end=10,
                                 eta_min=0.0)]
    expected = []
    for _ in range(10):
        optim.step()
        for scheduler in planned:
            scheduler.step()
        expected.append(optim.param_groups[0]['lr'])
    assert lrs == pytest.approx(expected, abs=1e-12)
    assert lrs[-1] < 0.05


def test_time_budget_never_fits_past_max_iters(monkeypatch):
    from geopixel.engine.hooks import TimeBudgetHook
    now = [0.0]
    monkeypatch.setattr('time.monotonic', lambda: now[0])
    loop = types.SimpleNamespace(_max_iters=50)
    runner = types.SimpleNamespace(train_loop=loop, iter=0,
                                   param_schedulers=[], logger=ListLogger())
    hook = TimeBudgetHook(minutes=10.0, fit_schedule=True, min_iters=1)
    hook.before_train(runner)
    now[0] += 1.0  # 600 iterations would fit
    hook.after_train_iter(runner, 0)
    assert loop._max_iters == 50
