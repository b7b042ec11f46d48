"""Distributed set-up that MMEngine 0.10.7 gets wrong on CPU-only machines."""
import os

import torch
import torch.distributed as dist


def init_cpu_distributed(backend: str = 'gloo', timeout_s: int = 1800) -> bool:
    """Initialise the process group on a machine without CUDA.

    MMEngine's ``init_dist`` always calls ``torch.cuda.set_device``, which
    fails without a GPU. Initialising gloo here first makes the Runner skip
    ``init_dist``. Reads the torchrun environment (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``). Returns True if it initialised.
    """
    if torch.cuda.is_available() or dist.is_initialized():
        return False
    if 'RANK' not in os.environ or 'WORLD_SIZE' not in os.environ:
        raise RuntimeError(
            'a distributed launcher was requested but RANK/WORLD_SIZE are '
            'not set; start with torchrun (tools/dist_train.sh)')
    from datetime import timedelta
    dist.init_process_group(
        backend=backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        timeout=timedelta(seconds=timeout_s))
    return True


def cpu_ddp_wrapper_cfg() -> dict:
    """DDP wrapper settings for CPU processes (no device ids)."""
    return dict(type='MMDistributedDataParallel', device_ids=None)
