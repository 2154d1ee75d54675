"""Where the book lies and in what order it reads: the folders of the sources and of the build, and the documents
of ``_toc.yml``. The book's scripts (``build.py``, ``check_html.py``, ``clean.py``, ``captions.py``) import it as a
sibling: run as scripts, their own folder is on the path, and pytest puts it there (``pythonpath`` in
``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent
BOOK = TOOLS.parent
ROOT = BOOK.parent
BUILD = ROOT / "_build"
HTML = BUILD / "html"
TOC = ROOT / "_toc.yml"
SUFFIXES = (".ipynb", ".md")


def toc_entries(toc: Path = TOC) -> list[str]:
    """The documents of a Jupyter Book 1.x ``_toc.yml`` in reading order, as written there (no suffix)."""
    import yaml

    if not toc.is_file():
        raise FileNotFoundError(f"{toc}: no table of contents")
    data = yaml.safe_load(toc.read_text())
    if not isinstance(data, dict) or "root" not in data:
        raise ValueError(f"{toc}: expected a mapping with a 'root' entry")
    entries = [str(data["root"])]

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if "file" in node:
                entries.append(str(node["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key))

    walk({key: data[key] for key in ("parts", "chapters", "sections") if key in data})
    return entries


def entry_path(entry: str, root: Path = ROOT) -> Path:
    """The file of a toc entry (``book/intro`` -> ``book/intro.md``); FileNotFoundError when there is none."""
    for suffix in SUFFIXES:
        path = root / f"{entry}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"_toc.yml entry {entry!r}: no {' or '.join(entry + s for s in SUFFIXES)} in {root}")
