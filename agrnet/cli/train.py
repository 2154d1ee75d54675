"""``agrnet train``: build a ``TrainConfig`` from a preset, ``--set key=value`` overrides and flags, train it
(``agrnet.training``) and print the run directory."""

from __future__ import annotations

import argparse
import os
import sys

from agrnet.config import PRESETS, TrainConfig, parse_overrides, preset_config
from agrnet.files import BadFileError
from agrnet.runtime import AMP_CHOICES
from agrnet.training import NonFiniteLossError, train

FLAGS: dict[str, tuple[str, type, str]] = {
    "--steps": ("steps", int, "number of optimisation steps"),
    "--batch-size": ("batch_size", int, "global batch size (split over DDP processes)"),
    "--size": ("size", int, "square input size in pixels"),
    "--lr": ("lr", float, "base learning rate of the poly schedule"),
    "--backbone": ("backbone", str, "ResNet backbone (resnet18 ... resnet152)"),
    "--data-root": ("data_root", str, "dataset folder (not needed for synthetic faces)"),
    "--out": ("out", str, "run directory (default runs/<timestamp>)"),
    "--resume": ("resume", str, "checkpoint to continue from, or 'auto' for the run directory's last.pt"),
    "--device": ("device", str, "auto, cpu, cuda, cuda:N"),
    "--seed": ("seed", int, "random seed"),
    "--val-every": ("val_every", int, "validate every N steps (0: only at the end)"),
    "--workers": ("workers", int, "data-loading worker processes per training process"),
}
SWITCHES: dict[str, tuple[str, str]] = {
    "--channels-last": ("channels_last", "channels-last memory format"),
    "--compile": ("compile", "torch.compile the model"),
    "--deterministic": ("deterministic", "deterministic algorithms (exact resume on the CPU with --workers 0)"),
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet train``."""
    parser.add_argument("--preset", default="synthetic", choices=sorted(PRESETS), help="named configuration")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override any TrainConfig field (repeatable), e.g. --set optimizer=sgd --set scale=0.75,1.25",
    )  # fmt: skip
    for flag, (name, kind, help_text) in FLAGS.items():
        parser.add_argument(flag, dest=name, type=kind, default=None, help=help_text)
    parser.add_argument(
        "--amp", choices=AMP_CHOICES, default=None,
        help="mixed precision (default auto: bf16 only where a short probe on this machine shows it faster than fp32)",
    )  # fmt: skip
    for flag, (name, help_text) in SWITCHES.items():
        parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Preset, then ``--set`` overrides, then explicit flags."""
    overrides = parse_overrides(args.overrides)
    names = [name for name, _, _ in FLAGS.values()] + [name for name, _ in SWITCHES.values()] + ["amp"]
    overrides.update({name: getattr(args, name) for name in names if getattr(args, name) is not None})
    return preset_config(args.preset, **overrides)


def run(args: argparse.Namespace) -> int:
    """``agrnet train``: train and print the run directory. Exit status 0, 1 on an error (one line, naming the
    setting or file), 130 on Ctrl-C (saying how to resume)."""
    try:
        config = config_from_args(args)
        run_dir = train(config)
    except (ValueError, OSError, BadFileError, NonFiniteLossError) as error:
        print(f"agrnet train: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as error:  # TrainingInterrupted from the loop, plain before it
        print(f"agrnet train: {str(error) or 'interrupted before the first step'}", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(run_dir)
    return 0
