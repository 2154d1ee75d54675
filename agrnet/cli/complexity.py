"""``agrnet complexity``: FLOPs and parameters of each part of AGRNet beside the paper's Table I(d)
(``agrnet.model.flops``), as a table or JSON."""

from __future__ import annotations

import argparse
import json

from agrnet.model import AGRNet, AGRNetConfig
from agrnet.model.flops import complexity, format_table
from agrnet.paper import PAPER_INPUT_SIZE


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet complexity``."""
    parser.add_argument("--backbone", default="resnet101")
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--size", type=int, nargs=2, default=(PAPER_INPUT_SIZE, PAPER_INPUT_SIZE), metavar=("H", "W"))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Build the model and print its cost per part."""
    model = AGRNet.from_config(AGRNetConfig.from_settings(args))
    table = complexity(model, tuple(args.size))
    print(json.dumps(table, indent=2) if args.json else format_table(table))
    return 0
