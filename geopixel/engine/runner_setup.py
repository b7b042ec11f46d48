"""Config handling shared by tools/train.py and tools/test.py."""
import os.path as osp
from typing import Optional

import torch


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none'):
    """Read a config and apply the command line, in mmdet's order.

    The work dir is ``work_dir`` if given, else the config's, else
    ``work_dirs/<config name>``.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    return cfg


def setup_cpu_distributed(cfg, wrap_model: bool = True) -> None:
    """Without CUDA, start gloo ourselves and use DDP without device ids.

    MMEngine's ``init_dist`` needs CUDA (see :mod:`geopixel.engine.dist`).
    Does nothing for ``launcher='none'`` or when CUDA is available.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    from .dist import cpu_ddp_wrapper_cfg, init_cpu_distributed
    init_cpu_distributed()
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if wrap_model:
        cfg.model_wrapper_cfg = cpu_ddp_wrapper_cfg()
