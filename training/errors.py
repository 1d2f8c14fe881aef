"""The errors training reports as one line (CLI: `error: ...`, exit 2), besides the runtime's BundleError.

* `DataError` (training.data): bad input data, naming the file/column and the fix.
* `OutputError`: an output path training will not write to (e.g. `--out` is a file or a foreign directory).
* `edge_agent.inference.BundleError`: a bundle that fails the runtime's own verifier (`verify_bundle`).
"""

from __future__ import annotations

from edge_agent.inference import BundleError
from training.data.errors import DataError

__all__ = ["BundleError", "DataError", "OutputError"]


class OutputError(Exception):
    """An output path that cannot be used; the message names it and the fix (one line)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
