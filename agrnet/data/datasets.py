"""Readers of the published face- and human-parsing datasets, one per release layout (see data/README.md): LaPa,
Helen and LIP here, CelebAMask-HQ in ``agrnet.data.celebamask``, FASSEG in ``agrnet.data.fasseg``; ``DATASETS`` names
them all and ``build_dataset`` opens one by name.

Every reader is a torch Dataset of sample dicts: ``image`` float32 3 x H x W in [0, 1], ``label`` int64 H x W
(255 = ignore), ``edge`` bool H x W (``label_edges``), ``name`` str, plus the extras a dataset has (``yaw`` for
FASSEG multipose, ``landmarks`` for LaPa on request). Bad files raise an error that names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from agrnet.data.base import (
    IMAGE_SUFFIXES,
    ParsingDataset,
    Sample,
    Transform,
    check_ids,
    check_same_size,
    check_split,
    files_by_stem,
    read_id_map,
    read_image,
    require_dir,
)
from agrnet.data.celebamask import CelebAMaskHQ, CelebAMaskHQFolder
from agrnet.data.fasseg import Fasseg
from agrnet.data.labels import HELEN, LAPA, LabelMapping, LabelSchema
from agrnet.data.labels import LIP as LIP_SCHEMA
from agrnet.data.synthetic import SyntheticFaces


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
        images = files_by_stem(self.image_dir, IMAGE_SUFFIXES)
        labels = files_by_stem(self.label_dir, (".png",))
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


class _NamedImages(ParsingDataset):
    """A reader whose samples are ``names``, each image ``image_dir/<name>.jpg``."""

    names: list[str]
    image_dir: Path

    def __len__(self) -> int:
        return len(self.names)

    def _image(self, index: int) -> tuple[str, Path, torch.Tensor]:
        """Sample ``index``'s name, image path and image."""
        name = self.names[index]
        image_path = self.image_dir / f"{name}.jpg"
        return name, image_path, read_image(image_path)


class Helen(_NamedImages):
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

    def load(self, index: int) -> Sample:
        name, image_path, image = self._image(index)
        paths = [self.label_dir / name / f"{name}_lbl{k:02d}.png" for k in range(self.schema.num_classes)]
        maps = [read_id_map(path) for path in paths]
        for path, class_map in zip(paths, maps, strict=True):
            check_same_size(image, torch.from_numpy(class_map), image_path, path)
        label = torch.from_numpy(np.stack(maps).argmax(axis=0)).long()
        return {"image": image, "label": label, "name": name}


class LIP(_NamedImages):
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

    def load(self, index: int) -> Sample:
        name, image_path, image = self._image(index)
        label = _id_label(self.label_dir / f"{name}.png", image, image_path, self.schema)
        return {"image": image, "label": label, "name": name}


DATASETS: dict[str, type[ParsingDataset]] = {
    "lapa": LaPa,
    "celebamask-hq": CelebAMaskHQ,
    "helen": Helen,
    "lip": LIP,
    "fasseg": Fasseg,
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
