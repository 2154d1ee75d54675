"""``agrnet export``: a checkpoint or shipped weights to ONNX (``agrnet.export``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agrnet.cli.model_source import add_model_source, load_model_source
from agrnet.data.transforms import check_input_size
from agrnet.evaluate import checkpoint_size
from agrnet.export import INPUT_NAME, OPSET, OUTPUT_NAME, check_onnx, export_onnx
from agrnet.files import check_writable
from agrnet.runtime import parse_device


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet export``."""
    add_model_source(parser)
    parser.add_argument("--out", type=Path, default=Path("agrnet.onnx"), help="ONNX file (default: agrnet.onnx)")
    parser.add_argument(
        "--size", type=int, nargs=2, metavar=("H", "W"), default=None,
        help="input size the graph accepts (default: the checkpoint's or weights' training size, square)",
    )  # fmt: skip
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default: {OPSET})")
    parser.add_argument("--check", action="store_true", help="compare onnxruntime's output with PyTorch's")
    parser.add_argument("--device", default="cpu", help="device to trace on (default: cpu)")


def run(args: argparse.Namespace) -> int:
    """``agrnet export``: write the ONNX file (and check it against PyTorch with ``--check``)."""
    try:
        if args.size is not None:
            check_input_size(tuple(args.size), "--size")
        check_writable(args.out, "--out")
        device = parse_device(args.device)
        model, schema, payload = load_model_source(args, map_location=device)
        size = check_input_size(tuple(args.size) if args.size else checkpoint_size(payload), "--size")
        path = export_onnx(model, args.out, size, schema, opset=args.opset)
        print(f"wrote {path} (input {INPUT_NAME}: N x 3 x {size[0]} x {size[1]} in [0, 1], output {OUTPUT_NAME})")
        if args.check:
            print(f"onnxruntime matches PyTorch: max |difference| {check_onnx(model, path):.2e}")
    except (ValueError, OSError, RuntimeError) as error:
        print(f"agrnet export: error: {error}", file=sys.stderr)
        return 2
    return 0
