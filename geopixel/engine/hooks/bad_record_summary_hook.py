"""Report records the datasets skipped, once per epoch."""
import logging
from typing import Optional

from mmengine.hooks import Hook

from geopixel.registry import HOOKS


@HOOKS.register_module()
class BadRecordSummaryHook(Hook):
    """Log how many bad records each dataset skipped
    (``on_bad_record='skip'``).

    Runs after every train/val/test epoch and, for iteration-based training,
    every ``interval`` iterations. Nothing is silently dropped: skipped
    records were each logged when they were met; this is the count.
    """

    priority = 'VERY_LOW'

    def __init__(self, interval: Optional[int] = None):
        self.interval = interval

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
            skipped = (summary['skipped_at_runtime'] +
                       summary['skipped_at_load'])
            if getattr(dataset, 'on_bad_record', 'raise') != 'skip':
                continue
            level = logging.WARNING if skipped else logging.INFO
            runner.logger.log(
                level, f'[{loop_name}] {summary["dataset"]}: '
                f'{summary["skipped_at_load"]} bad record(s) left out while '
                f'loading annotations, {summary["skipped_at_runtime"]} found '
                f'bad while reading samples ({summary["replaced_fetches"]} '
                f'fetches replaced since the last report); '
                f'{summary["kept"]} records in the dataset')

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
