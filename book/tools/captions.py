"""The book's numbered figure captions, kept in the metadata of the cell that draws each figure.

    python book/tools/captions.py                                     list every figure cell and its caption
    python book/tools/captions.py NOTEBOOK CELL_ID --name fig-NAME --caption TEXT    set (or change) one caption

MyST-NB reads a code cell's ``mystnb.figure`` metadata and wraps what the cell displays in a figure with that
``caption`` (MyST Markdown: math, ``{doc}`` links) and ``name``; with Sphinx's ``numfig`` the figure is numbered
("Fig. 3.1") and ``{numref}`fig-NAME``` refers to it. In JupyterLab the same metadata is under the cell's
"Advanced Tools" (property inspector). Because every displayed output of the cell gets the caption and the name,
a captioned cell displays exactly one figure and nothing else (printed text is fine, it is not wrapped), and it
does not display inside a loop; names start with ``fig-`` and are unique in the book. ``tests/test_notebooks.py``
checks all of that for every cell that draws a figure (``draws_figure``).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat
from layout import BOOK

#: A call that shows a figure: pyplot's show, or display() of an ``agrnet.viz`` figure or of a ``figure``.
FIGURE_CALL = re.compile(r"\bplt\.show\(\)|\bdisplay\(\s*(\w+_figure\(|figure\s*\))")


def python_source(source: str) -> str:
    """A cell's source without IPython magics and shell escapes, so that ``ast`` can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def draws_figure(cell: nbformat.NotebookNode) -> bool:
    """Whether a code cell shows a matplotlib figure (``plt.show()`` or ``display(<a figure>)``)."""
    return cell.cell_type == "code" and bool(FIGURE_CALL.search(cell.source))


def figure_options(cell: nbformat.NotebookNode) -> dict:
    """The cell's ``mystnb.figure`` metadata (caption, name), empty when it has none."""
    return dict(cell.get("metadata", {}).get("mystnb", {}).get("figure", {}))


def display_calls(source: str) -> tuple[int, int]:
    """(calls of ``display`` or ``plt.show`` in ``source``, how many of them sit inside a loop)."""
    tree = ast.parse(python_source(source))
    total = looped = 0

    def visit(node: ast.AST, in_loop: bool) -> None:
        nonlocal total, looped
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("display", "plt.show", "IPython.display.display"):
                total += 1
                looped += in_loop
        for child in ast.iter_child_nodes(node):
            visit(child, in_loop or isinstance(node, ast.For | ast.While | ast.comprehension))

    visit(tree, False)
    return total, looped


def caption_problems(cell: nbformat.NotebookNode) -> list[str]:
    """Why a figure cell's caption would not give exactly one numbered, captioned figure (none: it is fine)."""
    options = figure_options(cell)
    problems = []
    if not str(options.get("caption", "")).strip():
        problems.append("no mystnb.figure.caption")
    if not str(options.get("name", "")).startswith("fig-"):
        problems.append("no mystnb.figure.name starting with 'fig-'")
    total, looped = display_calls(cell.source)
    if total != 1:
        problems.append(f"{total} display()/plt.show() calls: a captioned cell shows exactly one figure")
    if looped:
        problems.append("display()/plt.show() inside a loop: every figure would get the same name")
    tree = ast.parse(python_source(cell.source))
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not isinstance(tree.body[-1].value, ast.Call):
        problems.append("ends with an expression whose value would be displayed inside the figure")
    elif tree.body and isinstance(tree.body[-1], ast.Expr):
        name = ast.unparse(tree.body[-1].value.func)
        if name not in ("display", "plt.show", "print"):
            problems.append(f"ends with {name}(...), whose value would be displayed inside the figure")
    return problems


def set_caption(path: Path, cell_id: str, caption: str, name: str) -> None:
    """Write ``caption`` and ``name`` into the ``mystnb.figure`` metadata of cell ``cell_id`` of ``path``."""
    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    cells = [cell for cell in notebook.cells if cell.get("id") == cell_id]
    if not cells:
        raise KeyError(f"{path}: no cell with id {cell_id!r}")
    if not name.startswith("fig-"):
        raise ValueError(f"figure names start with 'fig-', got {name!r}")
    metadata = cells[0].setdefault("metadata", {})
    metadata.setdefault("mystnb", {})["figure"] = {"caption": caption.strip(), "name": name}
    path.write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """List the figure cells of the book, or set one caption; exit status 1 when listing finds a problem."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", type=Path, help="the notebook to change (default: list all)")
    parser.add_argument("cell_id", nargs="?", help="id of the cell that draws the figure")
    parser.add_argument("--caption", help="the caption, MyST Markdown")
    parser.add_argument("--name", help="the figure's name, fig-..., unique in the book")
    args = parser.parse_args(argv)
    if args.notebook is not None:
        if not (args.cell_id and args.caption and args.name):
            parser.error("setting a caption needs NOTEBOOK CELL_ID --caption TEXT --name fig-NAME")
        set_caption(args.notebook, args.cell_id, args.caption, args.name)
        return 0
    failed = False
    for path in sorted(BOOK.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        for cell in notebook.cells:
            if draws_figure(cell):
                options, problems = figure_options(cell), caption_problems(cell)
                failed |= bool(problems)
                print(f"{path.name} {cell.get('id')} {options.get('name', '-')}: {options.get('caption', '-')}")
                for problem in problems:
                    print(f"    problem: {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
