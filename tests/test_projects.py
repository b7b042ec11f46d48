"""Every project under projects/ registers into geopixel; its configs build."""
import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
EXAMPLE = osp.join(REPO, 'projects', 'example_project')


@pytest.fixture(autouse=True)
def example_on_path(monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLE)


def test_fixed_grid_tiler_is_registered_and_tiles():
    import gp_example  # noqa: F401
    import numpy as np

    from geopixel.registry import TILERS
    tiler = TILERS.build(dict(type='FixedGridTiler', rows=1, cols=2))
    out = tiler(np.zeros((300, 200, 3), np.uint8))
    assert out.image.shape == (560, 1120, 3)
    assert out.grid == (1, 2)
    assert out.num_tokens == (2 + 1) * 400 + 1 + 20 * 2


def test_project_config_swaps_the_tiler(synthetic_root):
    from geopixel.registry import DATASETS
    from geopixel.testing import relocate
    cfg = relocate(Config.fromfile(
        osp.join(EXAMPLE, 'configs', 'synthetic_rrsis_fixed_grid.py')),
        synthetic_root)
    sample = DATASETS.build(cfg.train_dataloader.dataset)[0]
    assert sample['data_samples'].hd_grid == (1, 2)
    # the tiny model's 224 px tiles
    assert sample['inputs']['hd_image'].shape == (3, 224, 448)
