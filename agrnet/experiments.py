"""Experiments on real photographs (FASSEG) with a wall-clock budget per training: the main result, the ablation
of Table I(a)(b), the vertex count of Table I(c) and the domain gap across head poses of Table IV.

``agrnet experiment NAME`` trains each variant and seed of experiment ``NAME`` with ``agrnet.train.train`` (preset
"fasseg", ``RECIPE`` and the variant's settings on top, ``time_budget_s`` from ``--budget-minutes``), scores the
last checkpoint with ``agrnet.evaluate.evaluate`` (never the best-on-test one: FASSEG's only held-out split is
its test split) and writes one JSON file: the command, git commit, versions, machine, load average, wall and CPU
time, seeds planned and done, every run's metrics, and their mean and standard deviation over seeds. The file is
rewritten after each run, so an interrupted experiment keeps what it finished; running the same command again
skips the runs the file already holds with the same configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch.utils.data import Subset

from agrnet.bench import environment
from agrnet.checkpoint import load_model
from agrnet.data.datasets import build_dataset
from agrnet.data.transforms import EvalTransform
from agrnet.evaluate import evaluate
from agrnet.files import write_json
from agrnet.metrics import ConfusionMatrix
from agrnet.train import NonFiniteLossError, parse_overrides, preset_config, train

DEFAULT_ROOT = Path("../shared/data/fasseg")
RECIPE: dict[str, Any] = {
    "backbone": "resnet18",
    "pretrained_backbone": None,
    "train_split": "train+multipose-train",
    "size": 256,
    "channels": 64,
    "batch_size": 8,
    "optimizer": "adamw",
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "rotation": 15.0,
    "scale": (0.8, 1.2),
    "steps": 100_000,
    "val_every": 0,
    "num_val_images": 4,
    "checkpoint_every": 100,
    "log_every": 10,
    "workers": 0,
    "threads": 2,
    "device": "cpu",
    "amp": "bf16",
    "channels_last": True,
}
"""Settings on top of the "fasseg" preset shared by every experiment: a from-scratch ResNet-18 (no ImageNet weights
here) trained with AdamW under a time budget (``steps`` is only a cap). The training's own end-of-run
validation is a smoke check on 4 test images; the scores come from ``evaluate`` on whole splits.

bf16 autocast with channels_last makes a training step several times faster than fp32 on a CPU with AMX
(``book/results/cpu_train_*.json``, from ``agrnet bench``), so a budget buys that many times the steps. On a CPU
without bf16 units it can be slower than fp32: there, pass ``--set amp=none --set channels_last=false``."""


@dataclass(frozen=True)
class Evaluation:
    """Score on ``split``; ``by_yaw`` adds one score per head pose (FASSEG multipose samples carry ``yaw``)."""

    split: str
    by_yaw: bool = False


@dataclass(frozen=True)
class Variant:
    """One trained model per seed: ``settings`` on top of ``RECIPE``, scored on each of ``evaluations``."""

    settings: dict[str, Any] = field(default_factory=dict)
    evaluations: tuple[Evaluation, ...] = (Evaluation("test"),)


@dataclass(frozen=True)
class Experiment:
    """Variants trained for each seed under one budget (minutes per training); ``settings`` apply to every variant
    (on top of ``RECIPE``, under the variant's own)."""

    variants: dict[str, Variant]
    budget_minutes: float
    seeds: tuple[int, ...]
    out: str
    settings: dict[str, Any] = field(default_factory=dict)


SHORT_RUN: dict[str, Any] = {"size": 192}
"""The short runs train at 192 px: 0.56 times the FLOPs of 256 px, so about twice the steps in the budget."""

EXPERIMENTS: dict[str, Experiment] = {
    "fasseg-main": Experiment({"full": Variant()}, 20.0, (0,), "book/results/fasseg_main.json"),
    "fasseg-ablation": Experiment(
        {
            "baseline": Variant({"use_graph": False, "use_edge": False}),
            "+adaptive projection": Variant({"use_edge": False, "use_reasoning": False}),
            "+edge": Variant({"use_reasoning": False}),
            "full": Variant(),
            "full, no discriminative loss": Variant({"use_discriminative": False}),
            "full, no boundary-attention loss": Variant({"use_boundary": False}),
        },
        3.0,
        (0, 1, 2),
        "book/results/fasseg_ablation.json",
        SHORT_RUN,
    ),
    "fasseg-domain-gap": Experiment(
        {
            "frontal02 -> multipose": Variant(
                {"train_split": "train"}, (Evaluation("multipose-train", by_yaw=True), Evaluation("test"))
            ),
            "multipose -> frontal02": Variant({"train_split": "multipose-train"}, (Evaluation("test"),)),
        },
        3.0,
        (0,),
        "book/results/fasseg_domain_gap.json",
        SHORT_RUN,
    ),
    "fasseg-topk": Experiment(
        {f"top-{k}": Variant({"top_k": k}) for k in (1, 2, 4, 8)},
        3.0,
        (0,),
        "book/results/fasseg_topk.json",
        SHORT_RUN,
    ),
}
SUMMARY_METRICS = ("mean_f1", "miou", "pixel_accuracy", "mean_accuracy")


def _load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def score(model: torch.nn.Module, root: Path, evaluation: Evaluation, size: int, flip: bool = False) -> dict[str, Any]:
    """``evaluate`` of ``model`` on ``evaluation.split`` at original size.

    With ``by_yaw``, each head pose is scored on its own (``by_yaw`` maps the yaw in degrees, as text, to its
    report) and the split's report is that of the summed confusion matrices, so no image is run twice.
    """
    dataset = build_dataset("fasseg", root, evaluation.split, transform=EvalTransform(size))
    schema = dataset.schema
    if not evaluation.by_yaw:
        return evaluate(model, dataset, schema, device="cpu", flip=flip, batch_size=8)
    yaws = [int(pose) for pose, *_ in dataset.items]  # the ``yaw`` of each sample, read without decoding it
    by_yaw = {
        yaw: evaluate(model, Subset(dataset, [i for i, y in enumerate(yaws) if y == yaw]), schema, "cpu", flip, 8)
        for yaw in sorted(set(yaws))
    }
    confusion = ConfusionMatrix(schema.num_classes, schema.ignore_index)
    confusion.matrix = torch.tensor([report["confusion_matrix"] for report in by_yaw.values()]).sum(0)
    report = confusion.to_dict(schema.classes, schema.groups)
    report.update(
        schema=schema.name, num_images=len(dataset), flip=flip, confusion_matrix=confusion.matrix.tolist(),
        by_yaw={str(yaw): report for yaw, report in by_yaw.items()},
    )  # fmt: skip
    return report


def summarise(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean, sample standard deviation (None for one seed) and count over seeds of each variant's scores, per
    evaluated split: the summary metrics and the F1 of each class."""
    grouped: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for run in runs:
        for split, report in run["metrics"].items():
            grouped.setdefault(run["variant"], {}).setdefault(split, []).append(report)

    def stats(values: list[float | None]) -> dict[str, Any]:
        known = [value for value in values if value is not None]  # None: a class absent from image and prediction
        return {
            "mean": statistics.fmean(known) if known else None,
            "std": statistics.stdev(known) if len(known) > 1 else None,
            "n": len(known),
        }

    summary: dict[str, Any] = {}
    for variant, splits in grouped.items():
        summary[variant] = {}
        for split, reports in splits.items():
            entry = {name: stats([r[name] for r in reports]) for name in SUMMARY_METRICS}
            entry["f1"] = {name: stats([r["f1"][name] for r in reports]) for name in reports[0]["f1"]}
            summary[variant][split] = entry
    return summary


def command_line(args: argparse.Namespace) -> str:
    """The ``agrnet experiment`` command that reproduces ``args``."""
    words = ["agrnet", "experiment", args.experiment]
    words += ["--seeds", *map(str, args.seeds)] if args.seeds is not None else []
    words += ["--budget-minutes", str(args.budget_minutes)] if args.budget_minutes is not None else []
    words += ["--variants", *args.variants] if args.variants else []
    words += [word for item in args.overrides for word in ("--set", item)]
    words += ["--data-root", str(args.data_root)] if args.data_root != DEFAULT_ROOT else []
    words += ["--out", str(args.out)] if args.out is not None else []
    words += ["--runs-dir", str(args.runs_dir)] if args.runs_dir != Path("runs/experiments") else []
    words += ["--flip"] if args.flip else []
    words += ["--fresh"] if args.fresh else []
    return shlex.join(words)


def _record(
    results: dict[str, Any], runs: list[dict[str, Any]], experiment: Experiment, wall: float, cpu: float, out: Path
) -> None:
    """Bring ``results`` up to date with ``runs`` (seeds done, summary, times, load) and write it to ``out``.

    Wall and CPU time are this invocation's in the last ``history`` entry; the top-level ones sum all invocations.
    """
    trained = {(run["variant"], run["seed"]) for run in runs}
    done = sorted(s for s in {run["seed"] for run in runs} if all((n, s) in trained for n in experiment.variants))
    history = results["history"]
    history[-1] |= {
        "load_average_end": _load_average(), "wall_time_s": time.perf_counter() - wall,
        "cpu_time_s": time.process_time() - cpu,
    }  # fmt: skip
    results |= {
        "runs": runs, "seeds_done": done, "complete": set(done) >= set(experiment.seeds), "summary": summarise(runs),
        "load_average_end": history[-1]["load_average_end"],
        "wall_time_s": sum(entry.get("wall_time_s", 0.0) for entry in history),
        "cpu_time_s": sum(entry.get("cpu_time_s", 0.0) for entry in history),
    }  # fmt: skip
    write_json(out, results)


def run_experiment(args: argparse.Namespace) -> dict[str, Any]:
    """Train and score every (seed, variant) of ``args.experiment`` not yet in the results file; returns the
    results, which are also written to ``args.out`` after each run."""
    experiment = EXPERIMENTS[args.experiment]
    seeds = tuple(args.seeds) if args.seeds is not None else experiment.seeds
    budget_minutes = args.budget_minutes if args.budget_minutes is not None else experiment.budget_minutes
    names = list(args.variants or experiment.variants)
    unknown = sorted(set(names) - set(experiment.variants))
    if unknown:
        raise ValueError(
            f"--variants: unknown {unknown} for {args.experiment}; choose from {list(experiment.variants)}"
        )
    if not args.data_root.is_dir():
        raise FileNotFoundError(f"{args.data_root}: FASSEG folder not found (pass --data-root)")
    overrides = parse_overrides(args.overrides)
    out = Path(args.out or experiment.out)
    previous = json.loads(out.read_text()) if out.is_file() and not args.fresh else {}
    runs: list[dict[str, Any]] = [
        run for run in previous.get("runs", []) if previous.get("experiment") == args.experiment
    ]
    started = datetime.now(UTC)
    wall, cpu = time.perf_counter(), time.process_time()
    env = environment(torch.device("cpu"))
    results: dict[str, Any] = {
        "experiment": args.experiment,
        "command": command_line(args),
        "git_commit": env["git_commit"],
        "date": started.isoformat(timespec="seconds"),
        "versions": {
            "agrnet": env["agrnet"], "torch": env["torch"], "torchvision": torchvision.__version__,
            "python": env["python"],
        },
        "machine": {key: env[key] for key in ("platform", "cpu_count", "device", "device_name")},
        "load_average_start": _load_average(),
        "budget_minutes": budget_minutes,
        "budget_minutes_planned": experiment.budget_minutes,
        "recipe": {**RECIPE, **experiment.settings, **overrides},
        "variants": {name: asdict(variant) for name, variant in experiment.variants.items()},
        "variants_requested": names,
        "seeds_planned": list(experiment.seeds),
        "seeds_requested": list(seeds),
    }  # fmt: skip
    results["history"] = [
        *previous.get("history", []),
        {key: results[key] for key in ("command", "git_commit", "date", "load_average_start")},
    ]
    stamp = started.strftime("%Y%m%d-%H%M%S")
    for seed in seeds:
        for name in names:
            variant = experiment.variants[name]
            settings = {**RECIPE, **experiment.settings, **variant.settings, **overrides, "seed": seed}
            settings["time_budget_s"] = 60 * budget_minutes
            config = preset_config("fasseg", **settings, data_root=str(args.data_root))
            settings = json.loads(json.dumps(settings))
            if any(run["variant"] == name and run["settings"] == settings for run in runs):
                print(f"{args.experiment}: {name} seed {seed} is already in {out}, skipped", file=sys.stderr)
                continue
            folder = re.sub(r"[^\w+-]+", "_", name)
            config.out = str(args.runs_dir / args.experiment / stamp / f"{folder}-seed{seed}")
            load_start, run_wall = _load_average(), time.perf_counter()
            run_dir = train(config)
            train_s = time.perf_counter() - run_wall
            model, _, payload = load_model(run_dir / "last.pt", map_location="cpu")
            metrics = {e.split: score(model, args.data_root, e, config.size) for e in variant.evaluations}
            if args.flip:
                metrics |= {f"{e.split} (flip)": score(model, args.data_root, e, config.size, True)
                            for e in variant.evaluations}  # fmt: skip
            runs.append({
                "variant": name, "seed": seed, "settings": settings, "run_dir": str(run_dir),
                "steps": payload["step"], "train_loop_s": payload["elapsed_s"], "train_wall_s": train_s,
                "wall_s": time.perf_counter() - run_wall, "load_average_start": load_start,
                "load_average_end": _load_average(), "metrics": metrics,
            })  # fmt: skip
            _record(results, runs, experiment, wall, cpu, out)
    _record(results, runs, experiment, wall, cpu, out)
    return results


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet experiment``."""
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS), help="which experiment to run")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the experiment's)")
    parser.add_argument("--budget-minutes", type=float, default=None, help="training minutes per run")
    parser.add_argument("--variants", nargs="+", default=None, help="run only these variants")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a TrainConfig field of every run (repeatable), e.g. --set size=192",
    )  # fmt: skip
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT, help=f"FASSEG folder (default {DEFAULT_ROOT})")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: book/results/fasseg_*.json)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/experiments"), help="where run folders go")
    parser.add_argument("--flip", action="store_true", help="also score with flip test-time augmentation")
    parser.add_argument(
        "--fresh", action="store_true", help="train every run again and replace the results file (default: keep the "
        "runs it holds with the same settings and add the missing ones)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``agrnet experiment``: run it and print each variant's mean F1 over seeds."""
    try:
        results = run_experiment(args)
    except (ValueError, FileNotFoundError, FileExistsError, NonFiniteLossError) as error:
        print(f"agrnet experiment: error: {error}", file=sys.stderr)
        return 1
    for variant, splits in summarise(results["runs"]).items():
        for split, entry in splits.items():
            f1 = entry["mean_f1"]
            spread = f" +- {100 * f1['std']:.1f}" if f1["std"] is not None else ""
            print(f"{variant:34s} {split:18s} mean F1 {100 * f1['mean']:.1f}{spread} (n={f1['n']})")
    return 0
