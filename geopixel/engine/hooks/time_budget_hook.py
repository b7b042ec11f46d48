"""Stop training after a wall-clock budget."""
import time

from mmengine.hooks import Hook

from geopixel.registry import HOOKS


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """Ends training once ``minutes`` of training iterations have run.

    Only time spent in training iterations (data loading included) counts,
    not validation, so a budget means the same amount of learning whatever
    the validation schedule. For budgeted experiments and benchmarks such as
    tools/analysis/benchmark_learning.py.
    """

    priority = 'LOWEST'

    def __init__(self, minutes: float):
        self.seconds = float(minutes) * 60
        self.spent = 0.0
        self._iter_start = None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._iter_start = time.monotonic()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.spent += time.monotonic() - self._iter_start
        if self.spent >= self.seconds:
            runner.logger.info(
                f'time budget of {self.seconds / 60:.1f} min reached at '
                f'iteration {runner.iter + 1}; stopping')
            runner.train_loop.stop_training = True
