"""MMEngine Visualizer for grounded samples (ground truth and predictions)."""
from typing import Optional

import numpy as np
from mmengine.visualization import Visualizer

from geopixel.registry import VISUALIZERS

from .overlay import draw_grounded_masks


@VISUALIZERS.register_module()
class GeoPixelVisualizer(Visualizer):
    """Draws a :class:`GeoPixelDataSample` as overlays with phrase legends.

    ``add_datasample`` puts the ground truth and, when present, the
    prediction side by side, and hands the picture to the configured
    visualisation backends (local files, TensorBoard...).
    """

    @staticmethod
    def draw_sample(image: np.ndarray, data_sample,
                    out_file: Optional[str] = None) -> np.ndarray:
        """GT and prediction panels for one sample (no backend needed)."""
        panels = []
        if 'gt_masks' in data_sample:
            masks = data_sample.gt_masks
            masks = masks.cpu().numpy() if hasattr(masks, 'cpu') else masks
            labels = data_sample.metainfo.get('phrases') or [
                data_sample.metainfo.get('ref_exp', 'target')
            ]
            panels.append(
                draw_grounded_masks(image, masks, labels,
                                    title='ground truth'))
        if 'pred_masks' in data_sample:
            masks = data_sample.pred_masks
            masks = masks.float().cpu().numpy() if hasattr(masks,
                                                          'cpu') else masks
            labels = data_sample.get('pred_phrases') or (
                [data_sample.metainfo['ref_exp']]
                if 'ref_exp' in data_sample.metainfo else None)
            panels.append(
                draw_grounded_masks(image, masks > 0, labels,
                                    title='prediction'))
        if not panels:
            panels.append(np.asarray(image, dtype=np.uint8))
        height = max(p.shape[0] for p in panels)
        drawn = np.concatenate([
            np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)),
                   constant_values=255) for p in panels
        ], axis=1)
        if out_file is not None:
            from PIL import Image
            Image.fromarray(drawn).save(out_file)
        return drawn

    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0) -> np.ndarray:
        if data_sample is not None:
            sample = data_sample.clone()
            if not draw_gt and 'gt_masks' in sample:
                del sample.gt_masks
            if not draw_pred and 'pred_masks' in sample:
                del sample.pred_masks
            drawn = self.draw_sample(image, sample)
        else:
            drawn = np.asarray(image, dtype=np.uint8)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            from PIL import Image
            Image.fromarray(drawn).save(out_file)
        else:
            self.add_image(name, drawn, step)
        return drawn
