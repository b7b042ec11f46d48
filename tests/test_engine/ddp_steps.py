"""A few AdamW steps of the tiny GeoPixel on a batch in which one half
grounds nothing: in one process, or as a DDP rank holding one half.

    python -m torch.distributed.run --nproc_per_node 2 \\
        tests/test_engine/ddp_steps.py DATA_ROOT OUT.pt

Rank 0 holds two samples with masks, rank 1 two samples whose [SEG] tokens
were replaced (no mask at all): unequal answer tokens and masks, and a rank
on which the grounding branch gets no real gradient. Rank 0 saves the
logged values of each step and the final trainable weights to ``OUT.pt``.
Used by tests/test_engine/test_ddp_equivalence.py.
"""
import os.path as osp
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'geopixel', 'gcg_tiny.py')
STEPS = 3
LR = 1e-3


def without_masks(sample, seg_id: int, other_id: int):
    """The sample with its [SEG] tokens replaced by another token and its
    masks removed: a sample that grounds nothing."""
    ds = sample['data_samples']
    for key in ('input_ids', 'labels'):
        ids = getattr(ds, key).clone()
        ids[ids == seg_id] = other_id
        setattr(ds, key, ids)
    del ds.gt_masks
    return sample


def model_and_halves(data_root: str):
    """The seeded tiny model and the two halves of the global batch."""
    from geopixel.engine import setup_mmengine
    setup_mmengine()
    from geopixel.registry import DATASETS
    from geopixel.testing.tiny import get_config, tiny_model
    cfg = get_config(CONFIG, data_root)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    model = tiny_model(cfg, seed=0)
    model.train()
    seg_id, other_id = model.seg_token_id, model.tokenizer.eos_token_id
    return model, ([dataset[0], dataset[1]], [
        without_masks(dataset[i], seg_id, other_id) for i in (2, 3)
    ])


def train(model, samples, forward=None):
    """STEPS AdamW steps on ``samples``; ``forward`` (a DDP wrapper) runs
    the model. Returns the logged values of each step."""
    from mmengine.dataset import pseudo_collate
    forward = forward or model
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=LR)
    logs = []
    for _ in range(STEPS):
        data = model.data_preprocessor(pseudo_collate(samples), True)
        loss, log_vars = model.parse_losses(forward(**data, mode='loss'))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        logs.append({k: v.item() for k, v in log_vars.items()})
    return logs


def trainable_weights(model):
    return {
        name: p.detach().clone()
        for name, p in model.named_parameters() if p.requires_grad
    }


def main(data_root: str, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    model, halves = model_and_halves(data_root)
    logs = train(model, halves[rank], DistributedDataParallel(model))
    if rank == 0:
        torch.save(dict(logs=logs, weights=trainable_weights(model)), out)
    dist.destroy_process_group()


if __name__ == '__main__':
    sys.path.insert(0, REPO)
    main(*sys.argv[1:])
