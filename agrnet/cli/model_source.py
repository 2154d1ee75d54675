"""The model a command runs and how: a checkpoint written by ``agrnet train`` or, with ``--weights NAME``, trained
weights shipped with the package (``agrnet.weights``), loaded the same way for every command that takes one; and the
options of running it (input size, batch, flip, precision, device), the same for every command that runs it."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agrnet import weights
from agrnet.checkpoint import load_model
from agrnet.data.labels import LabelSchema
from agrnet.evaluate import DEFAULT_SIZE, warn_on_version
from agrnet.framing import CONTEXT
from agrnet.runtime import AMP_DTYPES


class MissingModelError(ValueError):
    """Neither a checkpoint nor ``--weights`` was given."""


def add_model_source(parser: argparse.ArgumentParser) -> None:
    """The optional ``checkpoint`` positional argument and ``--weights NAME`` (one of the two is needed)."""
    parser.add_argument(
        "checkpoint", nargs="?", type=Path, help="checkpoint written by `agrnet train` (or give --weights instead)"
    )
    parser.add_argument(
        "--weights", default=None, metavar="NAME", help="shipped trained weights to use (see `agrnet weights list`)"
    )


def add_switches(parser: argparse.ArgumentParser, switches: Mapping[str, str]) -> None:
    """Options that take no value (``store_true``), each flag with its help, in order."""
    for flag, help_text in switches.items():
        parser.add_argument(flag, action="store_true", help=help_text)


def add_inference_options(parser: argparse.ArgumentParser, size_default: str, batch_size: int) -> None:
    """``--size`` (default: ``size_default``, else ``DEFAULT_SIZE``), ``--batch-size``, ``--flip`` or ``--no-flip``
    (default None: as the model says), ``--scales`` (default None: 1), ``--amp`` and ``--device``: how the command
    runs its model."""
    parser.add_argument(
        "--size", type=int, default=None, help=f"model input size (default: {size_default}, else {DEFAULT_SIZE})"
    )
    help_batch = f"images per forward pass (default: {batch_size})"
    parser.add_argument("--batch-size", type=int, default=batch_size, help=help_batch)
    parser.add_argument(
        "--flip", action=argparse.BooleanOptionalAction, default=None,
        help="flip test-time augmentation (default: as the shipped weights' card says, off for a checkpoint)",
    )  # fmt: skip
    parser.add_argument(
        "--scales", type=float, nargs="+", default=None, metavar="FACTOR",
        help="multi-scale test-time augmentation: parse each image resized by each FACTOR of the model input size "
        "and average the results (default: 1, the input size alone)",
    )  # fmt: skip
    parser.add_argument("--amp", choices=tuple(AMP_DTYPES), default="none", help="mixed precision (default: none)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")


def add_context_option(parser: argparse.ArgumentParser) -> None:
    """``--context``: how much wider than the model's frame the photo pipeline's second view of each face is."""
    parser.add_argument(
        "--context", type=float, default=None, metavar="FACTOR",
        help=f"photo pipeline: parse each face a second time in a view FACTOR times wider than the model's frame, "
        f"for the hair, neck and clothes around the crop (default: {CONTEXT}; 1: the crop alone)",
    )  # fmt: skip


def check_context(args: argparse.Namespace, photos: bool, otherwise: str) -> None:
    """Set ``args.context`` to ``CONTEXT`` when ``--context`` is not given; raise ValueError when it is given below 1,
    or where no photo pipeline runs (``photos`` False; ``otherwise`` ends the line and says why)."""
    if args.context is None:
        args.context = CONTEXT
    elif not photos:
        raise ValueError(f"--context: applies to whole photos, {otherwise}")
    elif not args.context >= 1:
        raise ValueError(f"--context: expected a factor >= 1 (1: no context view), got {args.context}")


def load_model_source(
    args: argparse.Namespace, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, LabelSchema, dict[str, Any]]:
    """The model (eval mode), its label schema and its checkpoint dict (for weights: ``ModelWeights.payload``) of
    ``args.checkpoint`` or ``args.weights``. ValueError when both or neither are given, the loaders' errors (each
    naming the file) otherwise."""
    if args.checkpoint is not None and args.weights is not None:
        raise ValueError(
            f"give a checkpoint or --weights NAME, not both (got {args.checkpoint} and --weights {args.weights})"
        )
    if args.weights is not None:
        return weights.get(args.weights).load_as_checkpoint(map_location)
    if args.checkpoint is None:
        raise MissingModelError("give a checkpoint written by `agrnet train` or --weights NAME")
    model, schema, payload = load_model(args.checkpoint, map_location=map_location)
    warn_on_version(payload, args.checkpoint)
    return model, schema, payload


def model_source_words(args: argparse.Namespace) -> list[str]:
    """How a recorded command names the model: ``--weights NAME`` or the checkpoint's path."""
    return ["--weights", args.weights] if args.weights is not None else [str(args.checkpoint)]


def model_source_record(args: argparse.Namespace, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a report records of the model: the checkpoint's path, or the weights' name and sha256 (from the
    ``payload`` that ``load_model_source`` returned, so the registry is read once)."""
    if args.weights is None:
        return {"checkpoint": str(args.checkpoint)}
    return {"weights": payload["weights"], "weights_sha256": payload["weights_sha256"]}
