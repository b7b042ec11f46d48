"""Stop training after a wall-clock budget, as if the schedule ended there."""
import time

import torch
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from geopixel.registry import HOOKS


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """Ends training once ``minutes`` of training have run.

    Training time is the time between iterations (data loading included),
    not validation, so a budget means the same amount of learning whatever
    the validation schedule. When the budget is spent the current iteration
    becomes the last one of the schedule: the checkpoint hook saves its
    last checkpoint and the loop runs its final validation, exactly as at
    the end of a full run, so nothing learnt is lost. An epoch-based loop
    ends after the current epoch. In distributed runs rank 0's clock
    decides, so every rank stops at the same iteration.
    """

    # before the checkpoint hook (VERY_LOW), which must see the new end
    priority = 'ABOVE_NORMAL'

    def __init__(self, minutes: float):
        self.seconds = float(minutes) * 60
        self.spent = 0.0
        self._since = None

    def before_train(self, runner) -> None:
        self._since = time.monotonic()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._since = time.monotonic()  # validation does not count

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        now = time.monotonic()
        self.spent += now - self._since
        self._since = now
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            return  # decided at the end of the epoch
        if self._budget_spent():
            runner.logger.info(
                f'time budget of {self.seconds / 60:.1f} min reached at '
                f'iteration {runner.iter + 1}: it is the last one (final '
                'checkpoint and validation follow)')
            _require(runner.train_loop, '_max_iters')._max_iters = \
                runner.iter + 1

    def after_train_epoch(self, runner) -> None:
        if isinstance(runner.train_loop, EpochBasedTrainLoop) and \
                self._budget_spent():
            runner.logger.info(
                f'time budget of {self.seconds / 60:.1f} min reached in '
                f'epoch {runner.epoch + 1}: it is the last one')
            _require(runner.train_loop, '_max_epochs')._max_epochs = \
                runner.epoch + 1

    def _budget_spent(self) -> bool:
        spent = self.spent >= self.seconds
        if get_world_size() > 1:
            flag = torch.tensor([int(spent)])
            broadcast(flag, src=0)
            spent = bool(flag.item())
        return spent


def _require(loop, attribute: str):
    """The loop, after checking it keeps its end where we expect (MMEngine
    has no public setter for it)."""
    if not hasattr(loop, attribute):
        raise RuntimeError(
            f'TimeBudgetHook cannot end a {type(loop).__name__}: it has no '
            f'{attribute}')
    return loop
