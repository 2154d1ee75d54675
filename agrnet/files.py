"""Atomic file writes: a reader never sees half a file, and a crash mid-write keeps the previous one.

Every file agrnet writes for later (checkpoints, results and reports as JSON, cached label maps) goes through
``atomic_write``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def default_cache_dir() -> Path:
    """Where agrnet's caches go (label maps, precision probes): ``$AGRNET_CACHE``, else ``~/.cache/agrnet``."""
    return Path(os.environ.get("AGRNET_CACHE") or Path.home() / ".cache" / "agrnet").expanduser()


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write`` on a temporary file in the folder of ``path`` (created if missing), fsync it, then
    ``os.replace`` it onto ``path`` and fsync the folder. Returns ``path`` as a ``Path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if os.name == "posix":
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return path


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path``, atomically."""
    text = json.dumps(data, indent=2) + "\n"
    return atomic_write(path, lambda file: file.write(text.encode()))
