"""``agrnet download``: fetch a public dataset, verify it and unpack it in the layout ``agrnet`` reads.

    agrnet download fasseg [DIR] [--archive ZIP] [--url URL] [--sha256 HEX] [--any-counts] [--force]

Only FASSEG is public without a sign-up: its authors publish it as the GitHub repository
https://github.com/massimomauro/FASSEG-repository, whose branch archive (a zip with one top folder,
``FASSEG-repository-master/``) holds the datasets as plain folders of BMP files:

    V1/{Train,Test}_{RGB,Labels}/<n>.bmp           frontal01, 20 train + 50 test faces (ICIP 2015)
    V2/{Train,Test}_{RGB,Labels}/<n>.bmp           frontal02, the same faces, precise labels
    V3/{Train,Test}_RGB/<yaw>/<name>.bmp           multipose01 (ICME 2017), 13 yaws from -90 to +90
    V3/{Train,Test}_labels/<yaw>/<name>.bmp        labels: 182 train at 13 yaws, 96 test at 6 yaws

The archive is checked (zip integrity, every member's CRC, the folders and counts above, optionally its SHA-256),
unpacked into a temporary folder beside ``DIR`` and renamed to ``DIR`` only once complete, so ``DIR`` is either
absent or whole. Every failure is one line naming the URL, file or folder, and exit status 1.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from agrnet.data.fasseg import FASSEG_SUFFIXES, Fasseg

FASSEG_URL = "https://github.com/massimomauro/FASSEG-repository/archive/refs/heads/master.zip"
DEFAULT_DIR = Path("data") / "fasseg"
#: Files of the archive that are never unpacked (macOS folder metadata).
JUNK = (".DS_Store", "__MACOSX", "Thumbs.db")
CHUNK = 1 << 20


class DownloadError(Exception):
    """A failure to report as one line (the message names the URL, file or folder)."""


@dataclass(frozen=True)
class Split:
    """One split of the published FASSEG repository and its size there."""

    name: str  # the split of ``agrnet.data.Fasseg``
    version: str  # V2 or V3
    part: str  # Train or Test
    images: int
    labels: int
    image_poses: int = 0  # pose folders holding images (V3 only)
    label_poses: int = 0  # pose folders holding labels (V3 only)

    @property
    def multipose(self) -> bool:
        return self.version == "V3"


#: The published sizes (massimomauro/FASSEG-repository, master): V2 = frontal02, V3 = multipose01. The multipose
#: test split has images at all 13 yaws but labels at 6 (0, +-30, +-60, +90).
FASSEG_SPLITS = (
    Split("train", "V2", "Train", images=20, labels=20),
    Split("test", "V2", "Test", images=50, labels=50),
    Split("multipose-train", "V3", "Train", images=182, labels=182, image_poses=13, label_poses=13),
    Split("multipose-test", "V3", "Test", images=208, labels=96, image_poses=13, label_poses=6),
)


@dataclass
class SplitCount:
    """What an archive or folder holds for one split."""

    images: dict[str, set[str]] = field(default_factory=dict)  # pose ("" for V2) -> stems
    labels: dict[str, set[str]] = field(default_factory=dict)
    label_folder: str = ""

    def total(self, kind: str) -> int:
        return sum(len(stems) for stems in getattr(self, kind).values())

    def poses(self, kind: str) -> int:
        return sum(1 for stems in getattr(self, kind).values() if stems)


def _is_junk(parts: Iterable[str]) -> bool:
    return any(part in JUNK or part.startswith("._") for part in parts)


def count_layout(files: Iterable[str]) -> dict[str, SplitCount]:
    """Images and labels per FASSEG split among relative POSIX file paths (``V2/Train_RGB/1.bmp``, ...)."""
    counts = {split.name: SplitCount() for split in FASSEG_SPLITS}
    by_folder = {}
    for split in FASSEG_SPLITS:
        by_folder[(split.version, f"{split.part}_RGB")] = (split, "images")
        for label in (f"{split.part}_Labels", f"{split.part}_labels"):
            by_folder[(split.version, label)] = (split, "labels")
    for name in files:
        parts = PurePosixPath(name).parts
        if len(parts) < 3 or _is_junk(parts) or (parts[0], parts[1]) not in by_folder:
            continue
        split, kind = by_folder[(parts[0], parts[1])]
        if PurePosixPath(name).suffix.lower() not in FASSEG_SUFFIXES:
            continue
        if split.multipose and len(parts) == 4:
            pose = parts[2]
        elif not split.multipose and len(parts) == 3:
            pose = ""
        else:
            continue  # e.g. V2/Test_RGB/JPEG/<n>.jpg copies, which the reader does not read either
        count = counts[split.name]
        getattr(count, kind).setdefault(pose, set()).add(PurePosixPath(name).stem)
        if kind == "labels":
            count.label_folder = f"{parts[0]}/{parts[1]}"
    return counts


def layout_problems(files: Iterable[str], folders: Iterable[str] = (), any_counts: bool = False) -> list[str]:
    """Why the relative paths ``files`` (and ``folders``) are not the FASSEG layout, one line each.

    The reader ``agrnet.data.Fasseg`` needs every split's image and label folders, integer pose folders under
    ``V3/*_RGB`` and an image for every label. Unless ``any_counts``, the sizes must be the published ones.
    """
    files = list(files)
    counts = count_layout(files)
    problems = []
    pose_dirs = {PurePosixPath(name).parts[:3] for name in files if len(PurePosixPath(name).parts) >= 4}
    pose_dirs |= {PurePosixPath(name).parts[:3] for name in folders if len(PurePosixPath(name).parts) >= 3}
    pose_dirs = {parts for parts in pose_dirs if not _is_junk(parts)}
    for split in FASSEG_SPLITS:
        count = counts[split.name]
        rgb = f"{split.version}/{split.part}_RGB"
        labels = count.label_folder or f"{split.version}/{split.part}_{'labels' if split.multipose else 'Labels'}"
        if not count.images:
            problems.append(f"{rgb}: no images of split {split.name} (expected {split.images})")
            continue
        if not count.labels:
            problems.append(f"{labels}: no labels of split {split.name} (expected {split.labels})")
            continue
        if split.multipose:
            for version, folder, pose in sorted(pose_dirs):
                if (version, folder) == (split.version, f"{split.part}_RGB") and not re.fullmatch(r"[+-]?\d+", pose):
                    problems.append(f"{rgb}/{pose}: not a pose folder (the yaw in degrees, e.g. +15)")
        for pose, stems in sorted(count.labels.items()):
            orphans = sorted(stems - count.images.get(pose, set()))
            if orphans:
                where = f"{labels}/{pose}" if pose else labels
                problems.append(f"{where}: {len(orphans)} label(s) without an image, e.g. {orphans[0]}")
        if any_counts:
            continue
        found = (count.total("images"), count.total("labels"))
        if found != (split.images, split.labels):
            problems.append(
                f"{rgb}: split {split.name} holds {found[0]} images and {found[1]} labels, the published release "
                f"{split.images} and {split.labels} (--any-counts accepts other sizes)"
            )
        elif split.multipose and (count.poses("images"), count.poses("labels")) != (
            split.image_poses,
            split.label_poses,
        ):
            problems.append(
                f"{rgb}: split {split.name} has images at {count.poses('images')} yaws and labels at "
                f"{count.poses('labels')}, the published release at {split.image_poses} and {split.label_poses}"
            )
    return problems


def summary(files: Iterable[str]) -> str:
    """One line: the pairs of each split found among ``files``."""
    counts = count_layout(files)
    parts = []
    for split in FASSEG_SPLITS:
        count = counts[split.name]
        pairs = sum(len(stems & count.images.get(pose, set())) for pose, stems in count.labels.items())
        text = f"{split.name} {pairs}"
        if split.multipose:
            text += f" at {count.poses('labels')} yaws"
        parts.append(text)
    return "labelled pairs: " + ", ".join(parts)


def sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, target: Path, timeout: float = 60.0) -> None:
    """Download ``url`` into ``target``; DownloadError naming the URL when that fails."""
    request = urllib.request.Request(url, headers={"User-Agent": "agrnet-download"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, target.open("wb") as out:
            total, size, shown = 0, int(response.headers.get("Content-Length") or 0), 0
            while block := response.read(CHUNK):
                out.write(block)
                total += len(block)
                if total - shown >= 16 * CHUNK:
                    shown = total
                    of = f" of {size / 2**20:.0f}" if size else ""
                    print(f"  {total / 2**20:.0f}{of} MiB", flush=True)
    except urllib.error.HTTPError as error:
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise DownloadError(
            f"{url}: cannot download ({error.reason}); offline? fetch it elsewhere and pass --archive FILE"
        ) from None
    except (OSError, TimeoutError) as error:
        raise DownloadError(f"{url}: download failed ({error})") from None
    print(f"  {total / 2**20:.1f} MiB", flush=True)


def archive_root(names: list[str]) -> str:
    """The folder inside the archive that holds ``V2`` and ``V3``: ``""`` or one top folder (``X/``)."""
    tops = {PurePosixPath(name).parts[0] for name in names if PurePosixPath(name).parts}
    if {"V2", "V3"} & tops or len(tops) != 1:
        return ""
    (top,) = tops
    return f"{top}/"


def _member_path(name: str, root: str, archive: Path) -> str | None:
    """The path a member is unpacked to (relative), None when it is skipped; DownloadError on an unsafe name."""
    if not name.startswith(root):
        return None
    relative = name[len(root) :]
    parts = PurePosixPath(relative).parts
    if name.startswith("/") or "\\" in name or ".." in parts or re.match(r"^[A-Za-z]:", name):
        raise DownloadError(f"{archive}: unsafe member name {name!r}")
    if not parts or _is_junk(parts):
        return None
    return relative


def open_archive(archive: Path) -> zipfile.ZipFile:
    """Open and fully test a zip archive (every member's CRC); DownloadError naming the file otherwise."""
    if not archive.is_file():
        raise DownloadError(f"{archive}: no such file")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise DownloadError(f"{archive}: not a readable zip archive ({error})") from None
    try:
        bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as error:
        zf.close()
        raise DownloadError(f"{archive}: corrupt zip archive ({error})") from None
    if bad is not None:
        zf.close()
        raise DownloadError(f"{archive}: corrupt zip archive (member {bad} fails its CRC check)")
    return zf


def verify_archive(zf: zipfile.ZipFile, archive: Path, any_counts: bool = False) -> tuple[str, list[str]]:
    """The archive's root folder and the relative files it unpacks; DownloadError when the layout is wrong."""
    root = archive_root(zf.namelist())
    files, folders = [], []
    for info in zf.infolist():
        relative = _member_path(info.filename, root, archive)
        if relative is not None:
            (folders if info.is_dir() else files).append(relative.rstrip("/"))
    problems = layout_problems(files, folders, any_counts=any_counts)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DownloadError(f"{archive}: not the FASSEG repository layout: {root}{problems[0]}{more}")
    return root, files


def extract(zf: zipfile.ZipFile, root: str, archive: Path, target: Path) -> int:
    """Unpack the members under ``root`` into the new folder ``target``; the number of files written."""
    written = 0
    for info in zf.infolist():
        relative = _member_path(info.filename, root, archive)
        if relative is None or info.is_dir():
            continue
        path = target.joinpath(*PurePosixPath(relative).parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as source, path.open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
        written += 1
    return written


def folder_files(folder: Path) -> tuple[list[str], list[str]]:
    """Relative POSIX paths of the files and the folders under ``folder``."""
    files, folders = [], []
    for path in folder.rglob("*"):
        (folders if path.is_dir() else files).append(path.relative_to(folder).as_posix())
    return files, folders


def check_with_reader(folder: Path) -> list[str]:
    """Open every split with ``agrnet.data.Fasseg`` and load its first sample; problems, one line each."""
    import warnings

    problems = []
    for split in FASSEG_SPLITS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the unlabelled multipose test images are expected
                dataset = Fasseg(folder, split.name)
                if len(dataset):
                    dataset[0]
        except Exception as error:  # the reader names the file
            problems.append(f"split {split.name}: {type(error).__name__}: {error}")
    return problems


def install(zf: zipfile.ZipFile, root: str, archive: Path, target: Path) -> None:
    """Unpack into a temporary folder beside ``target``, check it with the reader, then rename it to ``target``.

    ``target`` must not exist or be an empty folder; on any failure nothing is left behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        written = extract(zf, root, archive, staging)
        problems = check_with_reader(staging)
        if problems:
            raise DownloadError(f"{archive}: unpacked, but agrnet.data.Fasseg cannot read it: {problems[0]}")
        if target.is_dir():
            target.rmdir()  # empty (checked by the caller); a race that filled it fails here, loudly
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"unpacked {written} files into {target}", flush=True)


def download_fasseg(
    target: Path,
    archive: Path | None = None,
    url: str = FASSEG_URL,
    expected_sha256: str | None = None,
    any_counts: bool = False,
    force: bool = False,
) -> None:
    """Fetch (or take ``archive``), verify and unpack FASSEG into ``target``; DownloadError on any failure."""
    if target.exists() and not target.is_dir():
        raise DownloadError(f"{target}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        files, folders = folder_files(target)
        problems = layout_problems(files, folders, any_counts=any_counts)
        if problems:
            raise DownloadError(f"{target}: exists but is not a FASSEG folder ({problems[0]}); --force replaces it")
        print(f"{target}: FASSEG is already there ({summary(files)}); --force downloads it again")
        return
    if expected_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", expected_sha256):
        raise DownloadError(f"--sha256 {expected_sha256!r}: expected 64 hexadecimal digits")
    made = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    downloaded: Path | None = None
    try:
        if archive is None:
            handle, name = tempfile.mkstemp(prefix=f".{target.name}.download-", suffix=".zip", dir=target.parent)
            os.close(handle)
            downloaded = archive = Path(name)
            print(f"downloading {url}", flush=True)
            fetch(url, archive)
        if not archive.is_file():
            raise DownloadError(f"{archive}: no such file (--archive)")
        digest, source = sha256(archive), archive if downloaded is None else url
        print(f"archive {source}: sha256 {digest}", flush=True)
        if expected_sha256 is not None and digest != expected_sha256.lower():
            raise DownloadError(f"{source}: sha256 {digest}, expected {expected_sha256} (--sha256)")
        with open_archive(archive) as zf:
            if re.fullmatch(rb"[0-9a-f]{40}", zf.comment or b""):
                print(f"repository commit {zf.comment.decode()}")  # GitHub writes it as the zip comment
            root, files = verify_archive(zf, archive, any_counts=any_counts)
            print(summary(files), flush=True)
            try:
                if force and target.is_dir() and any(target.iterdir()):
                    _replace(zf, root, archive, target)
                else:
                    install(zf, root, archive, target)
            except (OSError, zipfile.BadZipFile, zlib.error) as error:
                raise DownloadError(f"{target}: cannot unpack {source} ({error}); nothing was left behind") from None
    finally:
        if downloaded is not None:
            downloaded.unlink(missing_ok=True)
        for folder in made:  # the parents this call created, when it failed and they stayed empty
            if not target.exists() and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _replace(zf: zipfile.ZipFile, root: str, archive: Path, target: Path) -> None:
    """``install`` over an existing ``target``: the old folder is moved aside and removed only on success."""
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    os.rename(target, old)
    try:
        install(zf, root, archive, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
