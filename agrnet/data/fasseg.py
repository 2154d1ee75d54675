"""FASSEG (Khan, Mauro, Leonardi, ICIP 2015; Khan et al., ICME 2017): the reader of its published splits
(frontal02 and multipose01, colour-coded labels) and the splits of ours made from them by the pixels of their
images (``test-unseen``, ``val``, ``fit``).
"""

from __future__ import annotations

import hashlib
import random
import re
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import torch

from agrnet.data.base import (
    DECODED,
    ParsingDataset,
    Sample,
    Transform,
    check_same_size,
    check_split,
    decode_rgb,
    files_by_stem,
    natural_key,
    read_image,
)
from agrnet.data.labels import FASSEG

FASSEG_SUFFIXES = (".bmp", ".png")
"""The suffixes of FASSEG's image and label files (the release's ``JPEG/`` copies are not read)."""


def snap_to_palette(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Ids of the nearest palette colour (squared RGB distance) for an H x W x 3 colour-coded label.

    Exact palette colours (nearly all pixels) are looked up directly; only the others pay for distances.
    """
    codes = rgb.astype(np.int32) @ np.array([65536, 256, 1], dtype=np.int32)
    palette_codes = palette.astype(np.int32) @ np.array([65536, 256, 1], dtype=np.int32)
    order = np.argsort(palette_codes)
    position = np.searchsorted(palette_codes[order], codes).clip(max=len(order) - 1)
    ids = order[position]
    off = palette_codes[ids] != codes
    if off.any():
        distance = ((rgb[off][:, None, :].astype(np.int32) - palette.astype(np.int32)) ** 2).sum(axis=-1)
        ids[off] = distance.argmin(axis=-1)
    return ids.astype(np.uint8)


def _find_dir(parent: Path, *names: str) -> Path:
    """The first of ``parent/name`` that exists (release folder names vary in case), else FileNotFoundError."""
    for name in names:
        if (parent / name).is_dir():
            return parent / name
    raise FileNotFoundError(f"{parent / names[0]}: FASSEG folder not found (see data/README.md for the layout)")


FASSEGItem = tuple[str, str, Path, Path]
"""One labelled FASSEG image: (pose folder, "" in frontal02; file stem; image path; label path)."""


def published(root: str | Path, split: str) -> tuple[list[FASSEGItem], list[Path], Path]:
    """The labelled images of a published FASSEG split, its images without a label, and its image folder."""
    part = split.removeprefix("multipose-").capitalize()
    version = Path(root) / ("V3" if split.startswith("multipose") else "V2")
    image_dir = _find_dir(version, f"{part}_RGB")
    label_dir = _find_dir(version, f"{part}_Labels", f"{part}_labels")
    if split.startswith("multipose"):
        poses = sorted((p.name for p in image_dir.iterdir() if p.is_dir()), key=int)
        folders = [(pose, image_dir / pose, label_dir / pose) for pose in poses]
    else:
        folders = [("", image_dir, label_dir)]
    items: list[FASSEGItem] = []
    unlabelled: list[Path] = []
    for pose, image_folder, label_folder in folders:
        images = files_by_stem(image_folder, FASSEG_SUFFIXES)
        labels = files_by_stem(label_folder, FASSEG_SUFFIXES) if label_folder.is_dir() else {}
        unlabelled += [images[stem] for stem in sorted(images.keys() - labels.keys(), key=natural_key)]
        for stem in sorted(labels, key=natural_key):
            items.append((pose, stem, images.get(stem, image_folder / f"{stem}.png"), labels[stem]))
    return items, unlabelled, image_dir


FASSEG_VAL = {"train": 4, "multipose-train": 1}
"""What FASSEG's ``val`` split holds, drawn with ``FASSEG_VAL_SEED``: 4 frontal02 train faces and every image of
1 of the 7 people of multipose-train (26 images: 2 series at 13 yaws), 30 of the 202 train images. Multipose
images are drawn by person (``fasseg_person``), so no face of ``val`` is a pose of a person in ``fit``; no image
of ``val`` is a test image."""
FASSEG_VAL_SEED = 0


def pixel_digest(path: Path) -> str:
    """SHA-256 of an image's decoded RGB pixels and size: equal for the same picture whatever its file format;
    computed once per file version and process."""
    stat = Path(path).stat()
    return _pixel_digest(str(path), stat.st_mtime_ns, stat.st_size)


@cache
def _pixel_digest(path: str, mtime_ns: int, size: int) -> str:
    array = decode_rgb(Path(path))
    return hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()


class Fasseg(ParsingDataset):
    """FASSEG (Khan, Mauro, Leonardi, ICIP 2015; Khan et al., ICME 2017), colour-coded labels.

    Splits ``train`` / ``test``: frontal02, ``<root>/V2/{Train,Test}_RGB/<n>.{bmp,png}`` with labels in
    ``V2/{Train,Test}_Labels/``. Splits ``multipose-train`` / ``multipose-test``: multipose01,
    ``<root>/V3/{Train,Test}_RGB/<pose>/<name>`` with labels in ``V3/{Train,Test}_labels/<pose>/``, where the
    pose folder is the yaw in degrees (-90, -75, ..., 0, +15, ..., +90); those splits' samples carry ``yaw``
    (int). Label colours are snapped to the nearest palette colour (the files hold some anti-aliased pixels);
    the snapped ids are decoded once per process (``agrnet.data.base.DECODED``).

    Splits of ours, made from the published ones by the pixels of their images (``pixel_digest``):
    ``test-unseen`` is frontal02 test without the images that are also train images (as published, 6 of the 50
    test images are train images with re-annotated labels: ``find_test_overlap``); ``val`` is a fixed draw of
    ``FASSEG_VAL`` faces from train and multipose-train (seed ``FASSEG_VAL_SEED``, never a face whose image is a
    test image), for every choice of a protocol; ``fit`` is train + multipose-train without ``val``.

    Only images with a label are samples. The published multipose test split holds images at 13 yaws but labels
    at 6 (0, +-30, +-60, +90): the images without a label are listed in ``unlabelled`` and named once in a
    warning, not read. A label without its image is a sample whose loading fails, naming the missing file.
    """

    schema = FASSEG
    splits = ("train", "test", "multipose-train", "multipose-test", "test-unseen", "val", "fit")

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        super().__init__(transform)
        self.root = Path(root)
        self.split = check_split(split, self.splits, "FASSEG")
        self.unlabelled: list[Path] = []
        if split == "test-unseen":
            seen = {pixel_digest(item[2]) for part in ("train", "multipose-train") for item in published(root, part)[0]}
            self.items = [item for item in published(root, "test")[0] if pixel_digest(item[2]) not in seen]
        elif split in ("val", "fit"):
            val = fasseg_val_items(self.root)
            everything = published(root, "train")[0] + published(root, "multipose-train")[0]
            self.items = val if split == "val" else [item for item in everything if item not in val]
        else:
            self.items, self.unlabelled, image_dir = published(root, split)
            if self.unlabelled:
                warnings.warn(f"FASSEG {split}: {describe_unlabelled(self.unlabelled, image_dir)}", stacklevel=2)

    def __len__(self) -> int:
        return len(self.items)

    def snapped_label(self, path: Path) -> np.ndarray:
        """The ids of the colour-coded label at ``path`` (uint8 H x W), snapped to the palette."""
        return DECODED.get(path, "fasseg-ids", lambda file: snap_to_palette(decode_rgb(file), self.schema.palette))

    def load(self, index: int) -> Sample:
        pose, stem, image_path, label_path = self.items[index]
        image = read_image(image_path)
        label = torch.from_numpy(self.snapped_label(label_path)).long()
        check_same_size(image, label, image_path, label_path)
        sample: Sample = {"image": image, "label": label, "name": f"{pose}/{stem}" if pose else stem}
        if self.split.startswith("multipose"):
            sample["yaw"] = int(pose)
        return sample


def describe_unlabelled(paths: list[Path], image_dir: Path) -> str:
    """One line naming the images that have no label: whole pose folders by name, other files one by one."""
    by_folder: dict[Path, list[Path]] = {}
    for path in paths:
        by_folder.setdefault(path.parent, []).append(path)
    named = []
    for folder, files in by_folder.items():
        everything = len(files_by_stem(folder, FASSEG_SUFFIXES))
        relative = folder.relative_to(image_dir.parent)
        if len(files) == everything:
            named.append(f"{relative}/ (all {len(files)})")
        else:
            named += [str(path.relative_to(image_dir.parent)) for path in files]
    return f"{len(paths)} images have no label and are skipped: {', '.join(named)}"


def find_test_overlap(root: str | Path) -> list[tuple[str, str]]:
    """The (test name, train name) pairs of FASSEG frontal02 whose images have the same pixels (``pixel_digest``),
    in test order: the test faces that every model trained on the published train split has seen."""
    train = {pixel_digest(image): stem for _, stem, image, _ in published(root, "train")[0]}
    test = published(root, "test")[0]
    return [(stem, train[pixel_digest(image)]) for _, stem, image, _ in test if pixel_digest(image) in train]


def fasseg_person(item: FASSEGItem) -> str:
    """Who is pictured: Pointing04's person ("personne01") for multipose images, the file stem for frontal02 ones
    (whose sources, MIT-CBCL and FEI, give one face per file here)."""
    pose, stem, *_ = item
    match = re.match(r"personne\d\d", stem)
    return match.group() if pose and match else stem


def fasseg_val_items(root: str | Path) -> list[FASSEGItem]:
    """The items of FASSEG's ``val`` split (``FASSEG_VAL``) in the published order: of each train split, the
    images of that many people drawn with ``FASSEG_VAL_SEED`` among those with no image in the test split."""
    tests = {pixel_digest(item[2]) for item in published(root, "test")[0]}
    chosen: list[FASSEGItem] = []
    for split, count in FASSEG_VAL.items():
        items = published(root, split)[0]
        people = sorted({fasseg_person(item) for item in items if pixel_digest(item[2]) not in tests} - {
            fasseg_person(item) for item in items if pixel_digest(item[2]) in tests
        }, key=natural_key)  # fmt: skip
        if len(people) < count:
            raise ValueError(f"FASSEG {split}: {len(people)} people with no test image, fewer than val's {count}")
        drawn = set(random.Random(FASSEG_VAL_SEED).sample(people, count))
        chosen += [item for item in items if fasseg_person(item) in drawn]
    return chosen
