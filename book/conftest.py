"""nbval runs every notebook of the book in `make test`; this keeps what it ran, so that the HTML can be built from
those executions instead of running every notebook a second time (`book/tools/build.py --reuse-executed`, as CI does).

After the session, each notebook whose code cells all ran and passed is written to ``_build/executed/<name>.ipynb``
(``build.EXECUTED``) with nbval's outputs and the sha256 of the source it ran, which ``tools/build.py`` checks before
reusing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import nbformat
import pytest

_spec = importlib.util.spec_from_file_location("book_build", Path(__file__).parent / "tools" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

_outputs: dict[Path, dict[int, list[Any]]] = {}
_failed: set[Path] = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Keep the outputs of every notebook cell nbval runs, and which notebooks had a cell that did not pass."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and type(item).__name__ == "IPyNbCell":
        path = Path(str(item.fspath))
        if not report.passed:
            _failed.add(path)
        _outputs.setdefault(path, {})[item.cell_num] = list(item.test_outputs or [])


def write_executed(path: Path, outputs: dict[int, list[Any]], folder: Path) -> Path | None:
    """The notebook at ``path`` with ``outputs`` (code cell number -> nbval's outputs) written into ``folder``, or
    None when some code cell has none (it did not run)."""
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if len(outputs) != len(code):
        return None
    for number, cell in enumerate(code):
        cell.outputs = outputs[number]
        cell.execution_count = number + 1
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = number + 1
    notebook.metadata["agrnet_source_sha256"] = build.source_digest(path)
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / path.name)
    return folder / path.name


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write each notebook that ran through without a failure to ``build.EXECUTED``."""
    for path, outputs in _outputs.items():
        if path not in _failed:
            write_executed(path, outputs, build.EXECUTED)
