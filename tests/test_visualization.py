import numpy as np
import pytest
import torch

from geopixel.structures import GeoPixelDataSample
from geopixel.visualization import (
    GeoPixelVisualizer,
    draw_grounded_masks,
    palette,
)


def test_overlay_colours_masks_and_adds_legend():
    image = np.zeros((40, 60, 3), np.uint8)
    masks = np.zeros((2, 40, 60), np.uint8)
    masks[0, 5:15, 5:15] = 1
    masks[1, 20:30, 30:50] = 1
    out = draw_grounded_masks(image, masks, ['a', 'b'], alpha=1.0,
                              legend_width=100)
    assert out.shape == (40, 160, 3)
    colours = palette(2)
    assert tuple(out[10, 10]) == colours[0]
    assert tuple(out[25, 40]) == colours[1]
    assert tuple(out[35, 2]) == (0, 0, 0)  # untouched background
    assert (out[:, 60:] != 255).any()  # legend drawn
    with pytest.raises(ValueError):
        draw_grounded_masks(image, np.zeros((1, 5, 5)), ['x'])


def test_palette_is_distinct():
    colours = palette(12)
    assert len(set(colours)) == 12


def test_visualizer_draws_gt_and_prediction(tmp_path):
    sample = GeoPixelDataSample(metainfo=dict(phrases=['car']))
    sample.gt_masks = torch.ones(1, 20, 30, dtype=torch.uint8)
    sample.pred_masks = torch.full((1, 20, 30), 2.0)
    vis = GeoPixelVisualizer(name='test-vis', save_dir=str(tmp_path))
    out = vis.add_datasample('x', np.zeros((20, 30, 3), np.uint8), sample,
                             out_file=str(tmp_path / 'x.png'))
    assert out.shape[1] == 2 * (30 + 260)
    assert (tmp_path / 'x.png').exists()
