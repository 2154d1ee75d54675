"""Experiments on real photographs (FASSEG) on a fixed step protocol: the main result, the ablation of Table
I(a)(b), the vertex count of Table I(c), the authors' code's departures from the paper, the domain gap across
head poses of Table IV, the diagnosis of an earlier protocol's instability (a constant learning rate), and the
appearance augmentation for faces from elsewhere (``fasseg-photo``: fitted on ``fit``, chosen on ``val``).

``agrnet experiment NAME`` trains each variant and seed of experiment ``NAME`` with ``agrnet.train.train`` (preset
"fasseg", ``PROTOCOL``, the experiment's and the variant's settings on top), scores the last checkpoint with
``agrnet.evaluate.evaluate`` on FASSEG ``test`` and ``test-unseen`` (its faces that no train split holds) and
writes one JSON file: the command, git commit, versions, machine, load average, wall and CPU time, seeds planned
and done, every run's steps, seconds per step, chosen precision and metrics, their mean and standard deviation
over seeds, and for experiments with a reference variant the paired difference of every variant to it with a
95 % interval (``agrnet.stats``). The file is rewritten after each run, so an interrupted experiment keeps what it
finished; running the same command again skips the runs the file already holds with the same configuration.

Paired design: variants of one seed start from the same initial weights in every part they share (``AGRNet``
seeds each part on its own) and see the same batches in the same order (the sampler and the augmentation are
seeded by the run's seed after the model is built) in one precision (``experiment_precision``: probed once,
then kept by every later piece, whichever machine runs it), so a difference between two variants of a seed is
the effect of the parts that differ, not of the draw.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch.utils.data import Subset

from agrnet.bench import environment, peak_rss_mib
from agrnet.checkpoint import load_model
from agrnet.config import TrainConfig, parse_overrides, preset_config
from agrnet.data.datasets import build_dataset
from agrnet.data.transforms import APPEARANCE, EvalTransform
from agrnet.evaluate import evaluate
from agrnet.files import write_json
from agrnet.losses import AUTHORS_WEIGHTS, TERMS
from agrnet.metrics import ConfusionMatrix
from agrnet.runtime import native_bf16
from agrnet.stats import paired_difference, verdict
from agrnet.train import NonFiniteLossError, choose_run_precision, train

DEFAULT_ROOT = Path("../shared/data/fasseg")
PROTOCOL: dict[str, Any] = {
    "backbone": "resnet18",
    "pretrained_backbone": None,
    "output_stride": 16,
    "train_split": "train+multipose-train",
    "size": 256,
    "channels": 64,
    "batch_size": 8,
    "optimizer": "adamw",
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "rotation": 15.0,
    "scale": (0.8, 1.2),
    "steps": 800,
    "val_every": 0,
    "num_val_images": 4,
    "checkpoint_every": 100,
    "log_every": 10,
    "workers": 0,
    "device": "cpu",
    "amp": "auto",
    "channels_last": "auto",
}
"""The step protocol every experiment trains with (on top of the "fasseg" preset): a from-scratch ResNet-18 (no
ImageNet weights offline) at output stride 16, 256 px, batch 8, AdamW with the poly schedule over ``steps``. A
training is defined by its steps, so its result does not depend on the machine's speed; ``--time-cap-minutes``
only bounds the cost (a run that hits the cap is recorded as such). Precision is "auto": fp32 unless a short
probe on this machine shows bf16 (native bf16 CPUs and GPUs only) or channels_last faster, recorded per run.
The training's own end-of-run validation is a smoke check on 4 ``val`` images; the scores come from ``evaluate``
on whole splits. CPU threads are torch's default (``OMP_NUM_THREADS`` sets them): they change the speed, not the
result."""


@dataclass(frozen=True)
class Evaluation:
    """Score on ``split``; ``by_yaw`` adds one score per head pose (FASSEG multipose samples carry ``yaw``)."""

    split: str
    by_yaw: bool = False


@dataclass(frozen=True)
class Variant:
    """One trained model per seed: ``settings`` on top of ``PROTOCOL``, scored on each of ``evaluations``."""

    settings: dict[str, Any] = field(default_factory=dict)
    evaluations: tuple[Evaluation, ...] = (Evaluation("test"), Evaluation("test-unseen"))


@dataclass(frozen=True)
class Experiment:
    """Variants trained for each seed on the step protocol; ``settings`` apply to every variant (on top of
    ``PROTOCOL``, under the variant's own). With a ``reference`` variant, every other variant's paired difference
    to it over the seeds is reported with a 95 % interval."""

    variants: dict[str, Variant]
    seeds: tuple[int, ...]
    out: str
    settings: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None


PAIRED_SEEDS = (0, 1, 2, 3, 4)
"""Seeds of the paired experiments (ablation, top-K): five, the least that gives a paired t interval some power."""

SHORT_PROTOCOL: dict[str, Any] = {"size": 192, "steps": 300}
"""The paired experiments' protocol: 300 steps at 192 px (0.56 times the FLOPs of 256 px), so that 5 seeds of every
variant fit a few hours of a 2-core CPU; the main result's 800 steps at 256 px would take a day."""

CONSTANT_LR_PROTOCOL: dict[str, Any] = {**SHORT_PROTOCOL, "steps": 150, "poly_power": 0.0}
"""The learning rate of the first version of the ablation, for the diagnosis of its unstable graph variants: that
version gave each training 3 minutes of a schedule planned over 100 000 steps, so it stopped at 124 to 172 steps
with the learning rate still at its peak, in bf16 with channels_last (the precision its probe chose on an AMX
Xeon). Here: 150 steps at a constant learning rate, otherwise the short protocol; "fasseg-constant-lr" in the
experiment's one precision (fp32 where bf16 does not pay), "fasseg-constant-lr-bf16" in that version's."""

PHOTO_EVALUATIONS = (Evaluation("val"), Evaluation("test"), Evaluation("test-unseen"))
"""Where the photo experiment scores: ``val`` (the split its choices are made on) and both test splits."""

EXPERIMENTS: dict[str, Experiment] = {
    "fasseg-main": Experiment({"full": Variant()}, (0, 1, 2), "book/results/fasseg_main.json"),
    "fasseg-ablation": Experiment(
        {
            "paper-baseline": Variant({"use_graph": False, "use_edge": False, "use_boundary": False}),
            "baseline": Variant({"use_graph": False, "use_edge": False}),
            "+adaptive projection": Variant({"use_edge": False, "use_reasoning": False}),
            "+edge": Variant({"use_reasoning": False}),
            "full": Variant(),
            "full, no discriminative loss": Variant({"use_discriminative": False}),
            "full, no boundary-attention loss": Variant({"use_boundary": False}),
        },
        PAIRED_SEEDS,
        "book/results/fasseg_ablation.json",
        SHORT_PROTOCOL,
        reference="baseline",
    ),
    "fasseg-authors": Experiment(
        {
            "full": Variant(),
            "edge-gated reprojection": Variant({"edge_gate": True}),
            "detached edge map": Variant({"detach_edge": True}),
            "authors' loss weights": Variant({"loss_weights": AUTHORS_WEIGHTS}),
            "all three": Variant({"edge_gate": True, "detach_edge": True, "loss_weights": AUTHORS_WEIGHTS}),
        },
        PAIRED_SEEDS,
        "book/results/fasseg_authors.json",
        SHORT_PROTOCOL,
        reference="full",
    ),
    "fasseg-domain-gap": Experiment(
        {
            "frontal02 -> multipose": Variant(
                {"train_split": "train"}, (Evaluation("multipose-train", by_yaw=True), Evaluation("test"))
            ),
            "multipose -> frontal02": Variant({"train_split": "multipose-train"}, (Evaluation("test"),)),
        },
        (0,),
        "book/results/fasseg_domain_gap.json",
    ),
    "fasseg-constant-lr": Experiment(
        {"baseline": Variant({"use_graph": False, "use_edge": False}), "full": Variant()},
        PAIRED_SEEDS,
        "book/results/fasseg_constant_lr.json",
        CONSTANT_LR_PROTOCOL,
        reference="baseline",
    ),
    "fasseg-constant-lr-bf16": Experiment(
        {"baseline": Variant({"use_graph": False, "use_edge": False}), "full": Variant()},
        PAIRED_SEEDS,
        "book/results/fasseg_constant_lr_bf16.json",
        {**CONSTANT_LR_PROTOCOL, "amp": "bf16", "channels_last": True},
        reference="baseline",
    ),
    "fasseg-photo": Experiment(
        {
            "plain": Variant({"train_split": "fit"}, PHOTO_EVALUATIONS),
            "appearance": Variant({"train_split": "fit", "augment": APPEARANCE}, PHOTO_EVALUATIONS),
        },
        PAIRED_SEEDS,
        "book/results/fasseg_photo.json",
        reference="plain",
    ),
    "fasseg-topk": Experiment(
        {f"top-{k}": Variant({"top_k": k}) for k in (1, 2, 4, 8)},
        PAIRED_SEEDS,
        "book/results/fasseg_topk.json",
        SHORT_PROTOCOL,
        reference="top-4",
    ),
}
SUMMARY_METRICS = ("mean_f1", "miou", "pixel_accuracy", "mean_accuracy")
PAPER_MEAN_F1: dict[str, float] = {
    "paper-baseline": 90.9, "+adaptive projection": 91.4, "+edge": 91.6, "full": 92.3,
    "full, no discriminative loss": 91.8, "full, no boundary-attention loss": 91.4,
    "top-1": 91.6, "top-2": 91.9, "top-4": 92.3, "top-8": 91.1,
}  # fmt: skip
"""Mean F1 (%) on LaPa of the paper's Table I (a, b, c) for the variants of the paired experiments that it has:
its baseline (row 1 of Table I(a)) is ResNet + pyramid pooling trained with cross-entropy alone, our
"paper-baseline"; our "baseline" adds L_BA, which the paper's rows add only with the edge module."""


def _cpu_time() -> float:
    """CPU seconds, user and system, of this process and of its children that have ended (the trainings)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def score(model: torch.nn.Module, root: Path, evaluation: Evaluation, size: int, flip: bool = False) -> dict[str, Any]:
    """``evaluate`` of ``model`` on ``evaluation.split`` at original size, the split as published: pairs whose files
    are bad (FASSEG's multipose test split has four image/label pairs of different sizes) are left out and listed
    under ``skipped`` (``evaluate(..., skip_bad=True)``).

    With ``by_yaw``, each head pose is scored on its own (``by_yaw`` maps the yaw in degrees, as text, to its
    report) and the split's report is that of the summed confusion matrices, so no image is run twice.
    """
    dataset = build_dataset("fasseg", root, evaluation.split, transform=EvalTransform(size))
    schema = dataset.schema
    if not evaluation.by_yaw:
        return evaluate(model, dataset, schema, device="cpu", flip=flip, batch_size=8, skip_bad=True)
    yaws = [int(pose) for pose, *_ in dataset.items]  # the ``yaw`` of each sample, read without decoding it
    by_yaw = {
        yaw: evaluate(
            model, Subset(dataset, [i for i, y in enumerate(yaws) if y == yaw]), schema, "cpu", flip, 8, skip_bad=True
        )
        for yaw in sorted(set(yaws))
    }
    confusion = ConfusionMatrix(schema.num_classes, schema.ignore_index)
    confusion.matrix = torch.tensor([report["confusion_matrix"] for report in by_yaw.values()]).sum(0)
    report = confusion.to_dict(schema.classes, schema.groups)
    report.update(
        schema=schema.name, num_images=sum(r["num_images"] for r in by_yaw.values()), flip=flip,
        confusion_matrix=confusion.matrix.tolist(), skipped=[s for r in by_yaw.values() for s in r["skipped"]],
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


def paired(
    runs: Sequence[Mapping[str, Any]], reference: str, metric: Callable[[Mapping[str, Any]], float | None] | None = None
) -> dict[str, Any]:
    """Each variant's paired difference to ``reference`` in ``metric`` of a report (default: its mean F1), per
    evaluated split, over the seeds both have where it is defined (``agrnet.stats.paired_difference``, 95 % t
    interval), with those seeds."""
    metric = metric or (lambda report: report["mean_f1"])
    scores: dict[tuple[str, str], dict[int, float]] = {}
    for run in runs:
        for split, report in run["metrics"].items():
            value = metric(report)
            if value is not None:  # None: e.g. the F1 of a class absent from image and prediction
                scores.setdefault((run["variant"], split), {})[run["seed"]] = value
    result: dict[str, Any] = {}
    for (variant, split), by_seed in scores.items():
        base = scores.get((reference, split), {})
        seeds = sorted(set(by_seed) & set(base))
        if variant == reference or not seeds:
            continue
        difference = paired_difference([by_seed[s] for s in seeds], [base[s] for s in seeds])
        result.setdefault(variant, {})[split] = {**difference.to_dict(), "seeds": seeds, "reference": reference}
    return result


def interval_text(difference: Mapping[str, Any]) -> str:
    """A paired difference in points of F1: its mean and, from two seeds on, its 95 % interval ("-1.3 [-2.0, -0.5]")."""
    text = f"{100 * difference['mean']:+.1f}"
    if difference["low"] is not None:
        text += f" [{100 * difference['low']:+.1f}, {100 * difference['high']:+.1f}]"
    return text


def class_table(results: Mapping[str, Any], split: str = "test") -> str:
    """Each variant's paired difference in F1 to the reference, class by class, as a Markdown table: points of F1,
    mean over the seeds and the half-width of its 95 % interval, in bold where the interval excludes zero."""
    reference, runs = results["reference"], results["runs"]
    classes = list(next(run["metrics"][split]["f1"] for run in runs if split in run["metrics"]))
    by_class = {name: paired(runs, reference, lambda report, name=name: report["f1"][name]) for name in classes}
    lines = [f"| minus {reference} | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
    for variant in results["variants"]:
        if variant == reference:
            continue
        cells = []
        for name in classes:
            difference = by_class[name].get(variant, {}).get(split)
            if difference is None:
                cells.append("–")
                continue
            text = f"{100 * difference['mean']:+.1f}"
            if difference["low"] is not None:
                text += f" ± {100 * difference['half_width']:.1f}"
                text = f"**{text}**" if difference["low"] > 0 or difference["high"] < 0 else text
            cells.append(text)
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_results(folder: Path, name: str) -> dict[str, Any] | None:
    """Experiment ``name``'s results file in ``folder`` (under its default file name); None when there is none or
    it is one of an older protocol (no ``protocol`` entry)."""
    path = folder / Path(EXPERIMENTS[name].out).name
    results = json.loads(path.read_text()) if path.is_file() else None
    return results if results is not None and "protocol" in results else None


def progress(results: Mapping[str, Any] | None) -> str:
    """What a results file holds, in words: "pending" (no file, or one of an older protocol), else complete or
    partial, its trainings, the seeds that every variant has and, while partial, the variants with every planned
    seed."""
    if results is None or "protocol" not in results:
        return "pending"
    seeds: dict[str, set[int]] = {}
    for run in results["runs"]:
        seeds.setdefault(run["variant"], set()).add(run["seed"])
    planned = set(results["seeds_planned"])
    text = (
        f"{'complete' if results['complete'] else 'partial'}: {len(results['runs'])} trainings; "
        f"seeds with every variant: {results['seeds_done'] or 'none yet'}"
    )
    if not results["complete"]:
        finished = [variant for variant in results["variants"] if seeds.get(variant, set()) >= planned]
        text += f"; variants with all {len(planned)} planned seeds: {', '.join(finished) or 'none yet'}"
    return text


def paired_table(results: Mapping[str, Any], split: str = "test", paper: Mapping[str, float] = PAPER_MEAN_F1) -> str:
    """A paired experiment's results as a Markdown table: per variant the seeds, mean F1 +- its sample standard
    deviation, the paired difference to the reference with its 95 % interval, what the interval reads
    (``agrnet.stats.verdict``) and ``paper``'s number; variants with no run read "pending"."""
    reference = results["reference"]
    lines = [
        f"| variant | seeds | mean F1 (%) | minus {reference}, 95 % interval | reads | paper (LaPa) |",
        "|---|---|---|---|---|---|",
    ]
    for variant in results["variants"]:
        entry = results["summary"].get(variant, {}).get(split)
        printed = paper.get(variant, "–")
        if entry is None:
            lines.append(f"| {variant} | 0 | pending | | | {printed} |")
            continue
        f1 = entry["mean_f1"]
        spread = f" ± {100 * f1['std']:.1f}" if f1["std"] is not None else ""
        difference = results.get("paired", {}).get(variant, {}).get(split)
        compared, reads = ("reference", "") if variant == reference else ("–", "")
        if difference is not None:
            compared, reads = interval_text(difference), verdict(difference["low"], difference["high"])
        lines.append(f"| {variant} | {f1['n']} | {100 * f1['mean']:.1f}{spread} | {compared} | {reads} | {printed} |")
    return "\n".join(lines)


PARTS: tuple[tuple[str, str, str], ...] = (
    ("adaptive projection and reprojection (Eq. 3, 5, 6)", "+adaptive projection", "baseline"),
    ("edge module and its masking (Eq. 2)", "+edge", "+adaptive projection"),
    ("graph reasoning (Eq. 4)", "full", "+edge"),
    ("discriminative loss L_dis", "full", "full, no discriminative loss"),
    ("boundary-attention loss L_BA", "full", "full, no boundary-attention loss"),
)
"""The parts of the ablation, each as (part, the variant with it, the variant without it): Table I(a) adds the
modules one by one, Table I(b) the losses."""


def parts_table(
    results: Mapping[str, Any], parts: Sequence[tuple[str, str, str]] = PARTS, split: str = "test",
    paper: Mapping[str, float] = PAPER_MEAN_F1,
) -> str:  # fmt: skip
    """What each of ``parts`` adds, as a Markdown table: the paired difference in mean F1 of the variant with it to
    the one without it on the seeds both have, its 95 % interval, what the interval reads, and ``paper``'s
    difference between the same two variants."""
    lines = [
        "| part | with minus without, same seed (points) | seeds | reads | paper (LaPa) |",
        "|---|---|---|---|---|",
    ]
    for part, with_part, without in parts:
        difference = paired(results["runs"], without).get(with_part, {}).get(split)
        printed = f"{paper[with_part] - paper[without]:+.1f}" if with_part in paper and without in paper else "–"
        if difference is None:
            lines.append(f"| {part} | pending | 0 | | {printed} |")
            continue
        reads = verdict(difference["low"], difference["high"])
        lines.append(f"| {part} | {interval_text(difference)} | {difference['n']} | {reads} | {printed} |")
    return "\n".join(lines)


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
    words += ["--runs-dir", str(args.runs_dir)] if args.runs_dir != Path("runs/experiments") else []
    words += ["--flip"] if args.flip else []
    words += ["--fresh"] if args.fresh else []
    return shlex.join(words)


def training_curve(log: Path) -> list[dict[str, Any]]:
    """The logged training steps of a run's ``log.jsonl`` (every ``log_every`` steps): step, learning rate, the
    loss and its terms, and the diagnostics of ``agrnet.diagnostics`` (4 significant digits)."""

    def rounded(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: rounded(item) for key, item in value.items()}
        return float(f"{value:.4g}") if isinstance(value, float) else value

    keep = ("step", "lr", "loss", *TERMS, "diagnostics")
    records = (json.loads(line) for line in log.read_text().splitlines())
    return [{key: rounded(r[key]) for key in keep if key in r} for r in records if r.get("kind") == "train"]


def train_and_score(
    config: TrainConfig, evaluations: Sequence[Evaluation], root: Path, flip: bool
) -> dict[str, Any]:
    """Train ``config`` and score its last checkpoint on ``evaluations`` (and with flip TTA when ``flip``): the
    part of a run's record that the run itself measures, with this process's CPU time (all its threads) and peak
    memory."""
    load_start, started, cpu = _load_average(), time.perf_counter(), time.process_time()
    run_dir = train(config)
    train_s = time.perf_counter() - started
    model, _, payload = load_model(run_dir / "last.pt", map_location="cpu")
    metrics = {e.split: score(model, root, e, config.size) for e in evaluations}
    if flip:
        metrics |= {f"{e.split} (flip)": score(model, root, e, config.size, True) for e in evaluations}
    return {
        "curve": training_curve(run_dir / "log.jsonl"),
        "run_dir": str(run_dir), "steps": payload["step"], "steps_planned": config.steps,
        "stopped_by": payload.get("stopped_by"), "seconds_per_step": payload["elapsed_s"] / max(payload["step"], 1),
        "train_loop_s": payload["elapsed_s"], "train_wall_s": train_s, "precision": payload.get("precision"),
        "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu, "load_average_start": load_start,
        "load_average_end": _load_average(), "peak_rss_mib": peak_rss_mib(), "metrics": metrics,
    }  # fmt: skip


def _start_run_process(parent: int, threads: int | None) -> None:
    """Initializer of a run's process: on Linux, the kernel ends it (SIGTERM) when the experiment's process
    ``parent`` dies, so that killing an experiment never leaves its training running on its own; ``threads`` (when
    given) are its torch CPU threads."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
    if threads is not None:
        torch.set_num_threads(threads)


def run_pool(jobs: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` worker processes, each spawned fresh for one task: every training of an experiment
    starts from a clean heap and gives all its memory back when it ends, however many run one after another.
    With ``jobs`` > 1 and no ``OMP_NUM_THREADS`` set, the CPU's cores are shared out among the workers."""
    threads = None
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    return ProcessPoolExecutor(
        jobs, multiprocessing.get_context("spawn"), _start_run_process, (os.getpid(), threads), max_tasks_per_child=1
    )


def run_folder(parent: Path, variant: str, settings: Mapping[str, Any]) -> Path:
    """The run folder of one training: ``<variant>-seed<seed>-<hash of its settings>`` under ``parent``, the same
    for the same training whenever and in whichever experiment it runs: an experiment that was killed continues
    each unfinished training from its ``last.pt`` (``resume="auto"``), and two experiments that share a training
    (the full model of the ablation and of the authors' variants) train it once."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    name = re.sub(r"[^\w+-]+", "_", variant)
    return parent / f"{name}-seed{settings['seed']}-{digest}"


def _record(
    results: dict[str, Any], runs: list[dict[str, Any]], experiment: Experiment, wall: float, cpu: float, out: Path
) -> None:
    """Bring ``results`` up to date with ``runs`` (seeds done, summary, paired differences, times, load) and write
    it to ``out``.

    Wall and CPU time are this invocation's in the last ``history`` entry; the top-level ones sum all invocations.
    CPU time counts the trainings' processes once they have ended (``_cpu_time``); each run records its own.
    """
    trained = {(run["variant"], run["seed"]) for run in runs}
    done = sorted(s for s in {run["seed"] for run in runs} if all((n, s) in trained for n in experiment.variants))
    history = results["history"]
    history[-1] |= {
        "load_average_end": _load_average(), "wall_time_s": time.perf_counter() - wall,
        "cpu_time_s": _cpu_time() - cpu,
    }  # fmt: skip
    results |= {
        "runs": runs, "seeds_done": done, "complete": set(done) >= set(experiment.seeds), "summary": summarise(runs),
        "load_average_end": history[-1]["load_average_end"],
        "wall_time_s": sum(entry.get("wall_time_s", 0.0) for entry in history),
        "cpu_time_s": sum(entry.get("cpu_time_s", 0.0) for entry in history),
    }  # fmt: skip
    if experiment.reference is not None:
        results["paired"] = paired(runs, experiment.reference)
    write_json(out, results)


def run_settings(experiment: Experiment, variant: Variant, overrides: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The ``TrainConfig`` fields of one training: the protocol, the experiment's, the variant's, the command
    line's and the seed, as JSON would hold them (so they compare equal to a results file's)."""
    settings = {**PROTOCOL, **experiment.settings, **variant.settings, **overrides, "seed": seed}
    return json.loads(json.dumps(settings))


def concrete_settings(run: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded run's settings with an "auto" ``amp`` or ``channels_last`` replaced by the precision it trained
    with (files written before experiments fixed their precision hold "auto")."""
    settings, precision = dict(run["settings"]), run.get("precision") or {}
    for key in ("amp", "channels_last"):
        if settings.get(key) == "auto" and key in precision:
            settings[key] = precision[key]
    return settings


def same_training(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two runs' settings define one training: the same ``TrainConfig`` once defaults are filled in (the
    ablation's "full" and top-K's "top-4" are one training, though only the second sets ``top_k``)."""
    return asdict(preset_config("fasseg", **a)) == asdict(preset_config("fasseg", **b))


def recorded_elsewhere(out: Path, name: str) -> list[tuple[str, dict[str, Any]]]:
    """The runs recorded by the other experiments' results files beside ``out`` (each under its default file name),
    as (file name, run with concrete settings and the evaluations its experiment gave it)."""
    found = []
    for other, experiment in EXPERIMENTS.items():
        path = out.parent / Path(experiment.out).name
        if other == name or not path.is_file():
            continue
        results = json.loads(path.read_text())
        for run in results.get("runs", []):
            variant = experiment.variants.get(run["variant"])
            if results.get("experiment") == other and variant is not None:
                run = {**run, "settings": concrete_settings(run), "evaluations": variant.evaluations}
                found.append((path.name, run))
    return found


def shared_record(
    elsewhere: Sequence[tuple[str, Mapping[str, Any]]], variant: Variant, settings: Mapping[str, Any], flip: bool
) -> dict[str, Any] | None:
    """The record of a run in ``elsewhere`` (``recorded_elsewhere``) that is this training, scored on the same
    evaluations (with flip TTA as asked), without its variant and seed and with ``shared_from`` naming it."""
    splits = {e.split for e in variant.evaluations} | {f"{e.split} (flip)" for e in variant.evaluations if flip}
    for source, run in elsewhere:
        if (
            run["evaluations"] == variant.evaluations and set(run["metrics"]) == splits
            and same_training(run["settings"], settings)
        ):  # fmt: skip
            record = {key: value for key, value in run.items() if key not in ("variant", "seed", "evaluations")}
            return {**record, "shared_from": f"{source}: {run['variant']} seed {run['seed']}"}
    return None


def experiment_precision(
    experiment: Experiment, overrides: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], jobs: int = 1
) -> dict[str, Any]:
    """``amp`` and ``channels_last`` of every run of ``experiment``, fixed once so that the variants of a seed
    differ only in their own settings on whichever machine each trains: as set (``--set``); else as the first run
    the results file holds was trained; else what the probe picks on this machine for the full model on the
    experiment's protocol (``agrnet.train.choose_run_precision``), probed in a process of its own with the threads
    of one of ``jobs`` runs at once, like a training (it leaves its memory, hundreds of MiB with bf16 kernels, in
    that process)."""
    settings = run_settings(experiment, Variant(), overrides, 0)
    if "auto" not in (settings["amp"], settings["channels_last"]):
        return {"amp": settings["amp"], "channels_last": settings["channels_last"], "reason": "set by the command"}
    if runs:
        first = runs[0]["settings"]
        pinned = {key: first[key] if settings[key] == "auto" else settings[key] for key in ("amp", "channels_last")}
        where = f"{runs[0]['variant']} seed {runs[0]['seed']}"
        return {**pinned, "reason": f"as the results file's first run ({where}) was trained, for a paired design"}
    with run_pool(jobs) as pool:
        probe = pool.submit(choose_run_precision, preset_config("fasseg", **settings), torch.device("cpu"))
        choice = probe.result()
    return {"amp": choice.amp, "channels_last": choice.channels_last, "reason": choice.reason,
            "timings_s": choice.timings_s}  # fmt: skip


def run_experiment(args: argparse.Namespace) -> dict[str, Any]:
    """Train and score every (seed, variant) of ``args.experiment`` not yet in the results file; returns the
    results, which are also written to ``args.out`` after each run."""
    experiment = EXPERIMENTS[args.experiment]
    seeds = tuple(args.seeds) if args.seeds is not None else experiment.seeds
    names = list(args.variants or experiment.variants)
    unknown = sorted(set(names) - set(experiment.variants))
    if unknown:
        raise ValueError(
            f"--variants: unknown {unknown} for {args.experiment}; choose from {list(experiment.variants)}"
        )
    if args.jobs < 1:
        raise ValueError(f"--jobs: expected a positive number of trainings at once, got {args.jobs}")
    if args.time_cap_minutes is not None and not args.time_cap_minutes > 0:
        raise ValueError(f"--time-cap-minutes: expected a positive number, got {args.time_cap_minutes}")
    if not args.data_root.is_dir():
        raise FileNotFoundError(f"{args.data_root}: FASSEG folder not found (pass --data-root)")
    overrides = parse_overrides(args.overrides)
    if args.time_cap_minutes is not None:
        overrides["time_cap_s"] = 60 * args.time_cap_minutes
    for seed in seeds:  # every configuration is checked before the first training starts
        for name in names:
            preset_config("fasseg", **run_settings(experiment, experiment.variants[name], overrides, seed))
    out = Path(args.out or experiment.out)
    previous = json.loads(out.read_text()) if out.is_file() and not args.fresh else {}
    runs: list[dict[str, Any]] = [
        {**run, "settings": concrete_settings(run)}
        for run in previous.get("runs", [])
        if previous.get("experiment") == args.experiment
    ]
    precision = experiment_precision(experiment, overrides, runs, args.jobs)
    overrides.update(amp=precision["amp"], channels_last=precision["channels_last"])
    started = datetime.now(UTC)
    wall, cpu = time.perf_counter(), _cpu_time()
    device = torch.device("cpu")
    env = environment(device)
    results: dict[str, Any] = {
        "experiment": args.experiment,
        "command": command_line(args),
        "git_commit": env["git_commit"],
        "date": started.isoformat(timespec="seconds"),
        "versions": {
            "agrnet": env["agrnet"], "torch": env["torch"], "torchvision": torchvision.__version__,
            "python": env["python"],
        },
        "machine": {
            **{key: env[key] for key in ("platform", "cpu_count", "device", "device_name")},
            "native_bf16": native_bf16(device),
        },
        "load_average_start": _load_average(),
        "protocol": {**PROTOCOL, **experiment.settings, **overrides},
        "precision": precision,
        "time_cap_minutes": args.time_cap_minutes,
        "reference": experiment.reference,
        "variants": {name: asdict(variant) for name, variant in experiment.variants.items()},
        "variants_requested": names,
        "seeds_planned": list(experiment.seeds),
        "seeds_requested": list(seeds),
    }  # fmt: skip
    results["history"] = [
        *previous.get("history", []),
        {key: results[key] for key in ("command", "git_commit", "date", "load_average_start")},
    ]
    elsewhere = recorded_elsewhere(out, args.experiment)
    tasks = []
    for seed in seeds:
        for name in names:
            variant = experiment.variants[name]
            settings = run_settings(experiment, variant, overrides, seed)
            if any(run["variant"] == name and run["settings"] == settings for run in runs):
                print(f"{args.experiment}: {name} seed {seed} is already in {out}, skipped", file=sys.stderr)
                continue
            record = shared_record(elsewhere, variant, settings, args.flip)
            if record is not None:
                print(f"{args.experiment}: {name} seed {seed} is {record['shared_from']}, reused", file=sys.stderr)
                runs.append({"variant": name, "seed": seed, **record, "settings": settings})
                continue
            config = preset_config("fasseg", **settings, data_root=str(args.data_root), resume="auto")
            folder = run_folder(args.runs_dir, name, settings)
            if args.fresh and folder.exists():
                shutil.rmtree(folder)
            config.out = str(folder)
            tasks.append((name, seed, settings, config, variant.evaluations))
    order = {(name, seed): index for index, (name, seed, *_) in enumerate(tasks)}
    with run_pool(args.jobs) as pool:
        futures = {
            pool.submit(train_and_score, config, evaluations, args.data_root, args.flip): (name, seed, settings)
            for name, seed, settings, config, evaluations in tasks
        }
        try:
            for future in as_completed(futures):
                name, seed, settings = futures[future]
                record = future.result()
                runs.append({"variant": name, "seed": seed, "settings": settings, **record,
                             "metrics": record.pop("metrics")})  # fmt: skip
                runs.sort(key=lambda run: order.get((run["variant"], run["seed"]), -1))
                _record(results, runs, experiment, wall, cpu, out)
        except BaseException:
            for future in futures:
                future.cancel()  # the runs already training finish (and are lost); none starts
            raise
    _record(results, runs, experiment, wall, cpu, out)
    return results


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
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/experiments"), help="where run folders go")
    parser.add_argument("--flip", action="store_true", help="also score with flip test-time augmentation")
    parser.add_argument(
        "--fresh", action="store_true", help="train every run again (deleting its run folder) and replace the results "
        "file (default: keep the runs the file holds with the same settings, continue unfinished ones from their "
        "last.pt and add the missing ones)",
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
