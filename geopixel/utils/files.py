"""Reading annotation and prediction files with errors that name them."""
import json
from typing import Optional

from .errors import BadRecordError


def read_json(path: str, what: str = 'file',
              record: Optional[object] = None):
    """The content of a JSON file.

    A missing or unreadable file is a :class:`BadRecordError` naming the
    file (``what`` says which kind, e.g. ``'polygon file'``) and the record
    that points at it, if any.
    """
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadRecordError(f'{what} is missing', path, record) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRecordError(f'{what} is not valid JSON ({exc})', path,
                             record) from None
