"""The one error type for bad input data."""
from typing import Optional


class BadRecordError(ValueError):
    """A dataset record that cannot be used, with where it came from.

    The message always names the file, the record and the problem, so a user
    with a 17k-record dataset can find and fix the one bad line.
    """

    def __init__(self,
                 problem: str,
                 file: Optional[str] = None,
                 record: Optional[object] = None):
        self.problem = problem
        self.file = file
        self.record = record
        where = []
        if file is not None:
            where.append(f'file {file}')
        if record is not None:
            where.append(f'record {record}')
        prefix = ', '.join(where)
        super().__init__(f'{prefix}: {problem}' if prefix else problem)
