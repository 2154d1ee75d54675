"""The landing page's results table is read from the committed results files, and the book build writes it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from agrnet import weights
from agrnet.book import results_at_a_glance
from agrnet.predict import DEFAULT_WEIGHTS
from agrnet.stats import paired_difference

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "book" / "results"


def _f1(path: Path, variant: str) -> dict[int, float]:
    runs = json.loads(path.read_text())["runs"]
    return {run["seed"]: run["metrics"]["test"]["mean_f1"] for run in runs if run["variant"] == variant}


def test_the_table_holds_the_numbers_of_the_results_files() -> None:
    text = results_at_a_glance(RESULTS)
    main = list(_f1(RESULTS / "fasseg_main.json", "full").values())
    assert f"| {100 * sum(main) / len(main):.1f} ± " in text
    full, paper = _f1(RESULTS / "fasseg_ablation.json", "full"), _f1(RESULTS / "fasseg_ablation.json", "paper-baseline")
    seeds = sorted(set(full) & set(paper))
    difference = paired_difference([full[s] for s in seeds], [paper[s] for s in seeds])
    expected = f"{100 * difference.mean:+.1f} [{100 * difference.low:+.1f}, {100 * difference.high:+.1f}]"
    row = next(line for line in text.splitlines() if line.startswith("| full AGRNet minus the paper's baseline"))
    assert f"({len(seeds)} seeds, 300 steps at 192 px) | {expected}: " in row
    assert row.endswith("| +1.4 | {doc}`ablations` |")
    assert "**Verdict.**" in text and f"({expected} points, where Table I(a) has +1.4)" in text
    full, paper = _f1(RESULTS / "fasseg_long.json", "full"), _f1(RESULTS / "fasseg_long.json", "paper-baseline")
    seeds = sorted(set(full) & set(paper))
    difference = paired_difference([full[s] for s in seeds], [paper[s] for s in seeds])
    expected = f"{100 * difference.mean:+.1f} [{100 * difference.low:+.1f}, {100 * difference.high:+.1f}]"
    row = next(line for line in text.splitlines() if "on the main protocol, paired" in line)
    assert f"({len(seeds)} seeds, 800 steps at 256 px) | {expected}: " in row and "at 192, it " in text
    authors = RESULTS / "fasseg_authors.json"
    departures, paper_form = _f1(authors, "all three"), _f1(authors, "full")
    seeds = sorted(set(departures) & set(paper_form))
    rows = [line for line in text.splitlines() if line.startswith("| the authors' code's three departures")]
    difference = paired_difference([departures[s] for s in seeds], [paper_form[s] for s in seeds])
    expected = f"{100 * difference.mean:+.1f} [{100 * difference.low:+.1f}, {100 * difference.high:+.1f}]"
    assert f"({len(seeds)} seeds, 300 steps at 192 px) | {expected}: " in rows[0]
    assert rows[0].endswith("| – | {doc}`real_faces` |")


def test_without_results_files_only_the_shipped_weights_are_there(tmp_path: Path) -> None:
    rows = [line for line in results_at_a_glance(tmp_path).splitlines() if line.startswith("| ")][1:]
    assert len(rows) == 2 and "the shipped `fasseg-resnet18`" in rows[0]
    celebamask = next(score for score in weights.get(DEFAULT_WEIGHTS).scores() if score["dataset"] == "celebamask-hq")
    score = f"{100 * celebamask['mean_f1']:.1f}"
    assert f"CelebAMask-HQ test faces read as FASSEG, through the photo pipeline | {score} | 91.8" in rows[1]
    assert "Verdict" not in results_at_a_glance(tmp_path)


def test_the_build_writes_it_beside_the_pages_that_include_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("book_build_glance", ROOT / "book" / "tools" / "build.py")
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build
    spec.loader.exec_module(build)
    monkeypatch.setattr(build, "SOURCE", tmp_path / "src")
    build.prepare_source_tree()
    written = (tmp_path / "src" / "book" / build.AT_A_GLANCE).read_text()
    assert written == results_at_a_glance(RESULTS) + "\n"
    for page in ("intro.md", "reproducing.md"):
        assert f"```{{include}} {build.AT_A_GLANCE}\n```" in (ROOT / "book" / page).read_text(), page
