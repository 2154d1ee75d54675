"""The ``agrnet`` command: a thin front end that parses arguments and calls the library.

Each subcommand is one module of this package, and only these modules parse arguments: a module listed in
``COMMANDS`` exposes ``configure_parser(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int``, checks its arguments and calls the library.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agrnet.version import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("agrnet.cli.train", "train AGRNet (Algorithm 1); synthetic faces by default"),
    "evaluate": ("agrnet.cli.evaluate", "score a checkpoint on a dataset split at original size"),
    "predict": ("agrnet.cli.predict", "parse image files or folders into label maps and overlays"),
    "export": ("agrnet.cli.export", "export a checkpoint to ONNX"),
    "prepare": ("agrnet.cli.prepare", "check a downloaded dataset and write its caches"),
    "download": ("agrnet.cli.download", "download, verify and unpack FASSEG (the public dataset) into data/fasseg"),
    "bench": ("agrnet.cli.bench", "time training and inference, report peak memory"),
    "complexity": ("agrnet.cli.complexity", "FLOPs and parameters per part (Table I(d))"),
    "experiment": ("agrnet.cli.experiment", "FASSEG experiments on real faces on a fixed step protocol (Tables I, IV)"),
    "weights": ("agrnet.cli.weights", "shipped trained weights: list, show, verify, export, rescore, retrain"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser for each available command."""
    parser = argparse.ArgumentParser(
        prog="agrnet",
        description="AGRNet face parsing: train, evaluate, predict, export, prepare data, benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"agrnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.configure_parser(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agrnet`` console script and of ``python -m agrnet``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
