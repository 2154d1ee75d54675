"""``agrnet prepare``: summaries on good data, every bad file listed on bad data, caches outside the root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agrnet.cli import main


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _lapa(root: Path, names: tuple[str, ...]) -> None:
    for name in names:
        _save(root / "train" / "images" / f"{name}.jpg", np.full((12, 12, 3), 128, np.uint8))
        label = np.zeros((12, 12), np.uint8)
        label[3:9, 3:9] = 1
        _save(root / "train" / "labels" / f"{name}.png", label)


def test_good_dataset_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _lapa(tmp_path, ("a", "b", "c"))
    assert main(["prepare", "lapa", str(tmp_path), "--split", "train", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "lapa train: 3 samples (release: 18176), 0 bad" in out
    assert "background 3, skin 3, left eyebrow 0" in out
    assert "12x12 (3)" in out


def test_every_bad_file_is_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _lapa(tmp_path, ("a", "b", "c", "d", "e"))
    truncated = tmp_path / "train" / "images" / "b.jpg"
    truncated.write_bytes(truncated.read_bytes()[:100])
    bad_ids = np.zeros((12, 12), np.uint8)
    bad_ids[0, 0] = 42
    _save(tmp_path / "train" / "labels" / "c.png", bad_ids)
    _save(tmp_path / "train" / "labels" / "d.png", np.zeros((6, 12), np.uint8))
    (tmp_path / "train" / "images" / "e.jpg").unlink()
    assert main(["prepare", "lapa", str(tmp_path), "--split", "train", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "4 bad file(s):" in out
    assert "b.jpg: cannot decode image" in out
    assert "c.png: label ids [42] are outside the lapa schema" in out
    assert "d.png: label is 12x6" in out
    assert "e.jpg: file is missing" in out
    assert "lapa train: 5 samples (release: 18176), 4 bad" in out


def test_missing_requested_split_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _lapa(tmp_path, ("a",))
    assert main(["prepare", "lapa", str(tmp_path), "--split", "val", "--no-progress"]) == 1
    assert "lapa val: not present" in capsys.readouterr().out
    assert main(["prepare", "lapa", str(tmp_path / "nowhere"), "--no-progress"]) == 1


def test_default_splits_skip_absent_ones(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "lip", str(shared_data / "lip-mini"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "lip train: 1 samples" in out and "lip val: 1 samples" in out


def test_celebamask_writes_its_cache_outside_the_root(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = shared_data / "celebamask-hq-mini"
    before = sorted(p.name for p in root.rglob("*"))
    code = main(["prepare", "celebamask-hq", str(root), "--cache-dir", str(tmp_path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "celebamask-hq all: 4 samples, 0 bad" in out
    assert len(list((tmp_path / "celebamask-hq").rglob("*.png"))) == 4
    assert sorted(p.name for p in root.rglob("*")) == before
