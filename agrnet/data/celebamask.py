"""CelebAMask-HQ (Lee et al., CVPR 2020): its raw release layout (``CelebAMaskHQ``, with CelebA's splits) and a
folder of image and label pairs (``CelebAMaskHQFolder``). ``agrnet.data.build_dataset("celebamask-hq", root)``
picks the reader that fits ``root``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from agrnet.data.base import (
    ParsingDataset,
    Sample,
    Transform,
    check_ids,
    check_split,
    files_by_stem,
    image_to_tensor,
    natural_key,
    open_image,
    read_id_map,
    require_dir,
)
from agrnet.data.labels import CELEBAMASK_HQ, CELEBAMASK_HQ_PARTS
from agrnet.files import atomic_write, default_cache_dir


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
            stems = files_by_stem(self.image_dir, (".jpg",))
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
        images = files_by_stem(require_dir(self.root / "images", "CelebAMask-HQ images"), (".png", ".jpg"))
        labels = files_by_stem(require_dir(self.root / "labels", "CelebAMask-HQ labels"), (".png",))
        missing = sorted(images.keys() - labels.keys(), key=natural_key)
        if missing:
            raise FileNotFoundError(f"{self.root / 'labels'}: no label for image(s) {', '.join(missing)}")
        self.items = [(images[stem], labels[stem]) for stem in sorted(images, key=natural_key)]

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
