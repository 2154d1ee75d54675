"""Atomic file writes: a reader never sees half a file, and a crash mid-write keeps the previous one.

Every file agrnet writes for later (checkpoints, results and reports as JSON, cached label maps) goes through
``atomic_write``. Its temporary file is named after the target, this host and this process
(``.<name>.<pid>@<host>.<random>.tmp``), so that a writer killed mid-write (SIGKILL, power loss) leaves a file the
next write of the same target recognises as stale and removes (``remove_stale_temporaries``). Written files get
the permissions the user's umask gives (0644 for the usual 022), not the 0600 of a temporary file.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def default_cache_dir() -> Path:
    """Where agrnet's caches go (label maps, precision probes): ``$AGRNET_CACHE``, else ``~/.cache/agrnet``."""
    return Path(os.environ.get("AGRNET_CACHE") or Path.home() / ".cache" / "agrnet").expanduser()


class BadFileError(RuntimeError):
    """A file that exists but cannot be read as what it should be (truncated, corrupt, of a foreign kind); the
    message names the file."""


class WriteError(OSError):
    """A file that could not be written (disk full, read-only folder, quota): one line naming the file and the
    reason; ``atomic_write`` leaves nothing partial behind."""

    def __str__(self) -> str:
        return str(self.strerror)


def _write_failure(path: Path, error: BaseException) -> WriteError | None:
    """``error`` of a write of ``path`` as a ``WriteError``, or None when it is not a failure of the file system.
    ``torch.save`` reports one as a RuntimeError of its zip writer ("[enforce fail at inline_container.cc...":
    a short write seen as "PytorchStreamWriter failed writing" or "unexpected pos")."""
    if isinstance(error, WriteError):
        return error
    if isinstance(error, OSError):
        return WriteError(error.errno, f"cannot write {path}: {error.strerror or error}")
    if isinstance(error, RuntimeError) and "enforce fail at inline_container.cc" in str(error):
        reason = "the file system took only part of the data (disk full, quota or file size limit)"
        return WriteError(None, f"cannot write {path}: {reason}")
    return None


_TEMPORARY = re.compile(r"\.(?:(?P<pid>\d+)@(?P<host>[^/]+)\.)?[a-z0-9_]{8}\.tmp")
"""The part of a temporary file's name after ``.<target name>``: mkstemp's 8 random characters, preceded by
``<pid>@<host>.`` (absent in the names earlier versions of agrnet wrote)."""


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that writers of ``path`` killed mid-write left beside it; returns them.

    A temporary file is stale when its writer was a process of this host that no longer runs, or when its name
    predates the ``<pid>@<host>`` part. Live writers' files, and other hosts' (on a shared folder), are kept. A
    no-op outside POSIX, where a process cannot be probed without side effects.
    """
    path = Path(path)
    if os.name != "posix" or not path.parent.is_dir():
        return []
    prefix, host, removed = f".{path.name}", socket.gethostname(), []
    with os.scandir(path.parent) as entries:
        names = [entry.name for entry in entries if entry.name.startswith(prefix) and entry.name.endswith(".tmp")]
    for name in names:
        match = _TEMPORARY.fullmatch(name, len(prefix))
        if match is None or (match["pid"] is not None and (match["host"] != host or _alive(int(match["pid"])))):
            continue
        stale = path.parent / name
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object], clean: bool = True) -> Path:
    """Call ``write`` on a temporary file in the folder of ``path`` (created if missing), fsync it, give it the
    umask's permissions, then ``os.replace`` it onto ``path`` and fsync the folder. Returns ``path`` as a ``Path``.

    With ``clean`` (the default) the stale temporary files of ``path`` go first (``remove_stale_temporaries``;
    it lists the folder, so writers of many files into one folder, such as caches, pass False). A failure of the
    file system (disk full, read-only, quota) raises ``WriteError`` naming ``path``, with the temporary file gone.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if clean:
            remove_stale_temporaries(path)
        prefix = f".{path.name}.{os.getpid()}@{socket.gethostname()}."
        handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _write_failure(path, error) from error
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        failure = _write_failure(path, error)
        if failure is None:
            raise
        raise failure from error
    if os.name == "posix":
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return path


def check_writable(path: str | os.PathLike[str], what: str, folder: bool = False) -> Path:
    """``path`` as a ``Path`` when a file (or, with ``folder``, a folder) can be written there, else ValueError
    naming ``what`` (the option, e.g. "--out") and the problem. Call it before the work whose result goes there.

    The nearest existing folder on the way must accept a new file: a temporary file is created in it and removed,
    which answers for permissions, ACLs and read-only mounts alike (and for root, who may write anywhere).
    """
    path = Path(path)
    if path.is_dir() and not folder:
        raise ValueError(f"{what} {path}: is a folder; expected a file name")
    if path.exists() and not path.is_dir() and folder:
        raise ValueError(f"{what} {path}: is a file; expected a folder")
    existing = next(p for p in ((path,) if folder else ()) + tuple(path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{what} {path}: {existing} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".agrnet-write-check.", dir=existing)
    except OSError as error:
        raise ValueError(f"{what} {path}: cannot write into {existing} ({error.strerror})") from error
    os.close(handle)
    os.unlink(probe)
    return path


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path``, atomically."""
    text = json.dumps(data, indent=2) + "\n"
    return atomic_write(path, lambda file: file.write(text.encode()))


LOCK_NAME = ".agrnet.lock"
"""The lock file of a run folder (``lock_folder``): it stays in the folder; the lock is on it, not its existence."""


class FolderLockedError(OSError):
    """Another process holds the lock of a folder (``lock_folder``); the message names the folder and the holder."""


class FolderLock:
    """An advisory lock (``fcntl.flock``) on the file ``LOCK_NAME`` of a folder, held by this process until
    ``release`` or its exit, crash included (the kernel drops the lock with the file descriptor). The file holds
    the holder as ``<pid>@<host>``. A no-op where ``fcntl`` does not exist (Windows)."""

    def __init__(self, folder: Path, handle: int | None) -> None:
        self.folder = folder
        self._handle = handle

    def release(self, _close: Callable[[int], None] = os.close) -> None:
        """Drop the lock (idempotent)."""
        if self._handle is not None:
            _close(self._handle)
            self._handle = None

    __del__ = release


def lock_folder(folder: str | os.PathLike[str], what: str = "folder") -> FolderLock:
    """Take the lock of ``folder`` (which must exist) at once, or raise ``FolderLockedError`` naming ``what``, the
    folder and the process that holds it (pid and host)."""
    folder = Path(folder)
    try:
        import fcntl
    except ImportError:
        return FolderLock(folder, None)
    path = folder / LOCK_NAME
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(handle, 256, 0).decode(errors="replace").strip()
        os.close(handle)
        pid, _, host = holder.partition("@")
        named = f"pid {pid} on {host}" if pid.isdigit() and host else "another process"
        raise FolderLockedError(
            f"{what} {folder}: in use by {named} (lock file {path}); wait for it to end or choose another folder"
        ) from None
    except BaseException:
        os.close(handle)
        raise
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"{os.getpid()}@{socket.gethostname()}\n".encode(), 0)
    return FolderLock(folder, handle)


def remove_new_folders(path: str | os.PathLike[str]) -> Callable[[], None]:
    """A function that removes the folders on the way to ``path`` (``path`` included) that do not exist now and
    are empty when it is called: call it when the work that created them fails, so that it leaves nothing."""
    missing = [p for p in (Path(path), *Path(path).parents) if not p.exists()]

    def remove() -> None:
        for folder in missing:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                return

    return remove
