"""Build the executable book: papermill runs every notebook of ``_toc.yml``, then jupyter-book renders the HTML.

    python book/tools/build.py [--params FILE] [--only NAME ...] [--reuse-executed] [--no-html] [--no-check]

1. The build tree ``_build/src`` gets ``_config.yml``, ``_toc.yml`` and everything in ``book/`` but the notebooks
   and the scripts (``book/tools/``, ``book/conftest.py``).
2. papermill executes each notebook into ``_build/src/book/`` with its working directory in ``book/`` (as in
   JupyterLab and nbval), on the ``python3`` kernel of the running environment. Parameters come from the
   notebook's own ``parameters`` cell (which adapts to the machine) unless ``--params`` overrides them. With
   ``--reuse-executed``, a notebook that nbval has just run through (``make test``; ``book/conftest.py`` keeps its
   outputs in ``_build/executed/``) is taken from there instead, when it was run from the same source and without
   parameters; CI builds that way, so no notebook is executed twice.
3. ``jupyter-book build`` renders ``_build/src`` into ``_build/html`` with warnings treated as errors.
4. ``book/tools/check_html.py`` opens every chapter in headless Chromium when a Chromium is installed.

Any failing notebook is named and makes the build exit non-zero. ``_build/notebook-times.json`` records how long
each notebook took. Every chapter that pictures a trained model uses the weights shipped with the package
(``agrnet weights list``); only the training chapter trains, for a few steps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from check_html import check_book, find_chromium
from layout import BOOK, BUILD, HTML, ROOT, TOC, TOOLS, entry_path, toc_entries

SOURCE = BUILD / "src"
CONFIG = ROOT / "_config.yml"
KERNEL = "python3"
EXECUTED = BUILD / "executed"
"""Where ``book/conftest.py`` keeps the notebooks nbval ran (``--reuse-executed`` takes them from there)."""
AT_A_GLANCE = "at_a_glance.md"


def notebooks(toc: Path = TOC) -> list[Path]:
    """The notebooks of the table of contents, in reading order."""
    return [path for path in map(entry_path, toc_entries(toc)) if path.suffix == ".ipynb"]


def read_parameters(path: Path | None) -> dict[str, dict[str, Any]]:
    """A parameter file (YAML or JSON): notebook name (stem) or ``"*"`` -> {parameter: value}."""
    if path is None:
        return {}
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"--params: no such file {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"--params {path}: expected a mapping of notebook name or '*' to a mapping of parameters")
    return data


def prepare_source_tree() -> None:
    """Fresh ``_build/src`` with the configuration and every book file except notebooks and scripts (``*.py`` and
    the whole ``book/tools/``), and
    ``book/at_a_glance.md``: the results table that the landing page and "Reproducing the paper" include, written
    from the committed results files (``agrnet.book.results_at_a_glance``)."""
    from agrnet.book import results_at_a_glance

    shutil.rmtree(SOURCE, ignore_errors=True)
    SOURCE.mkdir(parents=True)
    shutil.copy2(CONFIG, SOURCE / CONFIG.name)
    shutil.copy2(TOC, SOURCE / TOC.name)
    ignore = shutil.ignore_patterns("*.ipynb", "*.py", ".ipynb_checkpoints", "__pycache__", TOOLS.name)
    shutil.copytree(BOOK, SOURCE / BOOK.name, ignore=ignore)
    (SOURCE / BOOK.name / AT_A_GLANCE).write_text(results_at_a_glance(BOOK / "results") + "\n")


def execute(notebook: Path, parameters: dict[str, Any]) -> tuple[float, str | None]:
    """Run ``notebook`` with papermill into the build tree; (seconds, None) or (seconds, error message)."""
    import papermill

    output = SOURCE / notebook.relative_to(ROOT)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name=KERNEL,
            cwd=str(notebook.parent),
            progress_bar=False,
            request_save_on_cell_execute=False,
        )
    except Exception as error:  # any failure is reported with the notebook's name
        return time.perf_counter() - start, f"{type(error).__name__}: {error}".strip()
    return time.perf_counter() - start, None


def source_digest(path: Path) -> str:
    """The sha256 of a notebook file, which an executed copy in ``EXECUTED`` records as ``agrnet_source_sha256``."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def executed_copy(notebook: Path, executed: Path | None = None) -> Path | None:
    """nbval's execution of ``notebook`` in ``executed`` (default ``EXECUTED``, written by ``book/conftest.py``),
    when it ran this very source and holds no error output; else None."""
    import nbformat

    copy = (executed or EXECUTED) / notebook.name
    if not copy.is_file():
        return None
    ran = nbformat.read(copy, as_version=4)
    if ran.metadata.get("agrnet_source_sha256") != source_digest(notebook):
        return None
    outputs = [output for cell in ran.cells if cell.cell_type == "code" for output in cell.outputs]
    return None if any(output.output_type == "error" for output in outputs) else copy


def run_notebooks(
    selected: list[Path], parameter_file: dict[str, dict[str, Any]], reuse: bool = False
) -> list[str]:
    """Execute ``selected`` in order (or, with ``reuse``, take nbval's execution of those it ran without
    parameters); print and record timings; return the failures, one line each."""
    failures, times = [], {}
    for notebook in selected:
        parameters = {**parameter_file.get("*", {}), **parameter_file.get(notebook.stem, {})}
        copy = executed_copy(notebook) if reuse and not parameters else None
        if copy is not None:
            shutil.copy2(copy, SOURCE / notebook.relative_to(ROOT))
            print(f"reusing nbval's execution of {notebook.relative_to(ROOT)} ({copy})", flush=True)
            continue
        shown = f" with {parameters}" if parameters else ""
        print(f"executing {notebook.relative_to(ROOT)}{shown}", flush=True)
        seconds, error = execute(notebook, parameters)
        times[str(notebook.relative_to(ROOT))] = round(seconds, 1)
        print(f"  {'FAILED' if error else 'ok'} in {seconds:.1f} s", flush=True)
        if error:
            failures.append(f"{notebook.relative_to(ROOT)}: {error.splitlines()[0]}")
            print(error, file=sys.stderr)
    (BUILD / "notebook-times.json").write_text(json.dumps(times, indent=2) + "\n")
    return failures


def build_html() -> int:
    """``jupyter-book build`` of the build tree into ``_build/html``, warnings as errors."""
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(SOURCE), "--path-output", str(ROOT), "--all", "-W", "--keep-going"]
    return subprocess.run(command, cwd=ROOT).returncode


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; the exit status is non-zero when anything failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, help="YAML/JSON file: notebook name or '*' -> parameters")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="execute only these notebooks (by name)")
    parser.add_argument(
        "--reuse-executed", action="store_true",
        help="take the notebooks nbval just ran (make test) from _build/executed/ instead of executing them again",
    )  # fmt: skip
    parser.add_argument("--no-html", action="store_true", help="execute the notebooks, skip jupyter-book")
    parser.add_argument("--no-check", action="store_true", help="skip the headless-Chromium check")
    args = parser.parse_args(argv)
    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")

    parameter_file = read_parameters(args.params)
    selected = notebooks()
    if args.only:
        unknown = sorted(set(args.only) - {path.stem for path in selected})
        if unknown:
            parser.error(f"--only: no notebook named {', '.join(unknown)} in _toc.yml")
        selected = [path for path in selected if path.stem in args.only]
    prepare_source_tree()
    failures = run_notebooks(selected, parameter_file, reuse=args.reuse_executed)
    if failures:
        print("notebooks that failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    if args.no_html or args.only:
        return 0
    status = build_html()
    if status:
        print(f"jupyter-book build failed (exit status {status})", file=sys.stderr)
        return status
    print(f"HTML: {HTML / 'index.html'}")
    if args.no_check:
        return 0
    chromium = find_chromium()
    if chromium is None:
        print("note: no chromium on PATH, skipping the headless-browser check (apt-get install chromium)")
        return 0
    entries = toc_entries()
    with_figures = [entry for entry in entries if entry_path(entry).suffix == ".ipynb"]
    problems = check_book(HTML, entries, with_figures, chromium=chromium, screenshots=BUILD / "screenshots")
    for problem in problems:
        print(f"check_html: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
