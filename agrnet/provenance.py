"""Where a result comes from: the git commit of the code that made it and the environment it ran in.

Benchmark and experiment results record ``environment()``; a weights entry records the commit that trained it
(``git_commit(strict=True)``).
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from agrnet.runtime import device_description
from agrnet.version import __version__

PACKAGE_DIR = Path(__file__).resolve().parent
"""The folder agrnet is imported from, whose git checkout ``git_commit`` asks."""


def _git(*arguments: str) -> str:
    """The output of ``git -C PACKAGE_DIR ARGUMENTS``, stripped; CalledProcessError when git fails."""
    command = ["git", "-C", str(PACKAGE_DIR), *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def git_commit(strict: bool = False) -> str | None:
    """The commit of the git checkout agrnet is imported from; None outside one or where git is missing.

    ``strict``, for a commit recorded as the one that made something (a weights entry): ValueError instead of None,
    and a warning on stderr when the checkout has uncommitted changes to tracked files.
    """
    try:
        commit = _git("rev-parse", "HEAD")
        changes = _git("status", "--porcelain", "--untracked-files=no") if strict else ""
    except (OSError, subprocess.CalledProcessError) as error:
        if strict:
            raise ValueError(
                f"--commit: agrnet at {PACKAGE_DIR} is not in a git checkout; pass the training commit"
            ) from error
        return None
    if changes:
        print(f"warning: the checkout at {PACKAGE_DIR} has uncommitted changes; recording HEAD {commit}",
              file=sys.stderr)  # fmt: skip
    return commit or None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, machine, device, git commit, command line and time: what a saved benchmark result needs."""
    return {
        "agrnet": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": device_description(device),
        "git_commit": git_commit(),
        "command": shlex.join(sys.argv),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
