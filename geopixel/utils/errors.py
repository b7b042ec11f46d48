"""The one error type for bad input data, and a text check."""
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


def unencodable_text(text: str) -> Optional[str]:
    """Why ``text`` cannot be written as UTF-8, or None if it can.

    JSON escapes and Python strings allow lone surrogates such as
    ``"\\ud800"``; no tokenizer or file can encode them.
    """
    try:
        text.encode('utf-8')
    except UnicodeEncodeError as exc:
        return (f'the character at position {exc.start} (from 0) is '
                f'{text[exc.start]!r} ({exc.reason}): not encodable as '
                'UTF-8')
    return None


def run_tool(main, errors=(BadRecordError, )) -> None:
    """Run a command-line tool's ``main``; bad input (one of ``errors``)
    ends it with its message and exit status 1, without a traceback: the
    message already names the file, the record and the problem."""
    try:
        main()
    except errors as err:
        raise SystemExit(f'error: {err}') from None
