"""``agrnet prepare <dataset> <root>``: check a downloaded dataset, write its caches, print a summary.

Every sample of every requested split is loaded once: pairs must match, image and label sizes agree, and ids lie
inside the schema. Loading CelebAMask-HQ writes its merged-label cache. All bad files are listed, not only the
first one; the exit status is 1 when there are any. Images a release publishes without labels (FASSEG's
multipose test split labels 6 of its 13 yaws) are listed as "unlabelled, skipped", not as bad files.
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from agrnet.data.base import ParsingDataset
from agrnet.data.datasets import DATASETS, build_dataset

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


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet prepare``."""
    parser.add_argument("dataset", choices=sorted(SPLITS), help="which dataset layout to check")
    parser.add_argument("root", type=Path, help="the dataset's folder, as described in data/README.md")
    parser.add_argument(
        "--split",
        action="append",
        dest="splits",
        metavar="SPLIT",
        help="split to check (repeatable); default: every split of the dataset that is present",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where caches go (CelebAMask-HQ merged labels); default $AGRNET_CACHE or ~/.cache/agrnet",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")


def run(args: argparse.Namespace) -> int:
    """Check the requested splits, print the bad files and a per-split summary; 0 when all is well, else 1."""
    name = args.dataset
    if not args.root.is_dir():
        print(f"error: {args.root}: dataset folder not found")
        return 1
    explicit = args.splits is not None
    splits = args.splits or list(SPLITS[name])
    kwargs = {"cache_dir": args.cache_dir} if name == "celebamask-hq" else {}
    reports: list[SplitReport] = []
    failed = False
    for split in splits:
        try:
            with warnings.catch_warnings():  # the report lists unlabelled images itself
                warnings.simplefilter("ignore")
                dataset = build_dataset(name, args.root, split=split, **kwargs)
        except CHECKED_ERRORS as error:
            reports.append(SplitReport(split=split, missing=str(error)))
            failed |= explicit
            continue
        reports.append(check_dataset(dataset, split, progress=not args.no_progress))
    if name == "celebamask-hq" and not explicit and all(r.missing for r in reports):
        dataset = build_dataset(name, args.root, split="all", **kwargs)
        reports.append(check_dataset(dataset, "all", progress=not args.no_progress))
    schema = DATASETS[name].schema
    bad = [message for report in reports for message in report.bad]
    if bad:
        print(f"{len(bad)} bad file(s):")
        print("\n".join(f"  {message}" for message in bad))
    for report in reports:
        if report.unlabelled:
            print(f"{len(report.unlabelled)} image(s) of {report.split} without a label (unlabelled, skipped):")
            print("\n".join(f"  {path}" for path in report.unlabelled))
    for report in reports:
        print(format_report(name, report, schema.classes))
    if all(report.missing for report in reports):
        print(f"error: no split of {name} found under {args.root}")
        return 1
    return 1 if bad or failed else 0
