"""The book's notebooks are committed clean and wired into the table of contents.

Executing them is the job of nbval (``pytest --nbval-lax book/``) and of ``make book``; these tests only read
files, so they are fast.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

from agrnet.viz import BOOK_WIDTH, MIN_FONT_PT

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"


def _load(name: str) -> ModuleType:
    """Import ``book/<name>.py`` (the book's scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"book_{name}", BOOK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _load("tools/build")
clean = _load("tools/clean")
captions = _load("tools/captions")
NOTEBOOKS = clean.book_notebooks()
IDS = [str(path.relative_to(ROOT)) for path in NOTEBOOKS]
TOC_NOTEBOOKS = build.notebooks()
TOC_IDS = [str(path.relative_to(ROOT)) for path in TOC_NOTEBOOKS]
#: The longest code line that the book's theme shows unclipped (book/_static/agrnet.css sizes code for it).
CODE_COLUMNS = 88


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
            assert not cell.outputs, f"{path.name} cell {index} has outputs (run python book/tools/clean.py)"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"
    assert clean.clean_notebook(notebook) == notebook, f"{path.name}: metadata not clean (run book/tools/clean.py)"
    layout = nbformat.writes(notebook) + "\n"
    assert path.read_text(encoding="utf-8") == layout, f"{path.name}: not in nbformat's layout (book/tools/clean.py)"


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


@pytest.mark.parametrize("path", TOC_NOTEBOOKS, ids=TOC_IDS)
def test_code_lines_fit_the_book_column(path: Path) -> None:
    long = [
        f"cell {index} line {number}: {len(line)} characters"
        for index, cell in enumerate(_read(path).cells)
        if cell.cell_type == "code"
        for number, line in enumerate(cell.source.splitlines(), start=1)
        if len(line) > CODE_COLUMNS
    ]
    assert not long, f"{path.name}: code lines over {CODE_COLUMNS} columns are clipped in the book: {long}"


def test_long_code_lines_are_found(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("x = 1\n" + "y" * (CODE_COLUMNS + 1))]
    nbformat.write(notebook, tmp_path / "wide.ipynb")
    with pytest.raises(AssertionError, match="cell 0 line 2: 89 characters"):
        test_code_lines_fit_the_book_column(tmp_path / "wide.ipynb")


@pytest.mark.parametrize("path", TOC_NOTEBOOKS, ids=TOC_IDS)
def test_every_figure_has_a_numbered_caption(path: Path) -> None:
    problems = [
        f"cell {cell.get('id')}: {problem}"
        for cell in _read(path).cells
        if captions.draws_figure(cell)
        for problem in captions.caption_problems(cell)
    ]
    assert not problems, f"{path.name} (see book/tools/captions.py): {problems}"


def test_figure_names_are_unique_in_the_book() -> None:
    names = [
        captions.figure_options(cell).get("name")
        for path in TOC_NOTEBOOKS
        for cell in _read(path).cells
        if captions.figure_options(cell)
    ]
    assert names, "no captioned figure in the book"
    assert len(names) == len(set(names)), f"figure names used twice: {sorted(n for n in names if names.count(n) > 1)}"


def test_caption_problems_are_found() -> None:
    looped = nbformat.v4.new_code_cell("for x in range(2):\n    plt.show()")
    assert captions.draws_figure(looped)
    problems = captions.caption_problems(looped)
    assert "no mystnb.figure.caption" in problems and any("inside a loop" in p for p in problems)
    both = nbformat.v4.new_code_cell("display(Markdown('a'))\nplt.show()")
    both.metadata = {"mystnb": {"figure": {"caption": "A figure.", "name": "fig-a"}}}
    assert captions.caption_problems(both) == [
        "2 display()/plt.show() calls: a captioned cell shows exactly one figure"
    ]
    good = nbformat.v4.new_code_cell("%matplotlib inline\ndisplay(f1_figure(report, schema))")
    good.metadata = {"mystnb": {"figure": {"caption": "F1 per class.", "name": "fig-f1"}}}
    assert captions.caption_problems(good) == []
    assert clean.clean_notebook(nbformat.v4.new_notebook(cells=[good])).cells[0].metadata == good.metadata


@pytest.mark.parametrize("path", TOC_NOTEBOOKS, ids=TOC_IDS)
def test_plotting_cells_are_collapsed_and_library_code_is_shown(path: Path) -> None:
    for index, cell in enumerate(_read(path).cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code":
            continue
        if "plt.subplots(" in cell.source:
            assert "hide-input" in tags, f"{path.name} cell {index} draws a figure: tag it hide-input"
        if re.search(r"^source\(", cell.source, flags=re.MULTILINE):
            assert "hide-input" not in tags, f"{path.name} cell {index} shows the library's code: keep it visible"


@pytest.mark.parametrize("path", TOC_NOTEBOOKS, ids=TOC_IDS)
def test_figures_use_the_book_style(path: Path) -> None:
    code = "\n".join(cell.source for cell in _read(path).cells if cell.cell_type == "code")
    if "plt." in code:
        assert re.search(r"^book_style\(\)", code, flags=re.MULTILINE), f"{path.name}: call agrnet.viz.book_style()"
    sizes = re.findall(r"""\b(?:fontsize|labelsize)["']?\s*[=:]\s*(\d+(?:\.\d+)?)\b""", code)
    small = [size for size in sizes if float(size) < MIN_FONT_PT]
    assert not small, f"{path.name}: font sizes below {MIN_FONT_PT:g} pt: {small}"
    widths = [float(w) for w in re.findall(r"figsize=\(\s*(\d+(?:\.\d+)?)\s*[,*]", code)]
    assert all(width <= BOOK_WIDTH for width in widths), f"{path.name}: figures wider than {BOOK_WIDTH} in: {widths}"


def test_restricted_datasets_are_off_unless_asked_for() -> None:
    cells = [cell for cell in _read(BOOK / "data.ipynb").cells if "parameters" in cell.metadata.get("tags", [])]
    assignments = {
        target.id: statement.value for statement in ast.parse(cells[0].source).body for target in statement.targets
    }
    assert ast.literal_eval(assignments["SHOW_RESTRICTED_DATA"]) is False
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.y*ml")):
        text = workflow.read_text()
        assert "SHOW_RESTRICTED_DATA" not in text, f"{workflow.name} must not show CelebAMask-HQ or LIP samples"
        for params in re.findall(r"--params[= ]+([^\s\"']+)", text):
            assert "SHOW_RESTRICTED_DATA" not in (ROOT / params).read_text(), f"{workflow.name}: {params}"


def test_nbvals_executions_are_reused_only_for_the_source_they_ran(tmp_path: Path) -> None:
    conftest = _load("conftest")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1"), nbformat.v4.new_code_cell("x")])
    source = tmp_path / "chapter.ipynb"
    nbformat.write(notebook, source)
    result = nbformat.v4.new_output("execute_result", data={"text/plain": "2"})
    stream = nbformat.v4.new_output("stream", name="stdout", text="hi\n")
    executed = tmp_path / "executed"
    assert conftest.write_executed(source, {0: [result]}, executed) is None, "a cell that did not run"
    copy = conftest.write_executed(source, {0: [result], 1: [stream]}, executed)
    ran = nbformat.read(copy, as_version=4)
    nbformat.validate(ran)
    assert [len(cell.outputs) for cell in ran.cells] == [1, 1] and ran.cells[0].outputs[0].execution_count == 1
    assert build.executed_copy(source, executed) == copy
    source.write_text(source.read_text().replace("1 + 1", "1 + 2"))
    assert build.executed_copy(source, executed) is None, "the source changed since nbval ran it"
    error = nbformat.v4.new_output("error", ename="ValueError", evalue="no", traceback=[])
    conftest.write_executed(source, {0: [result], 1: [error]}, executed)
    assert build.executed_copy(source, executed) is None, "an error output is never reused"
