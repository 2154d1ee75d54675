"""Strip a notebook to what is committed: no outputs, no execution counts, clean metadata.

    python book/tools/clean.py [NOTEBOOK ...]      clean these notebooks in place (default: every notebook in book/)
    python book/tools/clean.py --check [...]       only list the notebooks that are not clean (exit status 1 if any)

Notebook metadata keeps the ``python3`` kernelspec and the language name; cell metadata keeps the ``tags``
(papermill's ``parameters`` tag, ``hide-input`` and the like) and ``mystnb`` (a figure's numbered caption, see
``book/tools/captions.py``), and nothing else. ``tests/test_notebooks.py`` requires every notebook of the book to be
unchanged by ``clean_notebook``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat
from layout import BOOK

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
NOTEBOOK_METADATA = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
#: The cell metadata that is kept: tags, and MyST-NB's options (``mystnb.figure``: caption and name).
CELL_METADATA_KEYS = ("tags", "mystnb")


def clean_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A cleaned copy of ``notebook`` (the argument is not modified)."""
    cleaned = copy.deepcopy(notebook)
    cleaned.metadata = nbformat.from_dict(copy.deepcopy(NOTEBOOK_METADATA))
    for cell in cleaned.cells:
        metadata = cell.get("metadata", {})
        kept = {key: copy.deepcopy(metadata[key]) for key in CELL_METADATA_KEYS if metadata.get(key)}
        cell.metadata = nbformat.from_dict(kept)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return cleaned


def book_notebooks() -> list[Path]:
    """Every notebook under ``book/`` except JupyterLab's checkpoints."""
    return sorted(p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def main(argv: list[str] | None = None) -> int:
    """Clean or check notebooks; exit status 1 when ``--check`` finds one that is not clean."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in book/")
    parser.add_argument("--check", action="store_true", help="do not write; list notebooks that are not clean")
    args = parser.parse_args(argv)
    dirty = []
    for path in args.notebooks or book_notebooks():
        if not path.is_file():
            parser.error(f"no such notebook: {path}")
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        cleaned = clean_notebook(notebook)
        text = nbformat.writes(cleaned) + "\n"
        if path.read_text(encoding="utf-8") == text:
            continue
        dirty.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            print(f"cleaned {path}")
    if args.check and dirty:
        print("not clean (run python book/tools/clean.py):\n  " + "\n  ".join(map(str, dirty)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
