"""Write ground-truth / prediction overlays during validation and testing."""
import os
import os.path as osp
from typing import Optional

from mmengine.hooks import Hook

from geopixel.registry import HOOKS


@HOOKS.register_module()
class GeoPixelVisualizationHook(Hook):
    """Save one picture per sample: GT masks and predicted masks side by
    side, each with a phrase legend (``tools/test.py --show-dir``).

    Args:
        out_dir: folder for the pictures (created).
        max_samples: stop after this many (None: all).
    """

    def __init__(self, out_dir: str, max_samples: Optional[int] = None):
        self.out_dir = out_dir
        self.max_samples = max_samples
        self._count = 0

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        from geopixel.visualization import GeoPixelVisualizer
        os.makedirs(self.out_dir, exist_ok=True)
        images = data_batch['inputs']['image']
        for image, sample in zip(images, outputs):
            if self.max_samples is not None and \
                    self._count >= self.max_samples:
                return
            name = osp.splitext(osp.basename(
                sample.metainfo.get('img_path', f'{self._count}')))[0]
            out_file = osp.join(self.out_dir, f'{self._count:05d}_{name}.png')
            GeoPixelVisualizer.draw_sample(
                image.permute(1, 2, 0).cpu().numpy(), sample, out_file)
            self._count += 1
