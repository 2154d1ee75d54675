"""An experiment's results file: what it records (every run, the summary over seeds, the paired differences to the
reference, times and load), how it is read back, and how far it has come, in words."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torchvision

from agrnet.experiments.spec import EXPERIMENTS, PROTOCOL, Experiment
from agrnet.files import write_json
from agrnet.provenance import environment
from agrnet.runtime import native_bf16
from agrnet.stats import paired_difference

SUMMARY_METRICS = ("mean_f1", "miou", "pixel_accuracy", "mean_accuracy")


def cpu_time() -> float:
    """CPU seconds, user and system, of this process and of its children that have ended (the trainings)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def load_average() -> list[float] | None:
    """The system's load averages over 1, 5 and 15 minutes, None where the platform has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


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


def load_results(folder: Path, name: str) -> dict[str, Any] | None:
    """Experiment ``name``'s results file in ``folder`` (under its default file name); None when there is none or
    it is one of an older protocol (no ``protocol`` entry)."""
    path = folder / Path(EXPERIMENTS[name].out).name
    results = json.loads(path.read_text()) if path.is_file() else None
    return results if results is not None and "protocol" in results else None


def seed_reports(results: Mapping[str, Any], split: str = "test") -> dict[str, Mapping[str, Any]]:
    """Each run's report on ``split``, by "seed N" (for ``agrnet.viz.f1_runs_figure``)."""
    return {f"seed {run['seed']}": run["metrics"][split] for run in results["runs"]}


def progress(results: Mapping[str, Any] | None) -> str:
    """What a results file holds, in words: "not yet run" (no file, or one of an older protocol), else complete or
    partial, its trainings, the seeds that every variant has and, while partial, the variants with every planned
    seed."""
    if results is None or "protocol" not in results:
        return "not yet run"
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


def new_results(
    name: str,
    command: str | None,
    overrides: Mapping[str, Any],
    precision: Mapping[str, Any],
    time_cap_minutes: float | None,
    variants: Sequence[str],
    seeds: Sequence[int],
    history: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The results of an invocation of experiment ``name`` before any run is added (``update_results``): the
    command, git commit, date, versions, machine, load average, protocol (``overrides`` on top), precision, the
    variants and seeds planned and requested, and the ``history`` of earlier invocations with this one's entry."""
    experiment = EXPERIMENTS[name]
    started = datetime.now(UTC)
    device = torch.device("cpu")
    env = environment(device)
    results: dict[str, Any] = {
        "experiment": name,
        "command": command,
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
        "load_average_start": load_average(),
        "protocol": {**PROTOCOL, **experiment.settings, **overrides},
        "precision": dict(precision),
        "time_cap_minutes": time_cap_minutes,
        "reference": experiment.reference,
        "variants": {key: asdict(variant) for key, variant in experiment.variants.items()},
        "variants_requested": list(variants),
        "seeds_planned": list(experiment.seeds),
        "seeds_requested": list(seeds),
    }  # fmt: skip
    results["history"] = [
        *history,
        {key: results[key] for key in ("command", "git_commit", "date", "load_average_start")},
    ]
    return results


def update_results(
    results: dict[str, Any], runs: list[dict[str, Any]], experiment: Experiment, wall: float, cpu: float, out: Path
) -> None:
    """Bring ``results`` up to date with ``runs`` (seeds done, summary, paired differences, times, load) and write
    it to ``out``.

    Wall and CPU time are this invocation's in the last ``history`` entry; the top-level ones sum all invocations.
    CPU time counts the trainings' processes once they have ended (``cpu_time``); each run records its own.
    """
    trained = {(run["variant"], run["seed"]) for run in runs}
    done = sorted(s for s in {run["seed"] for run in runs} if all((n, s) in trained for n in experiment.variants))
    history = results["history"]
    history[-1] |= {
        "load_average_end": load_average(), "wall_time_s": time.perf_counter() - wall,
        "cpu_time_s": cpu_time() - cpu,
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
