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

    from .setup import setup_mmengine
    setup_mmengine()  # absolute config inheritance needs the package lookup
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


def relocate_paths(cfg, old_prefix: str, new_prefix: str):
    """Rewrite every string config value that starts with ``old_prefix``.

    Points a config written for ``data/synthetic`` (data roots, tokenizer
    folders) at another folder in one call, wherever the paths sit.
    """
    from collections.abc import MutableMapping, MutableSequence

    def visit(node):
        items = (node.items() if isinstance(node, MutableMapping) else
                 enumerate(node))
        for key, value in list(items):
            if isinstance(value, str) and value.startswith(old_prefix):
                node[key] = new_prefix + value[len(old_prefix):]
            elif isinstance(value, (MutableMapping, MutableSequence)):
                visit(value)

    # mmengine's Config is not a MutableMapping; its ConfigDict is
    visit(getattr(cfg, '_cfg_dict', cfg))
    return cfg


def add_runner_arguments(parser) -> None:
    """``--work-dir``, ``--cfg-options``, ``--trust-checkpoint``,
    ``--launcher`` and ``--local-rank``, shared by tools/train.py and
    tools/test.py."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help='where logs and results go')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='the checkpoint named on the command line (or in load_from) '
        'may be fully unpickled if a weights-only load refuses it. That runs '
        'any code the file carries: only for files you trust. Checkpoints in '
        'the run\'s own work dir are trusted without it.')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def trusts_checkpoint(args, cfg, path: str) -> bool:
    """Whether ``path`` may be fully unpickled: it lies in the run's own
    work dir, or the user passed ``--trust-checkpoint``."""
    if getattr(args, 'trust_checkpoint', False):
        return True
    work_dir = osp.abspath(cfg.work_dir)
    return osp.commonpath([osp.abspath(path), work_dir]) == work_dir


def export_local_rank(args) -> None:
    """torch.distributed.launch passes --local-rank; torchrun sets it."""
    import os
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
