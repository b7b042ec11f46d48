"""Loss reduction shared by the losses: mmdet-compatible reduction, and
the divisors that keep a mean over the global batch under DDP."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.distributed as dist

REDUCTIONS = ('none', 'mean', 'sum')


def weight_reduce_loss(loss: torch.Tensor,
                       weight: Optional[torch.Tensor] = None,
                       reduction: str = 'mean',
                       avg_factor: Optional[float] = None) -> torch.Tensor:
    """Apply an element-wise weight, then reduce.

    With ``avg_factor`` a mean is ``sum / avg_factor`` (for example, the
    number of masks in the whole batch), as in mmdet.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f'reduction must be one of {REDUCTIONS}, got '
                         f'{reduction!r}')
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        if reduction == 'mean':
            return loss.mean()
        if reduction == 'sum':
            return loss.sum()
        return loss
    if reduction == 'mean':
        eps = torch.finfo(torch.float32).eps
        return loss.sum() / (avg_factor + eps)
    if reduction == 'sum':
        raise ValueError('avg_factor cannot be used with reduction="sum"')
    return loss


def loss_world_size() -> int:
    """How many processes average their gradients (DDP, ZeRO): the size of
    the initialised ``torch.distributed`` group, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def global_mean_divisors(counts: Sequence[int],
                         device=None) -> List[Union[int, float]]:
    """Per count, the divisor that turns a rank's loss sum into its share
    of the mean over the whole (global) batch.

    A rank that divides its sum over N_r items (masks, answer tokens) by
    N_r weights its items by 1 / N_r; DDP then averages the gradients over
    the W ranks, so with unequal N_r the result is not the mean over the
    global batch. Dividing by ``N / W`` (N the sum of N_r over ranks)
    instead makes DDP's average exactly ``sum / N``, as one process on the
    whole batch computes it.

    One all-reduce for all counts (on ``device``: CUDA for NCCL). Every
    rank must call it at every step, also with no items, or the others
    wait for it forever. Without a process group, or with one process, the
    counts come back unchanged, so one process computes what it always did.
    """
    world = loss_world_size()
    if world == 1:
        return list(counts)
    total = torch.tensor(list(counts), dtype=torch.int64, device=device)
    dist.all_reduce(total)
    return [n / world for n in total.tolist()]


def global_mean_divisor(count: int, device=None) -> Union[int, float]:
    """:func:`global_mean_divisors` of one count."""
    return global_mean_divisors([count], device)[0]


def mean_over_ranks(values: Dict[str, torch.Tensor]
                    ) -> Dict[str, torch.Tensor]:
    """Scalars averaged over the ranks (one all-reduce), detached.

    Under :func:`global_mean_divisors` a rank's loss is its share of the
    global mean, not the loss of any batch; the mean over ranks is the
    global batch's loss, what one process would report. Every rank must
    call this with the same keys in the same order. Returns ``values``
    itself with one process.
    """
    world = loss_world_size()
    if world == 1 or not values:
        return values
    stacked = torch.stack(
        [v.detach().float().reshape(()) for v in values.values()])
    dist.all_reduce(stacked)
    stacked /= world
    return type(values)(zip(values.keys(), stacked.unbind()))
