"""Report records the datasets skipped, once per epoch."""
import logging
from typing import Optional

from mmengine.hooks import Hook

from geopixel.registry import HOOKS


@HOOKS.register_module()
class BadRecordSummaryHook(Hook):
    """Log how many bad records each dataset skipped (``on_bad_record='skip'``).

    Runs after every train/val/test epoch and, for iteration-based training,
    every ``interval`` iterations. Nothing is silently dropped: skipped
    records were each logged when they were met; this is the count.
    """

    priority = 'VERY_LOW'

    def __init__(self, interval: Optional[int] = None):
        self.interval = interval
        self._load_reported = set()

    def _report(self, runner, loop_name: str) -> None:
        from geopixel.datasets.base import unwrap_datasets
        loop = getattr(runner, f'_{loop_name}_loop', None)
        dataloader = getattr(loop, 'dataloader', None)
        if dataloader is None:
            return
        for dataset in unwrap_datasets(dataloader.dataset):
            if not hasattr(dataset, 'bad_record_summary'):
                continue
            summary = dataset.bad_record_summary(reset=True)
            key = (loop_name, id(dataset))
            at_load = summary['skipped_at_load']
            if key in self._load_reported:
                at_load = 0
            self._load_reported.add(key)
            skipped = (summary['skipped_at_runtime'] or 0) + at_load
            policy = getattr(dataset, 'on_bad_record', 'raise')
            if policy != 'skip' and not skipped:
                continue
            level = logging.WARNING if skipped else logging.INFO
            runner.logger.log(
                level, f'[{loop_name}] {summary["dataset"]}: skipped '
                f'{summary["skipped_at_runtime"] or 0} bad record(s) while '
                f'reading samples and {summary["skipped_at_load"]} while '
                f'loading annotations ({summary["kept"]} usable)')

    def after_train_epoch(self, runner) -> None:
        self._report(runner, 'train')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self._report(runner, 'train')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._report(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._report(runner, 'test')
