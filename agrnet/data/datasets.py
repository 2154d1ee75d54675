"""Readers of the published face- and human-parsing datasets, one per release layout (see data/README.md).

Every reader is a torch Dataset of sample dicts: ``image`` float32 3 x H x W in [0, 1], ``label`` int64 H x W
(255 = ignore), ``edge`` bool H x W (``label_edges``), ``name`` str, plus the extras a dataset has (``yaw`` for
FASSEG multipose, ``landmarks`` for LaPa on request). Bad files raise an error that names the file.
"""

from __future__ import annotations

import hashlib
import random
import re
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset

from agrnet.data.base import (
    DECODED,
    ParsingDataset,
    Sample,
    Transform,
    check_ids,
    check_same_size,
    check_split,
    decode_rgb,
    image_to_tensor,
    open_image,
    read_id_map,
    read_image,
    require_dir,
)
from agrnet.data.labels import (
    CELEBAMASK_HQ,
    CELEBAMASK_HQ_PARTS,
    HELEN,
    LAPA,
    LabelMapping,
    LabelSchema,
)
from agrnet.data.labels import FASSEG as FASSEG_SCHEMA
from agrnet.data.labels import LIP as LIP_SCHEMA
from agrnet.data.synthetic import SyntheticFaces
from agrnet.files import atomic_write, default_cache_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Files of ``folder`` whose suffix is in ``suffixes`` (case-insensitive), keyed by stem."""
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in suffixes}


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _id_label(path: Path, image: torch.Tensor, image_path: Path, schema: LabelSchema) -> torch.Tensor:
    """Read an id-map label and check it against its image's size and the schema."""
    label = torch.from_numpy(read_id_map(path)).long()
    check_same_size(image, label, image_path, path)
    check_ids(label, schema, path)
    return label


class LaPa(ParsingDataset):
    """LaPa (Liu et al., AAAI 2020): ``<root>/<split>/images/<name>.jpg``, ``labels/<name>.png`` (ids 0..10),
    ``landmarks/<name>.txt`` (106 points); split = train | val | test.

    With ``landmarks=True`` each sample also carries ``landmarks``, float32 106 x 2 (x, y) in pixels.
    """

    schema = LAPA
    splits = ("train", "val", "test")

    def __init__(
        self, root: str | Path, split: str = "train", transform: Transform | None = None, landmarks: bool = False
    ) -> None:
        super().__init__(transform)
        self.root = Path(root)
        self.split = check_split(split, self.splits, "LaPa")
        base = require_dir(self.root / split, f"LaPa {split} split")
        self.image_dir = require_dir(base / "images", "LaPa images")
        self.label_dir = require_dir(base / "labels", "LaPa labels")
        self.landmark_dir = require_dir(base / "landmarks", "LaPa landmarks") if landmarks else None
        images = _files_by_stem(self.image_dir, IMAGE_SUFFIXES)
        labels = _files_by_stem(self.label_dir, (".png",))
        self.names = sorted(images.keys() | labels.keys())
        self._images = images
        self._labels = labels

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> Sample:
        name = self.names[index]
        image_path = self._images.get(name, self.image_dir / f"{name}.jpg")
        label_path = self._labels.get(name, self.label_dir / f"{name}.png")
        image = read_image(image_path)
        sample: Sample = {"image": image, "label": _id_label(label_path, image, image_path, self.schema), "name": name}
        if self.landmark_dir is not None:
            sample["landmarks"] = read_landmarks(self.landmark_dir / f"{name}.txt")
        return sample


def read_landmarks(path: Path) -> torch.Tensor:
    """A LaPa landmark file (first line the count n, then n lines ``x y``) as float32 n x 2."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: landmark file is missing")
    try:
        lines = path.read_text().split("\n")
        count = int(lines[0])
        points = np.array([line.split() for line in lines[1 : count + 1]], dtype=np.float32)
    except (ValueError, IndexError) as error:
        raise ValueError(f"{path}: malformed landmark file ({error})") from error
    if points.shape != (count, 2):
        raise ValueError(f"{path}: expected {count} lines of 'x y', got an array of shape {points.shape}")
    return torch.from_numpy(points)


class CelebAMaskHQ(ParsingDataset):
    """CelebAMask-HQ (Lee et al., CVPR 2020) in its raw release layout.

    ``<root>/CelebA-HQ-img/<i>.jpg`` (1024 x 1024) and ``<root>/CelebAMask-HQ-mask-anno/<i // 2000>/
    <i:05d>_<part>.png`` (512 x 512, part where nonzero). The parts are merged in the official order
    (``CELEBAMASK_HQ_PARTS``), later parts overwriting earlier ones, as the release's ``g_mask.py`` does; merged
    maps are cached as PNGs under ``<cache_dir>/celebamask-hq/<hash of root>/`` (``cache_dir`` defaults to
    ``$AGRNET_CACHE`` or ``~/.cache/agrnet``), never inside ``root``. Images are resized to the 512 x 512 label
    grid (bilinear, antialiased). Splits train | val | test come from CelebA's ``list_eval_partition.txt`` and the
    release's ``CelebA-HQ-to-CelebA-mapping.txt`` (both in ``root``; 24,183 / 2,993 / 2,824 images);
    ``split="all"`` takes every image present.
    """

    schema = CELEBAMASK_HQ
    splits = ("train", "val", "test", "all")
    image_folder = "CelebA-HQ-img"
    mask_folder = "CelebAMask-HQ-mask-anno"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Transform | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(transform)
        self.root = Path(root)
        self.split = check_split(split, self.splits, "CelebAMask-HQ")
        self.image_dir = require_dir(self.root / self.image_folder, "CelebAMask-HQ image")
        self.mask_dir = require_dir(self.root / self.mask_folder, "CelebAMask-HQ mask annotation")
        if split == "all":
            stems = _files_by_stem(self.image_dir, (".jpg",))
            self.indices = sorted(int(s) for s in stems if s.isdigit())
        else:
            self.indices = celebamask_hq_split(self.root)[split]
        digest = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:16]
        self.cache_dir = Path(cache_dir or default_cache_dir()) / "celebamask-hq" / digest

    def __len__(self) -> int:
        return len(self.indices)

    def part_path(self, index: int, part: str) -> Path:
        """The release's mask file of ``part`` for image ``index``."""
        return self.mask_dir / str(index // 2000) / f"{index:05d}_{part}.png"

    def merge_parts(self, index: int) -> np.ndarray:
        """The 512 x 512 uint8 id map of image ``index``, merged from its part masks.

        Ids grow along the merge order, so "later parts overwrite earlier ones" is the largest id whose mask is
        set at a pixel: one maximum over the stacked masks instead of a loop of overwrites.
        """
        found = [
            (part_id, path)
            for part_id, part in enumerate(CELEBAMASK_HQ_PARTS, start=1)
            if (path := self.part_path(index, part)).is_file()
        ]
        if not found:
            raise FileNotFoundError(f"{self.part_path(index, 'skin').parent}: no part masks for image {index}")
        masks = [read_id_map(path) for _, path in found]
        shapes = {mask.shape for mask in masks}
        if len(shapes) != 1:
            sizes = ", ".join(f"{p.name} {m.shape[1]}x{m.shape[0]}" for (_, p), m in zip(found, masks, strict=True))
            raise ValueError(f"{found[0][1].parent}: part masks of image {index} differ in size ({sizes})")
        ids = np.array([part_id for part_id, _ in found], dtype=np.uint8)[:, None, None]
        return ((np.stack(masks) != 0) * ids).max(axis=0)

    def merged_label(self, index: int) -> np.ndarray:
        """The merged id map of image ``index``, from the cache when there, else merged and cached atomically."""
        cached = self.cache_dir / f"{index}.png"
        if cached.is_file():
            return read_id_map(cached)
        merged = self.merge_parts(index)
        # clean=False: listing a cache folder of up to 30,000 maps for each write would cost more than a stray file
        atomic_write(cached, lambda file: Image.fromarray(merged).save(file, format="PNG"), clean=False)
        return merged

    def load(self, index: int) -> Sample:
        i = self.indices[index]
        image_path = self.image_dir / f"{i}.jpg"
        image = open_image(image_path, "RGB")
        label = torch.from_numpy(self.merged_label(i)).long()
        height, width = label.shape
        if image.size != (width, height):
            if image.size != (2 * width, 2 * height):
                raise ValueError(
                    f"{image_path}: image is {image.size[0]}x{image.size[1]} but its merged masks are "
                    f"{width}x{height}; expected equal sizes or the release's 2:1"
                )
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        return {"image": image_to_tensor(image), "label": label, "name": str(i)}


class CelebAMaskHQFolder(ParsingDataset):
    """CelebAMask-HQ samples in a folder of pairs: ``<root>/images/<id>.{png,jpg}`` and ``<root>/labels/<id>.png``
    (id maps of the 19 classes, ``CELEBAMASK_HQ``), any size; an image of another size than its label but the same
    aspect is resized to the label's grid (bilinear), as the release's 1024 px images are. The folder is one set
    of samples, with no splits of its own: ``split`` must be "all". ``build_dataset("celebamask-hq", root)`` reads
    a root in this layout with this reader."""

    schema = CELEBAMASK_HQ
    splits = ("all",)

    def __init__(self, root: str | Path, split: str = "all", transform: Transform | None = None) -> None:
        super().__init__(transform)
        self.root = Path(root)
        if split != "all":
            raise ValueError(
                f"CelebAMask-HQ folder {self.root} (images/, labels/) holds one set of samples: use split 'all', "
                f"not {split!r}"
            )
        self.split = split
        images = _files_by_stem(require_dir(self.root / "images", "CelebAMask-HQ images"), (".png", ".jpg"))
        labels = _files_by_stem(require_dir(self.root / "labels", "CelebAMask-HQ labels"), (".png",))
        missing = sorted(images.keys() - labels.keys(), key=_natural_key)
        if missing:
            raise FileNotFoundError(f"{self.root / 'labels'}: no label for image(s) {', '.join(missing)}")
        self.items = [(images[stem], labels[stem]) for stem in sorted(images, key=_natural_key)]

    @staticmethod
    def holds(root: str | Path) -> bool:
        """Whether ``root`` is in this layout (``images/`` and ``labels/`` folders)."""
        return (Path(root) / "images").is_dir() and (Path(root) / "labels").is_dir()

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Sample:
        image_path, label_path = self.items[index]
        image = open_image(image_path, "RGB")
        label = torch.from_numpy(read_id_map(label_path)).long()
        height, width = label.shape
        if image.size != (width, height):
            if image.size[0] * height != image.size[1] * width:
                raise ValueError(
                    f"{image_path}: image is {image.size[0]}x{image.size[1]} but its label {label_path} is "
                    f"{width}x{height}; expected one size or one aspect"
                )
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        check_ids(label, self.schema, label_path)
        return {"image": image_to_tensor(image), "label": label, "name": image_path.stem}


class MappedLabels(ParsingDataset):
    """``dataset`` with its labels read as another schema's classes through ``mapping`` (``LabelMapping``, e.g.
    ``CELEBAMASK_HQ_AS_FASSEG``), to score a model of ``mapping.target`` on it; ``transform`` applies after the
    mapping (the dataset's own transform is not used)."""

    def __init__(self, dataset: ParsingDataset, mapping: LabelMapping, transform: Transform | None = None) -> None:
        super().__init__(transform)
        if dataset.schema != mapping.source:
            raise ValueError(f"mapping: reads {mapping.source.name} labels, the dataset has {dataset.schema.name}")
        self.dataset, self.mapping, self.schema = dataset, mapping, mapping.target
        self.table = mapping.table()

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> Sample:
        sample = self.dataset.load(index)
        return {**sample, "label": self.table[sample["label"]]}


def celebamask_hq_split(root: Path) -> dict[str, list[int]]:
    """CelebA-HQ indices of the train, val and test splits, from ``CelebA-HQ-to-CelebA-mapping.txt`` (columns
    ``idx orig_idx orig_file``) and CelebA's ``list_eval_partition.txt`` (``<file> <0|1|2>``)."""
    mapping_path = root / "CelebA-HQ-to-CelebA-mapping.txt"
    partition_path = root / "list_eval_partition.txt"
    for path in (mapping_path, partition_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: needed for the CelebAMask-HQ train/val/test splits (or use split='all')")
    try:
        partition = {
            file: int(code)
            for file, code in (line.split() for line in partition_path.read_text().splitlines() if line.strip())
        }
        rows = [line.split() for line in mapping_path.read_text().splitlines()[1:] if line.strip()]
        split_of = {int(idx): partition[orig_file] for idx, _, orig_file in rows}
    except (ValueError, KeyError) as error:
        raise ValueError(f"{mapping_path} / {partition_path}: malformed or inconsistent ({error!r})") from error
    names = ("train", "val", "test")
    return {name: sorted(i for i, code in split_of.items() if code == number) for number, name in enumerate(names)}


class Helen(ParsingDataset):
    """Helen (Le et al., ECCV 2012) with the parsing labels of Smith et al. (CVPR 2013), the
    ``SmithCVPR2013_dataset_resized`` release: ``<root>/images/<name>.jpg``, ``<root>/labels/<name>/
    <name>_lbl00.png`` ... ``_lbl10.png`` (one soft map per class), and the split lists ``exemplars.txt`` (train,
    2,000), ``tuning.txt`` (val, 230), ``testing.txt`` (test, 100) with lines ``<n> , <name>``.

    The label is the per-pixel argmax of the eleven class maps (ties go to the lower id).
    """

    schema = HELEN
    splits = ("train", "val", "test")
    list_files = {"train": "exemplars.txt", "val": "tuning.txt", "test": "testing.txt"}

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        super().__init__(transform)
        self.root = Path(root)
        self.split = check_split(split, self.splits, "Helen")
        self.image_dir = require_dir(self.root / "images", "Helen images")
        self.label_dir = require_dir(self.root / "labels", "Helen labels")
        list_path = self.root / self.list_files[split]
        if not list_path.is_file():
            raise FileNotFoundError(f"{list_path}: Helen {split} list is missing")
        rows = [line.split(",") for line in list_path.read_text().splitlines() if line.strip()]
        if any(len(row) != 2 for row in rows):
            raise ValueError(f"{list_path}: expected lines '<n> , <name>'")
        self.names = [name.strip() for _, name in rows]

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> Sample:
        name = self.names[index]
        image_path = self.image_dir / f"{name}.jpg"
        image = read_image(image_path)
        paths = [self.label_dir / name / f"{name}_lbl{k:02d}.png" for k in range(self.schema.num_classes)]
        maps = [read_id_map(path) for path in paths]
        for path, class_map in zip(paths, maps, strict=True):
            check_same_size(image, torch.from_numpy(class_map), image_path, path)
        label = torch.from_numpy(np.stack(maps).argmax(axis=0)).long()
        return {"image": image, "label": label, "name": name}


class LIP(ParsingDataset):
    """LIP (Gong et al., CVPR 2017): ``<root>/TrainVal_images/{train,val}_images/<id>.jpg``,
    ``<root>/TrainVal_parsing_annotations/{train,val}_segmentations/<id>.png`` (ids 0..19) and
    ``<root>/{train,val}_id.txt``; split = train | val."""

    schema = LIP_SCHEMA
    splits = ("train", "val")

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None) -> None:
        super().__init__(transform)
        self.root = Path(root)
        self.split = check_split(split, self.splits, "LIP")
        self.image_dir = require_dir(self.root / "TrainVal_images" / f"{split}_images", "LIP images")
        self.label_dir = require_dir(
            self.root / "TrainVal_parsing_annotations" / f"{split}_segmentations", "LIP annotations"
        )
        id_path = self.root / f"{split}_id.txt"
        if not id_path.is_file():
            raise FileNotFoundError(f"{id_path}: LIP {split} id list is missing")
        self.names = [line.strip() for line in id_path.read_text().splitlines() if line.strip()]

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> Sample:
        name = self.names[index]
        image_path = self.image_dir / f"{name}.jpg"
        image = read_image(image_path)
        label = _id_label(self.label_dir / f"{name}.png", image, image_path, self.schema)
        return {"image": image, "label": label, "name": name}


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
        images = _files_by_stem(image_folder, (".bmp", ".png"))
        labels = _files_by_stem(label_folder, (".bmp", ".png")) if label_folder.is_dir() else {}
        unlabelled += [images[stem] for stem in sorted(images.keys() - labels.keys(), key=_natural_key)]
        for stem in sorted(labels, key=_natural_key):
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


class FASSEG(ParsingDataset):
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

    schema = FASSEG_SCHEMA
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
        everything = len(_files_by_stem(folder, (".bmp", ".png")))
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
        }, key=_natural_key)  # fmt: skip
        if len(people) < count:
            raise ValueError(f"FASSEG {split}: {len(people)} people with no test image, fewer than val's {count}")
        drawn = set(random.Random(FASSEG_VAL_SEED).sample(people, count))
        chosen += [item for item in items if fasseg_person(item) in drawn]
    return chosen


DATASETS: dict[str, type[ParsingDataset]] = {
    "lapa": LaPa,
    "celebamask-hq": CelebAMaskHQ,
    "helen": Helen,
    "lip": LIP,
    "fasseg": FASSEG,
    "synthetic": SyntheticFaces,
}


UNION_KEYS = ("image", "label", "edge", "name", "original_size")


class SplitUnion(ConcatDataset):
    """Several splits of one dataset read as one (``build_dataset(..., split="train+multipose-train")``).

    Samples keep only the keys every reader gives (``UNION_KEYS``): extras that only some parts carry, such as
    FASSEG's ``yaw``, are dropped so that mixed batches collate. ``schema`` is the parts' schema.
    """

    def __init__(self, parts: list[ParsingDataset]) -> None:
        super().__init__(parts)
        self.schema = parts[0].schema

    def __getitem__(self, index: int) -> Sample:
        sample = super().__getitem__(index)
        return {key: value for key, value in sample.items() if key in UNION_KEYS}


def build_dataset(
    name: str, root: str | Path | None = None, split: str = "train", transform: Transform | None = None, **kwargs: Any
) -> ParsingDataset | SplitUnion:
    """The dataset called ``name`` (a key of ``DATASETS``) for ``split``.

    "synthetic" needs no ``root``; its keyword arguments are ``num_images``, ``size`` and ``seed`` (see
    ``SyntheticFaces``), and each split draws its own images. Every other dataset needs ``root``. Splits joined by
    "+" (e.g. ``"train+multipose-train"``) give a ``SplitUnion`` of those splits, in that order.
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    if "+" in split:
        return SplitUnion([build_dataset(name, root, part, transform, **kwargs) for part in split.split("+")])
    if key == "synthetic":
        return SyntheticFaces(split=split, transform=transform, **kwargs)
    if root is None:
        raise ValueError(f"dataset {name!r} needs a root folder (see data/README.md)")
    if key == "celebamask-hq" and CelebAMaskHQFolder.holds(root):
        return CelebAMaskHQFolder(root, split=split, transform=transform)
    return DATASETS[key](root, split=split, transform=transform, **kwargs)
