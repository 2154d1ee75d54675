"""``agrnet download``: fetch, verify and unpack FASSEG into the layout ``agrnet`` reads (``agrnet.download``); every
failure is one line and exit status 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agrnet.download import DEFAULT_DIR, FASSEG_URL, DownloadError, download_fasseg


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet download``."""
    parser.add_argument("dataset", choices=["fasseg"], help="the dataset to fetch (FASSEG is the public one)")
    parser.add_argument(
        "dir", nargs="?", type=Path, default=DEFAULT_DIR, help=f"where it goes (default: {DEFAULT_DIR})"
    )
    parser.add_argument("--archive", type=Path, default=None, help="use this downloaded zip instead of the network")
    parser.add_argument("--url", default=FASSEG_URL, help="where to download the zip from (default: %(default)s)")
    parser.add_argument("--sha256", default=None, metavar="HEX", help="fail unless the zip has this SHA-256")
    parser.add_argument("--any-counts", action="store_true", help="accept split sizes other than the published ones")
    parser.add_argument("--force", action="store_true", help="replace DIR when it already holds files")


def run(args: argparse.Namespace) -> int:
    """``agrnet download``: 0 when DIR holds the dataset, else one error line and 1."""
    try:
        download_fasseg(
            args.dir,
            archive=args.archive,
            url=args.url,
            expected_sha256=args.sha256,
            any_counts=args.any_counts,
            force=args.force,
        )
    except DownloadError as error:
        print(f"agrnet download: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # e.g. DIR's parent cannot be created
        named = f"{error.filename}: {error.strerror}" if error.filename and error.strerror else str(error)
        print(f"agrnet download: error: {named}", file=sys.stderr)
        return 1
    return 0
