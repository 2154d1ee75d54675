"""A run's ``log.jsonl``: one JSON object a line, written by the training loop (``RunLog``) and read back by
``read_log``, the one reader of the file.

Every record has a ``kind`` and a ``step``: "start" (each start or resume of the run: device, world size, versions,
precision), "train" (one per logged step: epoch, learning rate, the loss and each term of Eq. (11), images per
second, and ``"diagnostics"``), "val" (the validation scores), "stop" (the run ended early, and why) and "error"
(the terms that went NaN or infinite).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

LOG_NAME = "log.jsonl"
"""The file name of the log in a run directory."""


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a run's ``log.jsonl`` (a run directory or the file itself)."""
    path = Path(path)
    path = path / LOG_NAME if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training log not found (agrnet train writes <run folder>/{LOG_NAME})")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON line ({error})") from error
    return records


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, allow_nan=False) + "\n"


class RunLog:
    """A run's ``log.jsonl`` open for appending, line-buffered; ``RunLog(None)`` (the processes other than rank 0)
    writes nothing."""

    def __init__(self, file: IO[str] | None) -> None:
        self._file = file

    @classmethod
    def open(cls, run_dir: Path, step: int) -> RunLog:
        """Open the log of ``run_dir`` for a run that starts at ``step``. Resuming, the records written after
        ``step`` (by the run that went on past the checkpoint it resumes from) are dropped first."""
        path = run_dir / LOG_NAME
        if step > 0 and path.exists():
            kept = [record for record in read_log(path) if record.get("step", 0) <= step]
            path.write_text("".join(_line(record) for record in kept))
        return cls(path.open("a", buffering=1))

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` as one line (NaN and infinities are refused: JSON has none)."""
        if self._file is not None:
            self._file.write(_line(record))

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
