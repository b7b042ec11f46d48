"""Draw ground truth and predictions during validation and testing."""
import os
import os.path as osp
from typing import Optional

from mmengine.hooks import Hook

from geopixel.registry import HOOKS


@HOOKS.register_module()
class GeoPixelVisualizationHook(Hook):
    """Ground-truth and predicted masks side by side, each with its phrase
    legend, drawn by the runner's Visualizer (``GeoPixelVisualizer``).

    In validation, the first sample of every ``interval``-th iteration goes
    to the visualizer's backends (files under the run folder, TensorBoard,
    ...), stepped by the training iteration. In testing, every
    ``interval``-th sample is drawn: into ``test_out_dir`` when given (one
    PNG per sample; ``tools/test.py --show-dir``), else to the backends.

    Args:
        draw: draw at all (off by default: drawing costs time).
        interval: draw every ``interval``-th iteration (validation) or
            sample (test).
        show: also open a window per picture.
        wait_time: seconds a shown window stays.
        test_out_dir: folder for the test pictures (created).
        max_samples: stop after this many test pictures (None: no limit).
    """

    def __init__(self,
                 draw: bool = False,
                 interval: int = 50,
                 show: bool = False,
                 wait_time: float = 0.,
                 test_out_dir: Optional[str] = None,
                 max_samples: Optional[int] = None):
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.draw = draw
        self.interval = interval
        self.show = show
        self.wait_time = wait_time
        self.test_out_dir = test_out_dir
        self.max_samples = max_samples
        self._test_index = 0
        self._drawn = 0

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        if not self.draw or not self.every_n_inner_iters(batch_idx,
                                                         self.interval):
            return
        image = data_batch['inputs']['image'][0]
        sample = outputs[0]
        runner.visualizer.add_datasample(
            f'val_{_stem(sample, batch_idx)}', _hwc(image), sample,
            show=self.show, wait_time=self.wait_time, step=runner.iter)

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        if not self.draw:
            return
        if self.test_out_dir is not None:
            os.makedirs(self.test_out_dir, exist_ok=True)
        for image, sample in zip(data_batch['inputs']['image'], outputs):
            index = self._test_index
            self._test_index += 1
            if index % self.interval or (self.max_samples is not None and
                                         self._drawn >= self.max_samples):
                continue
            name = f'{index:05d}_{_stem(sample, index)}'
            out_file = (osp.join(self.test_out_dir, f'{name}.png')
                        if self.test_out_dir is not None else None)
            runner.visualizer.add_datasample(
                f'test_{name}', _hwc(image), sample, show=self.show,
                wait_time=self.wait_time, out_file=out_file, step=index)
            self._drawn += 1


def _hwc(image):
    """A CHW uint8 tensor as the HWC array the visualizer draws on."""
    return image.permute(1, 2, 0).cpu().numpy()


def _stem(sample, fallback) -> str:
    path = sample.metainfo.get('img_path')
    return osp.splitext(osp.basename(path))[0] if path else str(fallback)
