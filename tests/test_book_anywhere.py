"""A chapter runs where a reader runs it: a copy of the notebook alone in an empty folder (as Colab opens it), with
no ``../shared`` and no FASSEG, says what it fell back to, and every chapter can install its own package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from agrnet.book import FASSEG_FOLDERS, find_fasseg

BOOK = Path(__file__).resolve().parent.parent / "book"


def test_a_chapter_runs_alone_in_an_empty_folder_and_says_what_it_fell_back_to(tmp_path: Path) -> None:
    folder = tmp_path / "colab" / "content"  # two levels down: no ../data or ../../shared/data above it
    folder.mkdir(parents=True)
    notebook = shutil.copy(BOOK / "reasoning.ipynb", folder / "reasoning.ipynb")
    executed = folder / "executed.ipynb"
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "agg"}
    command = [sys.executable, "-m", "papermill", "--cwd", str(folder), str(notebook), str(executed),
               "-k", "python3", "--no-progress-bar"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = [
        "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/markdown", ""))
        for cell in json.loads(executed.read_text())["cells"] if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
    ]  # fmt: skip
    text = "\n".join(outputs)
    assert "FASSEG: not found (looked in ../data/fasseg, data/fasseg, ../../shared/data/fasseg)" in text, text[:2000]
    assert "synthetic-resnet18" in text and "synthetic test" in text, "it says which weights and faces it shows"
    assert sorted(p.name for p in folder.iterdir()) == ["executed.ipynb", "reasoning.ipynb"], "it wrote nothing else"


def test_find_fasseg_prefers_the_download_folder_and_names_what_it_did(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_fasseg() == (None, find_fasseg()[1]) and "DOWNLOAD_FASSEG = True" in find_fasseg()[1]
    shutil.copytree(shared_data / "fasseg", tmp_path / "data" / "fasseg")
    assert find_fasseg() == (Path("data/fasseg"), "FASSEG: found at data/fasseg.")
    assert find_fasseg("elsewhere")[0] is None and "holds no FASSEG faces" in find_fasseg("elsewhere")[1]
    assert FASSEG_FOLDERS[0] == "../data/fasseg", "from book/, the repository's data/fasseg comes first"


@pytest.mark.parametrize("path", sorted(BOOK.glob("*.ipynb")), ids=lambda path: path.name)
def test_every_chapter_installs_its_package_where_it_is_missing(path: Path) -> None:
    cells = nbformat.read(path, as_version=4).cells
    first_code = next(cell for cell in cells if cell.cell_type == "code")
    assert 'find_spec("agrnet") is None' in first_code.source and "%pip install" in first_code.source
    assert "remove-cell" in first_code.metadata.get("tags", []), "the rendered book does not show it"
