"""``agrnet download fasseg``, offline: zips in the FASSEG repository's real layout, built here from tiny BMPs."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from PIL import Image

from agrnet import download
from agrnet.book import FASSEG_FOLDERS
from agrnet.cli import main
from agrnet.data import build_dataset

TOP = "FASSEG-repository-master/"
COMMIT = "0fab1b3baa056cdb09f42ced0ba71d4cc1c8fb33"
YAWS = (-90, -75, -60, -45, -30, -15, 0, 15, 30, 45, 60, 75, 90)
TEST_LABEL_YAWS = (-60, -30, 0, 30, 60, 90)


def _bmp(colours: list[tuple[int, int, int]]) -> bytes:
    """A 6 x 4 BMP whose rows cycle through ``colours``."""
    image = Image.new("RGB", (6, 4))
    image.putdata([colours[(i // 6) % len(colours)] for i in range(24)])
    out = io.BytesIO()
    image.save(out, format="BMP")
    return out.getvalue()


PHOTO = _bmp([(200, 150, 120), (90, 60, 40)])
LABEL = _bmp([(255, 0, 0), (255, 255, 0), (127, 0, 0), (0, 0, 255)])  # background, skin, hair, eyes


def _pose(yaw: int) -> str:
    return "0" if yaw == 0 else f"{yaw:+d}"


def repository_files() -> dict[str, bytes]:
    """The files of the FASSEG repository's master branch (names and counts as published), tiny contents."""
    files = {"README.md": b"# FAce SEmantic SEGmentation repository\n", "index.md": b"", "V2/.DS_Store": b"\0"}
    for version in ("V1", "V2"):
        for part, count in (("Train", 20), ("Test", 50)):
            for n in range(1, count + 1):
                files[f"{version}/{part}_RGB/{n}.bmp"] = PHOTO
                files[f"{version}/{part}_Labels/{n}.bmp"] = LABEL
    files["V2/Test_RGB/JPEG/10.jpg"] = b"\xff\xd8\xff\xd9"  # the repository keeps a few JPEG copies
    for part, persons in (("Train", range(1, 8)), ("Test", range(8, 16))):
        for yaw in YAWS:
            for person in persons:
                for series in (1, 2):
                    name = f"personne{person:02d}{series}{46 + yaw // 15}+0{_pose(yaw) if yaw else '+0'}.bmp"
                    files[f"V3/{part}_RGB/{_pose(yaw)}/{name}"] = PHOTO
                    if part == "Train" or yaw in TEST_LABEL_YAWS:
                        files[f"V3/{part}_labels/{_pose(yaw)}/{name}"] = LABEL
    files["V3/Test_RGB/README.md"] = b"These images were used for testing the segmenter."
    files["V3/Test_labels/README.md"] = b"These images were used for testing the segmenter."
    return files


def write_zip(path: Path, files: dict[str, bytes], top: str = TOP, stored: bool = False) -> Path:
    """A zip like GitHub's branch archives: one top folder, folder entries, the commit as the comment."""
    compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        zf.comment = COMMIT.encode()
        folders = sorted({name.rsplit("/", i)[0] + "/" for name in files for i in range(1, name.count("/") + 1)})
        if top:
            zf.writestr(top, b"")
        for folder in folders:
            zf.writestr(top + folder, b"")
        for name, data in files.items():
            zf.writestr(top + name, data)
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_zip(tmp_path_factory.mktemp("fasseg-zip") / "master.zip", repository_files())


def agrnet_download(*args: str | Path) -> int:
    return main(["download", "fasseg", *map(str, args)])


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders that ``agrnet download`` left in ``folder``."""
    return sorted(
        p.name for p in folder.iterdir() if ".partial-" in p.name or ".download-" in p.name or ".old-" in p.name
    )


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("agrnet download: error: ")
    return err


def test_unpacks_the_repository_archive_into_the_layout_the_reader_reads(tmp_path, archive, capsys):
    target = tmp_path / "data" / "fasseg"
    assert agrnet_download(target, "--archive", archive) == 0
    out = capsys.readouterr().out
    assert f"repository commit {COMMIT}" in out and "sha256 " in out
    assert "multipose-train 182 at 13 yaws, multipose-test 96 at 6 yaws" in out
    sizes = {"train": 20, "test": 50, "multipose-train": 182, "multipose-test": 96}
    for split, size in sizes.items():
        if split == "multipose-test":
            with pytest.warns(UserWarning, match="112 images have no label"):
                dataset = build_dataset("fasseg", target, split)
        else:
            dataset = build_dataset("fasseg", target, split)
        assert len(dataset) == size, split
        sample = dataset[len(dataset) - 1]
        assert tuple(sample["label"].shape) == (4, 6)
        assert set(sample["label"].unique().tolist()) <= {0, 1, 2, 3}
        if split.startswith("multipose"):
            assert sample["yaw"] == 90
    assert (target / "V1" / "Train_RGB" / "1.bmp").is_file() and (target / "README.md").is_file()
    assert not list(target.rglob(".DS_Store"))
    assert leftovers(target.parent) == []


def test_a_second_run_keeps_the_folder_and_force_replaces_it(tmp_path, archive, capsys):
    target = tmp_path / "fasseg"
    assert agrnet_download(target, "--archive", archive) == 0
    (target / "marker").write_text("old")
    assert agrnet_download(target, "--archive", tmp_path / "absent.zip") == 0  # not even opened
    assert "already there" in capsys.readouterr().out
    assert agrnet_download(target, "--archive", archive, "--force") == 0
    assert not (target / "marker").exists() and (target / "V3" / "Test_labels" / "+90").is_dir()
    assert leftovers(tmp_path) == []


def test_downloads_through_the_url(tmp_path, archive, capsys):
    target = tmp_path / "fasseg"
    assert agrnet_download(target, "--url", archive.as_uri()) == 0
    assert f"downloading {archive.as_uri()}" in capsys.readouterr().out
    assert len(build_dataset("fasseg", target, "train")) == 20
    assert leftovers(tmp_path) == []


def test_offline_is_one_line_naming_the_url(tmp_path, capsys):
    url = "http://127.0.0.1:9/master.zip"  # the discard port: connection refused, as offline
    assert agrnet_download(tmp_path / "data" / "fasseg", "--url", url) == 1
    line = error_line(capsys)
    assert url in line and "--archive" in line
    assert list(tmp_path.iterdir()) == []  # not even the data/ folder it made for the download


def test_sha256_is_checked(tmp_path, archive, capsys):
    target = tmp_path / "fasseg"
    assert agrnet_download(target, "--archive", archive, "--sha256", "0" * 64) == 1
    assert str(archive) in error_line(capsys) and not target.exists()
    assert agrnet_download(target, "--archive", archive, "--sha256", "xyz") == 1
    assert "--sha256" in error_line(capsys)
    assert agrnet_download(target, "--archive", archive, "--sha256", download.sha256(archive).upper()) == 0


def _corrupt_crc(path: Path) -> Path:
    files = repository_files()
    write_zip(path, files, stored=True)
    data = bytearray(path.read_bytes())
    offset = data.index(LABEL[:40]) + 60  # in the pixels of the first stored BMP
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(write_zip(p, repository_files()).read_bytes()[:5000]) and p, "not a readable zip"),
        (lambda p: p.write_bytes(b"<html>rate limited</html>") and p, "not a readable zip"),
        (_corrupt_crc, "CRC"),
    ],
    ids=["truncated", "not-a-zip", "bad-crc"],
)
def test_a_corrupt_archive_is_one_line_naming_the_file(tmp_path, capsys, make: Callable[[Path], Path], expected):
    bad = tmp_path / "master.zip"
    make(bad)
    target = tmp_path / "fasseg"
    assert agrnet_download(target, "--archive", bad) == 1
    line = error_line(capsys)
    assert str(bad) in line and expected in line
    assert not target.exists() and leftovers(tmp_path) == []


def _without(prefix: str) -> dict[str, bytes]:
    return {name: data for name, data in repository_files().items() if not name.startswith(prefix)}


def _renamed(old: str, new: str) -> dict[str, bytes]:
    return {name.replace(old, new): data for name, data in repository_files().items()}


def _one_label_less() -> dict[str, bytes]:
    files = repository_files()
    del files["V2/Test_Labels/7.bmp"]
    return files


def _label_without_image() -> dict[str, bytes]:
    files = repository_files()
    del files["V3/Train_RGB/-45/personne03143+0-45.bmp"]
    return files


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (lambda: _without("V3/Test_labels/"), "V3/Test_labels: no labels of split multipose-test"),
        (lambda: _without("V2/"), "V2/Train_RGB: no images of split train"),
        (lambda: _renamed("V2/Train_Labels/", "V2/Train_Annotations/"), "V2/Train_Labels: no labels of split train"),
        (lambda: _renamed("V3/Train_RGB/+15/", "V3/Train_RGB/JPEG/"), "V3/Train_RGB/JPEG: not a pose folder"),
        (_one_label_less, "holds 50 images and 49 labels, the published release 50 and 50 (--any-counts"),
        (_label_without_image, "V3/Train_labels/-45: 1 label(s) without an image, e.g. personne03143+0-45"),
    ],
    ids=["no-multipose-test-labels", "no-V2", "renamed-labels", "non-pose-folder", "count", "orphan-label"],
)
def test_a_wrong_layout_is_one_line_naming_the_folder(tmp_path, capsys, files, expected):
    bad = write_zip(tmp_path / "master.zip", files())
    target = tmp_path / "fasseg"
    assert agrnet_download(target, "--archive", bad) == 1
    line = error_line(capsys)
    assert str(bad) in line and "not the FASSEG repository layout" in line and expected in line
    assert not target.exists() and leftovers(tmp_path) == []


def test_any_counts_accepts_other_split_sizes(tmp_path):
    archive = write_zip(tmp_path / "master.zip", _one_label_less())
    assert agrnet_download(tmp_path / "fasseg", "--archive", archive, "--any-counts") == 0
    with pytest.warns(UserWarning, match="1 images have no label and are skipped: Test_RGB/7.bmp"):
        assert len(build_dataset("fasseg", tmp_path / "fasseg", "test")) == 49


def test_a_folder_archive_without_top_folder_and_unsafe_names(tmp_path, capsys):
    flat = write_zip(tmp_path / "flat.zip", repository_files(), top="")
    assert agrnet_download(tmp_path / "fasseg", "--archive", flat) == 0
    evil = write_zip(tmp_path / "evil.zip", {**repository_files(), "../outside.txt": b"x"}, top="")
    assert agrnet_download(tmp_path / "other", "--archive", evil) == 1
    assert "unsafe member name" in error_line(capsys)
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "other").exists()


def test_a_missing_archive_is_one_line_naming_it(tmp_path, capsys):
    assert agrnet_download(tmp_path / "fasseg", "--archive", tmp_path / "master.zip") == 1
    assert f"{tmp_path / 'master.zip'}: no such file" in error_line(capsys)
    assert not (tmp_path / "fasseg").exists()


def test_a_foreign_folder_is_left_alone(tmp_path, archive, capsys):
    target = tmp_path / "fasseg"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    assert agrnet_download(target, "--archive", archive) == 1
    assert str(target) in error_line(capsys)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failure_while_unpacking_leaves_nothing_behind(tmp_path, archive, monkeypatch, capsys, failure):
    calls = []

    def copy(source, out, length=0):
        calls.append(1)
        if len(calls) > 300:
            raise failure
        out.write(source.read())

    monkeypatch.setattr(download.shutil, "copyfileobj", copy)
    target = tmp_path / "fasseg"
    if isinstance(failure, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            agrnet_download(target, "--archive", archive)
    else:
        assert agrnet_download(target, "--archive", archive) == 1
        line = error_line(capsys)
        assert str(target) in line and "No space left" in line
    assert not target.exists() and leftovers(tmp_path) == []


def test_force_keeps_the_old_folder_when_the_new_one_fails(tmp_path, archive, monkeypatch):
    target = tmp_path / "fasseg"
    assert agrnet_download(target, "--archive", archive) == 0
    (target / "marker").write_text("old")
    monkeypatch.setattr(download, "check_with_reader", lambda folder: ["split train: broken"])
    assert agrnet_download(target, "--archive", archive, "--force") == 1
    assert (target / "marker").read_text() == "old" and leftovers(tmp_path) == []


def test_the_pages_workflow_downloads_fasseg_and_points_the_book_at_it():
    steps = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())["jobs"]["build"]["steps"]
    runs = [step.get("run", "") for step in steps]
    fetch = next(i for i, run in enumerate(runs) if "agrnet download fasseg data/fasseg" in run)
    build = next(i for i, run in enumerate(runs) if "make book" in run)
    assert fetch < build and "--params .github/book-params.yml" in runs[build]
    parameters = yaml.safe_load((REPO / ".github" / "book-params.yml").read_text())
    folders = set()
    for notebook, values in parameters.items():
        cells = json.loads((REPO / "book" / f"{notebook}.ipynb").read_text())["cells"]
        cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
        defined = set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*=", "".join(cell["source"]), flags=re.MULTILINE))
        assert set(values) <= defined, (notebook, set(values) - defined)
        folders |= {(REPO / "book" / value).resolve() for value in values.values()}
    assert folders == {REPO / "data"}
    assert (REPO / "book" / FASSEG_FOLDERS[0]).resolve() == REPO / "data" / "fasseg", "the chapters find it there"
