"""Keep other libraries' log lines off stdout."""
import logging
import sys

_DEEPSPEED_LOGGER = 'DeepSpeed'


class _ToStderr(logging.Filter):
    """Re-emits every record on stderr and drops it from the logger's own
    handlers (DeepSpeed's writes to stdout)."""

    def __init__(self):
        super().__init__()
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter(
            '[%(asctime)s] [%(levelname)s] [%(filename)s:%(lineno)d] '
            '%(message)s'))

    def filter(self, record: logging.LogRecord) -> bool:
        self.handler.handle(record)
        return False


def route_deepspeed_logs_to_stderr() -> None:
    """Send DeepSpeed's log lines to stderr (idempotent).

    An installed DeepSpeed is imported by ``mmengine.runner`` and logs its
    accelerator choice to stdout, which breaks tools whose stdout is data
    (``--json``). The filter sits on the named logger, so it applies however
    and whenever DeepSpeed later configures it; nothing is imported.
    """
    logger = logging.getLogger(_DEEPSPEED_LOGGER)
    if not any(isinstance(f, _ToStderr) for f in logger.filters):
        logger.addFilter(_ToStderr())
