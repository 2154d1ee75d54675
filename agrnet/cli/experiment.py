"""``agrnet experiment NAME``: train and score the variants and seeds of a FASSEG experiment on the step protocol
(``agrnet.experiments``), then print each variant's mean F1 over seeds and its paired difference to the reference."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from agrnet import experiments
from agrnet.experiments import DEFAULT_ROOT, DEFAULT_RUNS_DIR, EXPERIMENTS, interval_text, summarise
from agrnet.training import NonFiniteLossError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet experiment``."""
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS), help="which experiment to run")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the experiment's)")
    parser.add_argument(
        "--time-cap-minutes", type=float, default=None,
        help="stop any training that runs longer than this (a safety cap; a run is defined by its steps)",
    )  # fmt: skip
    parser.add_argument("--variants", nargs="+", default=None, help="run only these variants")
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="trainings at once, each in its own process sharing the CPU's cores (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a TrainConfig field of every run (repeatable), e.g. --set steps=300",
    )  # fmt: skip
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT, help=f"FASSEG folder (default {DEFAULT_ROOT})")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: book/results/fasseg_*.json)")
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR, help="where run folders go")
    parser.add_argument("--flip", action="store_true", help="also score with flip test-time augmentation")
    parser.add_argument(
        "--ensemble", action="store_true",
        help="also score each variant's seeds as one ensemble (the mean of their class probabilities)",
    )  # fmt: skip
    parser.add_argument(
        "--fresh", action="store_true", help="train every run again (deleting its run folder) and replace the results "
        "file (default: keep the runs the file holds with the same settings, continue unfinished ones from their "
        "last.pt and add the missing ones)",
    )  # fmt: skip


def command_line(args: argparse.Namespace) -> str:
    """The ``agrnet experiment`` command that reproduces ``args``."""
    words = ["agrnet", "experiment", args.experiment]
    words += ["--seeds", *map(str, args.seeds)] if args.seeds is not None else []
    words += ["--time-cap-minutes", str(args.time_cap_minutes)] if args.time_cap_minutes is not None else []
    words += ["--variants", *args.variants] if args.variants else []
    words += ["--jobs", str(args.jobs)] if args.jobs != 1 else []
    words += [word for item in args.overrides for word in ("--set", item)]
    words += ["--data-root", str(args.data_root)] if args.data_root != DEFAULT_ROOT else []
    words += ["--out", str(args.out)] if args.out is not None else []
    words += ["--runs-dir", str(args.runs_dir)] if args.runs_dir != DEFAULT_RUNS_DIR else []
    words += ["--flip"] if args.flip else []
    words += ["--ensemble"] if args.ensemble else []
    words += ["--fresh"] if args.fresh else []
    return shlex.join(words)


def run_experiment(args: argparse.Namespace) -> dict[str, Any]:
    """``agrnet.experiments.run_experiment`` with the arguments of ``agrnet experiment``; the results file records
    the command that reproduces them (``command_line``)."""
    return experiments.run_experiment(
        args.experiment, args.data_root, seeds=args.seeds, variants=args.variants, overrides=args.overrides,
        time_cap_minutes=args.time_cap_minutes, jobs=args.jobs, out=args.out, runs_dir=args.runs_dir,
        flip=args.flip, fresh=args.fresh, ensemble=args.ensemble, command=command_line(args),
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``agrnet experiment``: run it and print each variant's mean F1 over seeds (and its paired difference)."""
    try:
        results = run_experiment(args)
    except (ValueError, FileNotFoundError, FileExistsError, NonFiniteLossError) as error:
        print(f"agrnet experiment: error: {error}", file=sys.stderr)
        return 1
    differences = results.get("paired", {})
    for variant, splits in summarise(results["runs"]).items():
        for split, entry in splits.items():
            f1 = entry["mean_f1"]
            spread = f" +- {100 * f1['std']:.1f}" if f1["std"] is not None else ""
            line = f"{variant:34s} {split:18s} mean F1 {100 * f1['mean']:.1f}{spread} (n={f1['n']})"
            difference = differences.get(variant, {}).get(split)
            if difference is not None and difference["low"] is not None:
                line += f"; vs {difference['reference']} {interval_text(difference)}"
            print(line)
    return 0
