"""The one exception the data layer raises for bad input: a single line naming the file/column and the fix."""

from __future__ import annotations


class DataError(Exception):
    """Bad input data. `str(err)` is one line: what is wrong, where (file, column, row), and the fix.

    The CLI prints it and exits 2; it is never shown as a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
