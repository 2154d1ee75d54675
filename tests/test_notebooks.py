"""The book's notebooks are committed clean and wired into the table of contents.

Executing them is the job of nbval (``pytest --nbval-lax book/``) and of ``make book``; these tests only read
files, so they are fast.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"


def _load(name: str) -> ModuleType:
    """Import ``book/<name>.py`` (the book's scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"book_{name}", BOOK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _load("build")
clean = _load("clean")
NOTEBOOKS = clean.book_notebooks()
IDS = [str(path.relative_to(ROOT)) for path in NOTEBOOKS]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def test_book_has_notebooks() -> None:
    assert NOTEBOOKS, "no notebooks found under book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_valid_and_clean(path: Path) -> None:
    notebook = _read(path)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {index} has outputs (run python book/clean.py)"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"
    assert clean.clean_notebook(notebook) == notebook, f"{path.name}: metadata not clean (run python book/clean.py)"
    layout = nbformat.writes(notebook) + "\n"
    assert path.read_text(encoding="utf-8") == layout, f"{path.name}: not in nbformat's layout (run book/clean.py)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_has_one_parameters_cell_of_plain_assignments(path: Path) -> None:
    cells = [cell for cell in _read(path).cells if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}"
    assert cells[0].cell_type == "code", f"{path.name}: the parameters cell must be a code cell"
    statements = ast.parse(cells[0].source).body
    assert statements, f"{path.name}: the parameters cell is empty"
    for statement in statements:
        assert isinstance(statement, ast.Assign | ast.AnnAssign), (
            f"{path.name}: the parameters cell may only assign values (papermill overrides them), found "
            f"{ast.unparse(statement)!r}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_starts_with_a_title(path: Path) -> None:
    first = _read(path).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), (
        f"{path.name}: the first cell must be markdown starting with a '# ' title (the chapter's name)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_in_the_table_of_contents(path: Path) -> None:
    entries = build.toc_entries()
    assert path.relative_to(ROOT).with_suffix("").as_posix() in entries, f"{path.name} is not listed in _toc.yml"


def test_every_toc_entry_exists() -> None:
    entries = build.toc_entries()
    assert entries[0] == "book/intro"
    assert len(entries) == len(set(entries)), "a document appears twice in _toc.yml"
    for entry in entries:
        assert build.entry_path(entry).is_file()


def test_toc_entries_reads_parts_chapters_and_sections(tmp_path: Path) -> None:
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: a\nparts:\n  - caption: P\n    chapters:\n      - file: b\n"
        "        sections:\n          - file: c\n      - file: d\n"
    )
    assert build.toc_entries(toc) == ["a", "b", "c", "d"]
    with pytest.raises(FileNotFoundError, match="missing"):
        build.entry_path("missing", root=tmp_path)


def test_clean_notebook_strips_outputs_counts_and_metadata() -> None:
    dirty = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "other", "display_name": "Other"}, "widgets": {}})
    code = nbformat.v4.new_code_cell("x = 1", execution_count=3, metadata={"tags": ["parameters"], "scrolled": True})
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    dirty.cells = [nbformat.v4.new_markdown_cell("# T", metadata={"jp-MarkdownHeadingCollapsed": True}), code]
    cleaned = clean.clean_notebook(dirty)
    assert dirty.cells[1].outputs, "clean_notebook must not modify its argument"
    assert cleaned.metadata == clean.NOTEBOOK_METADATA
    assert cleaned.cells[0].metadata == {}
    assert cleaned.cells[1].metadata == {"tags": ["parameters"]}
    assert cleaned.cells[1].outputs == [] and cleaned.cells[1].execution_count is None
    assert cleaned.cells[1].source == "x = 1"
