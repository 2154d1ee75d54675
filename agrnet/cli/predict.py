"""``agrnet predict``: parse image files and folders with a checkpoint or shipped weights into label maps and
overlays (``agrnet.predict``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agrnet.evaluate import DEFAULT_SIZE, check_positive
from agrnet.files import check_writable
from agrnet.predict import Predictor, predict_files
from agrnet.runtime import AMP_DTYPES, parse_device


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet predict``."""
    parser.add_argument(
        "checkpoint", nargs="?", type=Path, help="checkpoint written by `agrnet train` (omitted with --weights)"
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders of images")
    parser.add_argument("--weights", default=None, help="shipped trained weights to use (see `agrnet weights list`)")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: predictions)")
    parser.add_argument(
        "--size", type=int, default=None,
        help=f"model input size (default: the checkpoint's or weights' training size, else {DEFAULT_SIZE})",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default: 4)")
    parser.add_argument("--flip", action="store_true", help="flip test-time augmentation")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1] (default: 0.5)")
    parser.add_argument("--amp", choices=tuple(AMP_DTYPES), default="none", help="mixed precision (default: none)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")


def run(args: argparse.Namespace) -> int:
    """``agrnet predict``: 0 when every input was parsed, 1 when some could not be read (listed), 2 on errors."""
    inputs = args.inputs
    if args.weights is not None and args.checkpoint is not None:
        inputs = [args.checkpoint, *inputs]  # with --weights every positional argument is an input
    elif args.weights is None and args.checkpoint is None:
        print("agrnet predict: error: give a checkpoint or --weights NAME before the inputs", file=sys.stderr)
        return 2
    try:
        check_positive("--size", args.size)
        check_positive("--batch-size", args.batch_size)
        if not 0 <= args.alpha <= 1:
            raise ValueError(f"--alpha: expected a value in [0, 1], got {args.alpha}")
        check_writable(args.out, "--out", folder=True)
        device = parse_device(args.device)
        options = {"device": device, "size": args.size, "flip": args.flip, "batch_size": args.batch_size}
        if args.weights is not None:
            predictor = Predictor.from_weights(args.weights, amp=AMP_DTYPES[args.amp], **options)
        else:
            predictor = Predictor.from_checkpoint(args.checkpoint, amp=AMP_DTYPES[args.amp], **options)
        result = predict_files(predictor, inputs, args.out, alpha=args.alpha, progress=True)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"agrnet predict: error: {error}", file=sys.stderr)
        return 2
    print(f"parsed {len(result.written)} image(s) into {args.out}: labels/ (paletted ids), overlays/")
    if result.failed:
        print(f"could not parse {len(result.failed)} input(s):", file=sys.stderr)
        for path, reason in result.failed:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0
