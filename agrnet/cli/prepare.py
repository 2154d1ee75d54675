"""``agrnet prepare <dataset> <root>``: check a downloaded dataset, write its caches, list every bad file and print a
summary per split (``agrnet.data.prepare``); the exit status is 1 when there are bad files."""

from __future__ import annotations

import argparse
from pathlib import Path

from agrnet.data.datasets import DATASETS
from agrnet.data.prepare import SPLITS, check_splits, format_report


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
    reports = check_splits(name, args.root, args.splits, args.cache_dir, progress=not args.no_progress)
    failed = args.splits is not None and any(report.missing for report in reports)
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
