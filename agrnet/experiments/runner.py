"""Running an experiment: the trainings it still needs (their settings and run folders, and the runs that another
experiment's results file already holds), the one precision they all train in, and the trainings themselves in a
pool of worker processes, the results file rewritten after each."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from agrnet.checkpoint import load_model
from agrnet.config import TrainConfig, parse_overrides, preset_config
from agrnet.experiments.results import cpu_time, new_results, update_results
from agrnet.experiments.spec import (
    DEFAULT_ROOT,
    DEFAULT_RUNS_DIR,
    EXPERIMENTS,
    PROTOCOL,
    Evaluation,
    Experiment,
    Variant,
)
from agrnet.experiments.worker import run_pool, score, train_and_score
from agrnet.model import Ensemble
from agrnet.training import choose_run_precision


def run_folder(parent: Path, variant: str, settings: Mapping[str, Any]) -> Path:
    """The run folder of one training: ``<variant>-seed<seed>-<hash of its settings>`` under ``parent``, the same
    for the same training whenever and in whichever experiment it runs: an experiment that was killed continues
    each unfinished training from its ``last.pt`` (``resume="auto"``), and two experiments that share a training
    (the full model of the ablation and of the authors' variants) train it once."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    name = re.sub(r"[^\w+-]+", "_", variant)
    return parent / f"{name}-seed{settings['seed']}-{digest}"


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
    as (file name, run with concrete settings)."""
    found = []
    for other, experiment in EXPERIMENTS.items():
        path = out.parent / Path(experiment.out).name
        if other == name or not path.is_file():
            continue
        results = json.loads(path.read_text())
        for run in results.get("runs", []):
            if results.get("experiment") == other and run["variant"] in experiment.variants:
                found.append((path.name, {**run, "settings": concrete_settings(run)}))
    return found


def shared_record(
    elsewhere: Sequence[tuple[str, Mapping[str, Any]]], variant: Variant, settings: Mapping[str, Any], flip: bool
) -> dict[str, Any] | None:
    """The record of a run in ``elsewhere`` (``recorded_elsewhere``) that is this training, scored on at least the
    evaluations of ``variant`` (with flip TTA as asked): without its variant and seed, its metrics only those
    evaluations, and with ``shared_from`` naming it."""
    splits = {e.key for e in variant.evaluations} | {e.flip_key for e in variant.evaluations if flip}
    for source, run in elsewhere:
        if splits <= set(run["metrics"]) and same_training(run["settings"], settings):
            record = {key: value for key, value in run.items() if key not in ("variant", "seed")}
            metrics = {key: report for key, report in run["metrics"].items() if key in splits}
            return {**record, "metrics": metrics, "shared_from": f"{source}: {run['variant']} seed {run['seed']}"}
    return None


def experiment_precision(
    experiment: Experiment, overrides: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], jobs: int = 1
) -> dict[str, Any]:
    """``amp`` and ``channels_last`` of every run of ``experiment``, fixed once so that the variants of a seed
    differ only in their own settings on whichever machine each trains: as set (``--set``); else as the first run
    the results file holds was trained; else what the probe picks on this machine for the full model on the
    experiment's protocol (``agrnet.training.choose_run_precision``), probed in a process of its own with the threads
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


@dataclass(frozen=True)
class Training:
    """One training an experiment still needs: its variant, seed, settings, ``TrainConfig`` and evaluations."""

    variant: str
    seed: int
    settings: dict[str, Any]
    config: TrainConfig
    evaluations: tuple[Evaluation, ...]


def checked_overrides(
    name: str,
    variants: Sequence[str],
    seeds: Sequence[int],
    overrides: Iterable[str],
    time_cap_minutes: float | None,
    jobs: int,
    data_root: Path,
) -> dict[str, Any]:
    """The settings that ``run_experiment``'s arguments put on top of every run of experiment ``name`` (the
    ``KEY=VALUE`` ``overrides`` and the time cap), once the arguments and every run's configuration are checked,
    before the first training starts; ValueError or FileNotFoundError naming the option at fault."""
    experiment = EXPERIMENTS[name]
    unknown = sorted(set(variants) - set(experiment.variants))
    if unknown:
        raise ValueError(f"--variants: unknown {unknown} for {name}; choose from {list(experiment.variants)}")
    if jobs < 1:
        raise ValueError(f"--jobs: expected a positive number of trainings at once, got {jobs}")
    if time_cap_minutes is not None and not time_cap_minutes > 0:
        raise ValueError(f"--time-cap-minutes: expected a positive number, got {time_cap_minutes}")
    if not data_root.is_dir():
        raise FileNotFoundError(f"{data_root}: FASSEG folder not found (pass --data-root)")
    settings = parse_overrides(overrides)
    if time_cap_minutes is not None:
        settings["time_cap_s"] = 60 * time_cap_minutes
    for seed in seeds:  # every configuration is checked before the first training starts
        for variant in variants:
            preset_config("fasseg", **run_settings(experiment, experiment.variants[variant], settings, seed))
    return settings


def missing_evaluations(
    variant: Variant, metrics: Mapping[str, Any], flip: bool
) -> list[tuple[Evaluation, str, bool]]:
    """The evaluations of ``variant`` (with flip TTA too when ``flip``) that ``metrics`` lacks, as (evaluation, its
    key in ``metrics``, whether with flip)."""
    return [(evaluation, key, with_flip) for evaluation in variant.evaluations
            for key, with_flip in ((evaluation.key, False), (evaluation.flip_key, True))
            if key not in metrics and (flip or not with_flip)]  # fmt: skip


def score_missing(run: dict[str, Any], variant: Variant, folder: Path, data_root: Path, flip: bool) -> list[str]:
    """Score a recorded ``run`` on the evaluations of ``variant`` its ``metrics`` lack (evaluations added to the
    experiment after it ran), from the last checkpoint in its run ``folder``, and add them to ``metrics``; the keys
    scored. A run whose checkpoint is gone keeps its metrics, and stderr says what it lacks."""
    wanted = missing_evaluations(variant, run["metrics"], flip)
    keys = [key for _, key, _ in wanted]
    checkpoint = folder / "last.pt"
    if not wanted:
        return []
    if not checkpoint.is_file():
        print(f"{run['variant']} seed {run['seed']}: lacks {keys}; {checkpoint} is gone, not scored", file=sys.stderr)
        return []
    model, _, _ = load_model(checkpoint, map_location="cpu")
    for evaluation, key, with_flip in wanted:
        run["metrics"][key] = score(model, data_root, evaluation, run["settings"]["size"], with_flip)
    print(f"{run['variant']} seed {run['seed']}: scored {keys} from {checkpoint}", file=sys.stderr)
    return keys


def plan_trainings(
    name: str,
    variants: Sequence[str],
    seeds: Sequence[int],
    overrides: Mapping[str, Any],
    runs: list[dict[str, Any]],
    out: Path,
    *,
    data_root: Path,
    runs_dir: Path,
    flip: bool,
    fresh: bool,
) -> list[Training]:
    """The trainings of experiment ``name`` that neither ``runs`` (the results file's, with the same settings) nor
    another experiment's results file beside ``out`` (``shared_record``; added to ``runs``) holds, seed by seed.
    With ``fresh``, their run folders are deleted first."""
    experiment = EXPERIMENTS[name]
    elsewhere = recorded_elsewhere(out, name)
    trainings = []
    for seed in seeds:
        for variant_name in variants:
            variant = experiment.variants[variant_name]
            settings = run_settings(experiment, variant, overrides, seed)
            recorded = next((r for r in runs if r["variant"] == variant_name and r["settings"] == settings), None)
            if recorded is not None:
                print(f"{name}: {variant_name} seed {seed} is already in {out}, skipped", file=sys.stderr)
                score_missing(recorded, variant, run_folder(runs_dir, variant_name, settings), data_root, flip)
                continue
            record = shared_record(elsewhere, variant, settings, flip)
            if record is not None:
                print(f"{name}: {variant_name} seed {seed} is {record['shared_from']}, reused", file=sys.stderr)
                runs.append({"variant": variant_name, "seed": seed, **record, "settings": settings})
                continue
            config = preset_config("fasseg", **settings, data_root=str(data_root), resume="auto")
            folder = run_folder(runs_dir, variant_name, settings)
            if fresh and folder.exists():
                shutil.rmtree(folder)
            config.out = str(folder)
            trainings.append(Training(variant_name, seed, settings, config, variant.evaluations))
    return trainings


def train_all(
    trainings: Sequence[Training],
    runs: list[dict[str, Any]],
    jobs: int,
    data_root: Path,
    flip: bool,
    finished: Callable[[], None],
) -> None:
    """Train and score ``trainings``, ``jobs`` at once, each in a process of its own (``train_and_score``); add
    each one's record to ``runs`` as it ends, keep ``runs`` in the planned order, and call ``finished``. When one
    fails or the experiment is interrupted, no further training starts (those already training finish, and are
    lost)."""
    order = {(training.variant, training.seed): index for index, training in enumerate(trainings)}
    with run_pool(jobs) as pool:
        futures = {
            pool.submit(train_and_score, training.config, training.evaluations, data_root, flip): training
            for training in trainings
        }
        try:
            for future in as_completed(futures):
                training = futures[future]
                record = future.result()
                runs.append({"variant": training.variant, "seed": training.seed, "settings": training.settings,
                             **record, "metrics": record.pop("metrics")})  # fmt: skip
                runs.sort(key=lambda run: order.get((run["variant"], run["seed"]), -1))
                finished()
        except BaseException:
            for future in futures:
                future.cancel()  # the runs already training finish (and are lost); none starts
            raise


def score_ensembles(
    ensembles: dict[str, Any],
    runs: Sequence[Mapping[str, Any]],
    variants: Mapping[str, Variant],
    data_root: Path,
    flip: bool,
) -> None:
    """Score the runs of each of ``variants`` (two or more seeds) as one ``agrnet.model.Ensemble`` on the variant's
    evaluations (and with flip TTA when ``flip``), from each run's ``last.pt``, into ``ensembles[variant]``: its
    ``seeds``, ``run_dirs`` and ``metrics``. An ensemble of the same seeds keeps what it has been scored on."""
    for name, variant in variants.items():
        members = sorted((run for run in runs if run["variant"] == name), key=lambda run: run["seed"])
        if len(members) < 2:
            continue
        seeds = [run["seed"] for run in members]
        entry = ensembles.get(name, {})
        metrics = entry.get("metrics", {}) if entry.get("seeds") == seeds else {}
        wanted = missing_evaluations(variant, metrics, flip)
        if not wanted:
            continue
        model = Ensemble([load_model(Path(run["run_dir"]) / "last.pt")[0] for run in members]).eval()
        for evaluation, key, with_flip in wanted:
            metrics[key] = score(model, data_root, evaluation, members[0]["settings"]["size"], with_flip)
        ensembles[name] = {"seeds": seeds, "run_dirs": [run["run_dir"] for run in members], "metrics": metrics}
        print(f"{name}: seeds {seeds} scored as an ensemble on {[key for _, key, _ in wanted]}", file=sys.stderr)


def run_experiment(
    name: str,
    data_root: Path = DEFAULT_ROOT,
    *,
    seeds: Sequence[int] | None = None,
    variants: Sequence[str] | None = None,
    overrides: Iterable[str] = (),
    time_cap_minutes: float | None = None,
    jobs: int = 1,
    out: Path | None = None,
    runs_dir: Path = DEFAULT_RUNS_DIR,
    flip: bool = False,
    fresh: bool = False,
    ensemble: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Train and score every (seed, variant) of experiment ``name`` not yet in the results file; returns the
    results, which are also written to ``out`` after each run.

    Args:
        name: the experiment, a key of ``EXPERIMENTS``.
        data_root: the FASSEG folder.
        seeds: the seeds to train (default: the experiment's).
        variants: the variants to train (default: every variant of the experiment).
        overrides: ``KEY=VALUE`` settings of every run, on top of the protocol (``agrnet.config.parse_overrides``).
        time_cap_minutes: stop any training that runs longer than this (a safety cap; a run is defined by its steps).
        jobs: trainings at once, each in a process of its own sharing the CPU's cores.
        out: the results file (default: the experiment's, under ``book/results``).
        runs_dir: where the run folders go (``run_folder``).
        flip: also score with flip test-time augmentation.
        fresh: train every run again (deleting its run folder) and replace the results file; by default the runs
            the file holds with the same settings are kept and unfinished ones continue from their ``last.pt``.
        ensemble: also score the seeds of each variant run as one ensemble (``score_ensembles``), under
            ``ensembles``.
        command: the command line the results file records (``agrnet experiment`` gives its own).
    """
    experiment = EXPERIMENTS[name]
    seeds = tuple(seeds) if seeds is not None else experiment.seeds
    names = list(variants or experiment.variants)
    run_overrides = checked_overrides(name, names, seeds, overrides, time_cap_minutes, jobs, data_root)
    out = Path(out or experiment.out)
    previous = json.loads(out.read_text()) if out.is_file() and not fresh else {}
    runs: list[dict[str, Any]] = [
        {**run, "settings": concrete_settings(run)}
        for run in previous.get("runs", [])
        if previous.get("experiment") == name
    ]
    precision = experiment_precision(experiment, run_overrides, runs, jobs)
    run_overrides.update(amp=precision["amp"], channels_last=precision["channels_last"])
    wall, cpu = time.perf_counter(), cpu_time()
    results = new_results(
        name, command, run_overrides, precision, time_cap_minutes, names, seeds, previous.get("history", [])
    )
    trainings = plan_trainings(
        name, names, seeds, run_overrides, runs, out, data_root=data_root, runs_dir=runs_dir, flip=flip, fresh=fresh
    )
    results["ensembles"] = previous.get("ensembles", {})
    train_all(trainings, runs, jobs, data_root, flip, lambda: update_results(results, runs, experiment, wall, cpu, out))
    if ensemble:
        chosen = {variant: experiment.variants[variant] for variant in names}
        score_ensembles(results["ensembles"], [run for run in runs if run["seed"] in seeds], chosen, data_root, flip)
    update_results(results, runs, experiment, wall, cpu, out)
    return results
