"""What every reader shares: checked file loading and the sample-dict protocol."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset, Subset

from agrnet.data.edges import label_edges
from agrnet.data.labels import LabelSchema
from agrnet.files import BadFileError

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
"""The suffixes of the image files that a folder of images is read for (lower case; matched case-insensitively)."""


def _sixteen_bit_to_eight(image: Image.Image, path: Path) -> Image.Image:
    """A 16-bit grayscale image (PIL mode I;16*, or I holding 0 ... 65535) as 8-bit L, 65535 -> 255 rounded.

    PIL's own conversion clips these values to 255 instead of scaling them.
    """
    values = np.asarray(image)
    if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
        raise BadFileError(f"{path}: integer image with values outside 0 ... 65535 (mode {image.mode})")
    return Image.fromarray(((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8), mode="L")


def open_image(path: Path, mode: str | None = None) -> Image.Image:
    """Fully decode the image file at ``path`` (converted to PIL ``mode`` if given), with errors naming the file:
    FileNotFoundError when it is missing, ``agrnet.files.BadFileError`` when it cannot be decoded.

    The picture comes upright: an EXIF orientation tag (phone photos) is applied to the pixels, as every viewer
    shows them. 16-bit grayscale files converted to another mode are scaled to 8 bits (PIL alone would clip them
    to 255).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file is missing")
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
            if mode is None or image.mode == mode:
                return image.copy()
            if image.mode.startswith("I;16") or image.mode == "I":
                return _sixteen_bit_to_eight(image, path).convert(mode)
            return image.convert(mode)
    except UnidentifiedImageError as error:
        raise BadFileError(f"{path}: not a readable image file") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadFileError(f"{path}: cannot decode image, the file is truncated or corrupt ({error})") from error


class DecodeCache:
    """Decoded files of this process: arrays keyed by (path, size, mtime, kind), up to ``limit_bytes`` in all.

    ``get(path, kind, decode)`` returns a copy of the cached array (callers may modify it) or decodes, stores and
    returns it. A file that changes on disk changes its key, so it is decoded again. Once full, the cache keeps
    what it holds and stops adding: for the uniformly random order of training, that serves as many reads as any
    eviction policy and costs nothing. ``limit_bytes`` defaults to ``$AGRNET_DECODE_CACHE_MB`` megabytes (1024
    when unset; 0 turns caching off). Each DataLoader worker is a process with a cache of its own.
    """

    def __init__(self, limit_bytes: int | None = None) -> None:
        if limit_bytes is None:
            limit_bytes = int(float(os.environ.get("AGRNET_DECODE_CACHE_MB", "1024")) * 2**20)
        self.limit_bytes = limit_bytes
        self.entries: dict[tuple[str, int, int, str], np.ndarray] = {}
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, path: Path, kind: str, decode: Callable[[Path], np.ndarray]) -> np.ndarray:
        """The array ``decode(path)`` for this version of the file at ``path``, decoded at most once."""
        try:
            stat = os.stat(path)
        except OSError:
            return decode(path)  # decode names the missing or unreadable file
        key = (os.fspath(path), stat.st_size, stat.st_mtime_ns, kind)
        cached = self.entries.get(key)
        if cached is not None:
            self.hits += 1
            return cached.copy()
        self.misses += 1
        array = decode(path)
        if self.nbytes + array.nbytes <= self.limit_bytes:
            self.entries[key] = array.copy()
            self.nbytes += array.nbytes
        return array

    def clear(self) -> None:
        """Forget every entry and the counts."""
        self.entries.clear()
        self.nbytes = self.hits = self.misses = 0


DECODED = DecodeCache()
"""The process's cache of decoded image and label files (see ``DecodeCache``)."""


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a float32 tensor 3 x H x W in [0, 1]."""
    array = np.array(image, dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def decode_rgb(path: Path) -> np.ndarray:
    """The image at ``path`` as a uint8 H x W x 3 RGB array (uncached)."""
    return np.array(open_image(path, "RGB"), dtype=np.uint8)


def read_image(path: Path) -> torch.Tensor:
    """The image at ``path`` as float32 3 x H x W in [0, 1] (grayscale and palette images become RGB); decoded
    once per process (``DECODED``)."""
    array = DECODED.get(Path(path), "rgb", decode_rgb)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def _decode_id_map(path: Path) -> np.ndarray:
    image = open_image(path)
    if image.mode in ("L", "P"):
        return np.array(image, dtype=np.uint8)
    if image.mode in ("RGB", "RGBA"):
        return np.asarray(image, dtype=np.uint8)[..., 0].copy()
    raise ValueError(f"{path}: label image has mode {image.mode!r}; expected 8-bit ids (L, P or RGB)")


def read_id_map(path: Path) -> np.ndarray:
    """A label map of ids as a uint8 H x W array: the values of an L or P image, or the first channel of an RGB
    one (as the CelebAMask-HQ tools read their masks); decoded once per process (``DECODED``)."""
    return DECODED.get(Path(path), "ids", _decode_id_map)


def dataset_schema(dataset: Dataset) -> LabelSchema | None:
    """The label schema of a dataset of this package, through any ``Subset`` of it; None when it names none."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return getattr(dataset, "schema", None)


def check_ids(label: torch.Tensor, schema: LabelSchema, path: Path | str) -> None:
    """Raise ValueError naming ``path`` when ``label`` holds ids that are neither classes nor ``ignore_index``."""
    bad = (label >= schema.num_classes) & (label != schema.ignore_index) | (label < 0)
    if bad.any():
        values = sorted(set(label[bad].unique().tolist()))[:10]
        raise ValueError(
            f"{path}: label ids {values} are outside the {schema.name} schema (0..{schema.num_classes - 1}, "
            f"ignore {schema.ignore_index})"
        )


def check_same_size(image: torch.Tensor, label: torch.Tensor, image_path: Path, label_path: Path) -> None:
    """Raise ValueError when image (3 x H x W) and label (H x W) differ in size, naming both files."""
    if tuple(image.shape[-2:]) != tuple(label.shape[-2:]):
        raise ValueError(
            f"{label_path}: label is {label.shape[-1]}x{label.shape[-2]} (WxH) but its image {image_path} is "
            f"{image.shape[-1]}x{image.shape[-2]}"
        )


def require_dir(path: Path, what: str) -> Path:
    """``path`` when it is a folder, else FileNotFoundError saying which part of the layout is missing."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: {what} folder not found (see data/README.md for the expected layout)")
    return path


def check_split(split: str, splits: tuple[str, ...], dataset: str) -> str:
    """``split`` when it is one of ``splits``, else ValueError."""
    if split not in splits:
        raise ValueError(f"{dataset}: unknown split {split!r}; choose one of {list(splits)}")
    return split


def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Files of ``folder`` whose suffix is in ``suffixes`` (case-insensitive), keyed by stem."""
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in suffixes}


def natural_key(text: str) -> list[Any]:
    """A sort key that orders the numbers in ``text`` by value ("2" before "10")."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


class ParsingDataset(Dataset):
    """Base of every reader: ``load(index)`` gives ``image``, ``label``, ``name`` and extras; ``__getitem__``
    applies ``transform`` and adds the edge ground truth (``label_edges`` of the final label) unless the
    transform already did.

    Subclasses set ``schema`` and implement ``__len__`` and ``load``.
    """

    schema: LabelSchema

    def __init__(self, transform: Transform | None = None) -> None:
        self.transform = transform

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        """The untransformed sample ``index`` (no ``edge``)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {len(self)} samples")
        sample = self.load(index % len(self))
        if self.transform is not None:
            sample = self.transform(sample)
        if "edge" not in sample:
            sample["edge"] = label_edges(sample["label"], self.schema.ignore_index)
        return sample
