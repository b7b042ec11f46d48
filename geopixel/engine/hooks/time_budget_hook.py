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

    With ``fit_schedule`` (iteration-based loops) the schedule is fitted to
    the budget instead of cut by it: after every iteration the number of
    iterations the rest of the budget allows is estimated from the mean
    training time per iteration so far, and the loop's end, and the end of
    every iteration-based parameter scheduler that ended with the loop
    (cosine ``T_max`` too), move there (never past the configured
    ``max_iters``). A cosine decay then reaches its minimum when the budget
    runs out, on a fast machine or a slow one, instead of stopping
    part-way. Schedulers that end earlier (warm-up) keep their end.

    Args:
        minutes: the training budget.
        fit_schedule: fit the schedule to the budget (see above).
        min_iters: iterations timed before the first fit.
    """

    # before the checkpoint hook (VERY_LOW), which must see the new end
    priority = 'ABOVE_NORMAL'

    def __init__(self, minutes: float, fit_schedule: bool = False,
                 min_iters: int = 20):
        self.seconds = float(minutes) * 60
        self.fit_schedule = fit_schedule
        self.min_iters = min_iters
        self.spent = 0.0
        self.iters = 0
        self._since = None
        self._planned_end = None

    def before_train(self, runner) -> None:
        self._since = time.monotonic()
        if self.fit_schedule:
            if isinstance(runner.train_loop, EpochBasedTrainLoop):
                raise ValueError('TimeBudgetHook(fit_schedule=True) needs an '
                                 'iteration-based training loop')
            self._planned_end = _require(runner.train_loop,
                                         '_max_iters')._max_iters

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._since = time.monotonic()  # validation does not count

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        now = time.monotonic()
        self.spent += now - self._since
        self.iters += 1
        self._since = now
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            return  # decided at the end of the epoch
        spent = self._budget_spent()
        if self.fit_schedule and not spent and self.iters >= self.min_iters:
            self._fit(runner, self._estimated_end(runner))
        if spent:
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

    def _estimated_end(self, runner) -> int:
        """The iteration count at which the budget will run out, at the
        mean pace so far (rank 0's estimate in distributed runs)."""
        left = (self.seconds - self.spent) / (self.spent / self.iters)
        end = min(self._planned_end, runner.iter + 1 + int(left))
        if get_world_size() > 1:
            value = torch.tensor([end])
            broadcast(value, src=0)
            end = int(value.item())
        return end

    def _fit(self, runner, end: int) -> None:
        loop = runner.train_loop
        old = loop._max_iters
        if end == old:
            return
        schedulers = runner.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        for scheduler in schedulers:
            if scheduler.by_epoch or scheduler.end != old:
                continue
            scheduler.end = end
            if hasattr(scheduler, 'T_max'):
                scheduler.T_max = end - scheduler.begin
        loop._max_iters = end

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
