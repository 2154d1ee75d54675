"""``agrnet prepare <dataset> <root>``: check a downloaded dataset, write its caches, print a summary.

Every sample of every requested split is loaded once: pairs must match, image and label sizes agree, and ids lie
inside the schema. Loading CelebAMask-HQ writes its merged-label cache. All bad files are listed, not only the
first one; the exit status is 1 when there are any. Images a release publishes without labels (FASSEG's
multipose test split labels 6 of its 13 yaws) are listed as "unlabelled, skipped", not as bad files.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from agrnet.data.base import ParsingDataset
from agrnet.data.datasets import build_dataset

SPLITS = {
    "lapa": ("train", "val", "test"),
    "celebamask-hq": ("train", "val", "test"),
    "helen": ("train", "val", "test"),
    "lip": ("train", "val"),
    "fasseg": ("train", "test", "multipose-train", "multipose-test"),
}
EXPECTED_COUNTS = {
    ("lapa", "train"): 18176,
    ("lapa", "val"): 2000,
    ("lapa", "test"): 2000,
    ("celebamask-hq", "train"): 24183,
    ("celebamask-hq", "val"): 2993,
    ("celebamask-hq", "test"): 2824,
    ("helen", "train"): 2000,
    ("helen", "val"): 230,
    ("helen", "test"): 100,
    ("lip", "train"): 30462,
    ("lip", "val"): 10000,
}
CHECKED_ERRORS = (FileNotFoundError, ValueError, RuntimeError)


@dataclass
class SplitReport:
    """What checking one split found."""

    split: str
    count: int = 0
    bad: list[str] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)
    class_images: torch.Tensor | None = None
    missing: str | None = None
    unlabelled: list[str] = field(default_factory=list)


def check_dataset(dataset: ParsingDataset, split: str, progress: bool = True) -> SplitReport:
    """Load every sample of ``dataset``; collect errors, image sizes and in how many images each class occurs."""
    unlabelled = [str(path) for path in getattr(dataset, "unlabelled", [])]
    report = SplitReport(split=split, count=len(dataset), unlabelled=unlabelled)
    report.class_images = torch.zeros(dataset.schema.num_classes, dtype=torch.long)
    for index in tqdm(range(len(dataset)), desc=split, disable=not progress, leave=False):
        try:
            sample = dataset.load(index)
        except CHECKED_ERRORS as error:
            report.bad.append(str(error))
            continue
        label = sample["label"]
        report.sizes[tuple(label.shape)] += 1
        valid = label[label != dataset.schema.ignore_index]
        report.class_images += torch.bincount(valid.flatten(), minlength=dataset.schema.num_classes) > 0
    return report


def format_report(name: str, report: SplitReport, class_names: tuple[str, ...]) -> str:
    """A few readable lines about one split."""
    if report.missing is not None:
        return f"{name} {report.split}: not present ({report.missing})"
    expected = EXPECTED_COUNTS.get((name, report.split))
    count = f"{report.count} samples" + (f" (release: {expected})" if expected not in (None, report.count) else "")
    skipped = f", {len(report.unlabelled)} unlabelled, skipped" if report.unlabelled else ""
    lines = [f"{name} {report.split}: {count}, {len(report.bad)} bad{skipped}"]
    if report.sizes:
        ((common, times),) = report.sizes.most_common(1)
        lines.append(f"  label sizes: {len(report.sizes)} distinct, most common {common[1]}x{common[0]} ({times})")
    if report.class_images is not None and report.count:
        present = ", ".join(f"{n} {int(c)}" for n, c in zip(class_names, report.class_images, strict=True))
        lines.append(f"  images per class: {present}")
    return "\n".join(lines)


def check_splits(
    name: str, root: Path, splits: Sequence[str] | None = None, cache_dir: Path | None = None, progress: bool = True
) -> list[SplitReport]:
    """Check each of ``splits`` of dataset ``name`` under ``root`` (default: every split of the dataset; for
    CelebAMask-HQ, when none of them is present, its one "all" split). A split that cannot be opened is reported
    with the reason in ``missing``; images a release publishes without labels are listed, not warned about."""
    kwargs = {"cache_dir": cache_dir} if name == "celebamask-hq" else {}
    reports: list[SplitReport] = []
    for split in SPLITS[name] if splits is None else splits:
        try:
            with warnings.catch_warnings():  # the report lists unlabelled images itself
                warnings.simplefilter("ignore")
                dataset = build_dataset(name, root, split=split, **kwargs)
        except CHECKED_ERRORS as error:
            reports.append(SplitReport(split=split, missing=str(error)))
            continue
        reports.append(check_dataset(dataset, split, progress=progress))
    if name == "celebamask-hq" and splits is None and all(r.missing for r in reports):
        dataset = build_dataset(name, root, split="all", **kwargs)
        reports.append(check_dataset(dataset, "all", progress=progress))
    return reports
