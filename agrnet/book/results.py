"""The book's results as it states them: the table and verdict of the landing page (``results_at_a_glance``), every
experiment with its command and status (``experiments_table``), the command a reader runs to make a results file
(``portable_command``), and what the real-faces chapter says of the main result, the shipped weights and the domain
gap."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from agrnet.book.chapter import FASSEG_WEIGHTS, installed_weights
from agrnet.data.fasseg import Fasseg
from agrnet.paper import PAPER_FULL_OVER_BASELINE, PAPER_MEAN_F1, PAPER_TABLE_IV
from agrnet.predict import DEFAULT_WEIGHTS

VERDICT_WORDS = {"helps": "is above", "hurts": "is below", "cannot be told apart": "cannot be told apart from"}


def _difference(results: dict[str, Any] | None, variant: str, reference: str) -> dict[str, Any] | None:
    from agrnet.experiments import paired

    if results is None:
        return None
    return paired(results["runs"], reference).get(variant, {}).get("test")


def _regime_sentences(
    ablation: Mapping[str, Any] | None, pretrained: Mapping[str, Any] | None, long: Mapping[str, Any] | None
) -> list[str]:
    """The verdict of full AGRNet against the paper's baseline in each regime closer to the paper that has an
    interval: from a pretrained backbone, and on the main protocol."""
    from agrnet.experiments import interval_text
    from agrnet.stats import verdict

    sentences = []
    regimes = [(pretrained, "From a backbone pretrained on the synthetic faces it still")]
    if long is not None and ablation is not None:
        steps, size = ablation["protocol"]["steps"], ablation["protocol"]["size"]
        regimes.append((long, f"Trained {long['protocol']['steps']} steps at {long['protocol']['size']} px instead "
                              f"of {steps} at {size}, it"))  # fmt: skip
    for results, opening in regimes:
        difference = _difference(results, "full", "paper-baseline")
        if difference is not None and difference["low"] is not None:
            reads = verdict(difference["low"], difference["high"])
            sentences.append(f"{opening} {VERDICT_WORDS[reads]} that baseline ({interval_text(difference)}).")
    return sentences


def results_at_a_glance(folder: str | os.PathLike[str]) -> str:
    """The book's results in one Markdown table (what was run, our number with its 95 % interval, the paper's,
    the chapter that shows it) and two sentences of verdict, read from the results files in ``folder`` and the
    shipped weights' metadata; what is not in them yet is left out."""
    from agrnet.experiments import interval_text, load_results
    from agrnet.stats import verdict

    folder = Path(folder)
    main, ablation, topk, pretrained, long, authors = (
        load_results(folder, name)
        for name in ("fasseg-main", "fasseg-ablation", "fasseg-topk", "fasseg-pretrained", "fasseg-long",
                     "fasseg-authors")
    )  # fmt: skip
    rows = []
    if main is not None:
        f1 = main["summary"]["full"]["test"]["mean_f1"]
        rows.append(f"| AGRNet from scratch on 202 FASSEG faces (ResNet-18, 256 px, 800 steps), {f1['n']} seeds, "
                    f"frontal02 test | {100 * f1['mean']:.1f} ± {100 * f1['std']:.1f} | {PAPER_MEAN_F1['full']} "
                    "(ResNet-101 from ImageNet, LaPa) | {doc}`real_faces` |")  # fmt: skip
    entries = installed_weights(None)
    if FASSEG_WEIGHTS in entries:
        scores = {score["split"]: score["mean_f1"] for score in entries[FASSEG_WEIGHTS].scores()}
        if {"test", "test-unseen"} <= set(scores):
            rows.append(f"| the shipped `{FASSEG_WEIGHTS}` on frontal02 test / on its faces not in train | "
                        f"{100 * scores['test']:.1f} / {100 * scores['test-unseen']:.1f} | – | {{doc}}`real_faces` |")
    photo_scores = entries[DEFAULT_WEIGHTS].scores() if DEFAULT_WEIGHTS in entries else []
    score = next((score for score in photo_scores if score["dataset"] == "celebamask-hq"), None)
    if score is not None:
        paper = PAPER_TABLE_IV[("CelebAMask-HQ", "Helen-Test")]["overall"]
        rows.append(f"| the shipped photo model `{DEFAULT_WEIGHTS}` (FASSEG only) on {score['num_images']} "
                    "CelebAMask-HQ test faces read as FASSEG, through the photo pipeline | "
                    f"{100 * score['mean_f1']:.1f} | {paper} "
                    "(Table IV: CelebAMask-HQ to Helen) | {doc}`faces_elsewhere` |")  # fmt: skip
    contrasts = (
        ("full AGRNet minus the paper's baseline (cross-entropy only), paired", "full", "paper-baseline",
         PAPER_FULL_OVER_BASELINE, ablation, "ablations"),
        ("full AGRNet minus a baseline trained with L_BA too, paired", "full", "baseline", None, ablation,
         "ablations"),
        ("the edge module (Eq. 2): +edge minus +adaptive projection, paired", "+edge", "+adaptive projection",
         PAPER_MEAN_F1["+edge"] - PAPER_MEAN_F1["+adaptive projection"], ablation, "ablations"),
        ("1 vertex per class instead of 4, paired", "top-1", "top-4",
         PAPER_MEAN_F1["top-1"] - PAPER_MEAN_F1["top-4"], topk, "ablations"),
        ("full AGRNet minus the paper's baseline, both from a backbone pretrained on the synthetic faces, paired",
         "full", "paper-baseline", PAPER_FULL_OVER_BASELINE, pretrained, "ablations"),
        ("full AGRNet minus the paper's baseline on the main protocol, paired", "full", "paper-baseline",
         PAPER_FULL_OVER_BASELINE, long, "ablations"),
        ("the authors' code's three departures from the paper together (P gated by E, E detached, their loss "
         "weights) minus the paper's form, paired", "all three", "full", None, authors, "real_faces"),
    )  # fmt: skip
    read: dict[str, str] = {}
    for text, variant, reference, paper, results, chapter in contrasts:
        difference = _difference(results, variant, reference)
        if difference is None or difference["low"] is None:
            continue
        reads = verdict(difference["low"], difference["high"])
        read.setdefault(variant + "/" + reference, reads)
        setting = results["protocol"]
        protocol = f"{difference['n']} seeds, {setting['steps']} steps at {setting['size']} px"
        printed = "–" if paper is None else f"{paper:+.1f}"
        rows.append(f"| {text} ({protocol}) | {interval_text(difference)}: {reads} | {printed} | "
                    f"{{doc}}`{chapter}` |")  # fmt: skip
    if not rows:
        return "No results files yet: `agrnet experiment fasseg-main` makes the first."
    table = "| what was run | ours, FASSEG: mean F1 (%) or difference (points) | the paper, LaPa | shown in |\n"
    table += "|---|---|---|---|\n" + "\n".join(rows)
    sentences = []
    if "full/paper-baseline" in read:
        difference = _difference(ablation, "full", "paper-baseline")
        sentences.append(
            f"**Verdict.** At the scale run here (a ResNet-18 trained from scratch on 202 real faces), the full AGRNet "
            f"{VERDICT_WORDS[read['full/paper-baseline']]} the paper's baseline ({interval_text(difference)} "
            f"points, where Table I(a) has {PAPER_FULL_OVER_BASELINE:+.1f}): the paper's central claim is "
            + ("reproduced here." if read["full/paper-baseline"] == "helps" else "not reproduced at this scale.")
        )
    if sentences:
        sentences += _regime_sentences(ablation, pretrained, long)
    if "+edge/+adaptive projection" in read:
        edge = _difference(ablation, "+edge", "+adaptive projection")
        phrase = {"helps": "helps", "hurts": "hurts"}.get(read["+edge/+adaptive projection"], "cannot be told apart")
        sentences.append(
            f"Of its parts, the edge module {phrase} ({interval_text(edge)}); whether ImageNet weights, 473 px and "
            "LaPa's 18,176 faces bring the graph's gain back is what the paper's own setting tests "
            "({doc}`reproducing`)."
        )
    return table + ("\n\n" + " ".join(sentences) if sentences else "")


DROPPED_OPTIONS = ("--data-root", "--runs-dir", "--out", "--jobs", "--variants", "--seeds")
"""Options of a recorded ``agrnet experiment`` command that a reader leaves out to make or continue the whole file:
folders of the machine that ran it, how many trainings ran at once, and the part of the plan one invocation did."""


def portable_command(command: str) -> str:
    """A recorded ``agrnet experiment`` command without ``DROPPED_OPTIONS`` (each with all its values): what a
    reader runs from the repository root, with FASSEG in ``data/fasseg``, to make or continue the whole file."""
    kept: list[str] = []
    dropping = False
    for word in shlex.split(command):
        if word.startswith("--"):
            dropping = word.split("=")[0] in DROPPED_OPTIONS
        if not dropping:
            kept.append(word)
    return shlex.join(kept)


def experiments_table(folder: str | os.PathLike[str]) -> str:
    """Every experiment of ``agrnet.experiments.EXPERIMENTS`` as a Markdown table: the command that makes (or
    continues) it, its variants, seeds and steps, and what its results file holds ("not yet run" when there is
    none): the one place where the book names what has not been run. (Experiment NAME's file is
    ``book/results/NAME.json`` with underscores for hyphens, ``Experiment.out``.)"""
    from agrnet.experiments import EXPERIMENTS, PROTOCOL, load_results, progress

    rows = []
    for name, experiment in EXPERIMENTS.items():
        results = load_results(Path(folder), name)
        command = portable_command(results["command"]) if results else shlex.join(["agrnet", "experiment", name])
        steps = {**PROTOCOL, **experiment.settings}["steps"]
        rows.append(f"| `{command}` | {len(experiment.variants)} | {list(experiment.seeds)} | {steps} | "
                    f"{progress(results)} |")  # fmt: skip
    header = "| command | variants | seeds | steps | status |\n|---|---|---|---|---|\n"
    return header + "\n".join(rows)


def experiment_results(folder: str | os.PathLike[str], regenerate: bool = False) -> dict[str, dict[str, Any] | None]:
    """Every experiment's results file in ``folder`` by name (None where there is none, ``load_results``); with
    ``regenerate``, each experiment is first run or continued (``agrnet experiment NAME`` from the repository root,
    the parent of a chapter's folder)."""
    from agrnet.experiments import EXPERIMENTS, load_results

    if regenerate:
        for name in EXPERIMENTS:
            subprocess.run([sys.executable, "-m", "agrnet", "experiment", name], cwd=Path.cwd().parent, check=True)
    return {name: load_results(Path(folder), name) for name in EXPERIMENTS}


def protocol_text() -> str:
    """The experiments' step protocol in one Markdown sentence (``agrnet.experiments.PROTOCOL``)."""
    from agrnet.experiments import PROTOCOL

    return "The protocol (`agrnet.experiments.PROTOCOL`, on top of the `fasseg` preset): " + ", ".join(
        f"`{key}={value!r}`" for key, value in PROTOCOL.items()
    )


def machine_line(results: Mapping[str, Any]) -> str:
    """The machine, torch version, commit and date a results file was made on, in one line."""
    machine = results["machine"]
    return (
        f"{machine['device_name']} × {machine['cpu_count']} (native bf16: "
        f"{machine['native_bf16']}), torch {results['versions']['torch']}, "
        f"commit {results['git_commit'][:10]}, {results['date']}"
    )


def main_result_notes(results: Mapping[str, Any], target: float) -> str:
    """What the main result's file says besides its table, one line each: the mean F1 of each split against
    ``target`` (in %), the precision and why, the hours of training and where, and the command."""
    lines = []
    for split, entry in results["summary"]["full"].items():
        f1 = entry["mean_f1"]
        spread = f" ± {100 * f1['std']:.1f}" if f1["std"] is not None else ""
        gap = 100 * f1["mean"] - target
        lines.append(f"{split}: mean F1 {100 * f1['mean']:.1f}{spread} over {f1['n']} seed(s), "
                     f"{gap:+.1f} from the target {target}")  # fmt: skip
    runs = results["runs"]
    precisions = {run["precision"]["name"] for run in runs}
    lines.append(f"precision: {', '.join(sorted(precisions))}; {runs[0]['precision']['reason'].split(' (probed')[0]}")
    hours = sum(run["steps"] * run["seconds_per_step"] for run in runs) / 3600
    lines.append(f"{hours:.1f} h of training (steps x seconds per step) for {len(runs)} trainings on "
                 f"{machine_line(results)}; trainings run side by side share the cores")  # fmt: skip
    lines.append(f"command: {portable_command(results['command'])}")
    return "\n".join(lines)


def example_predictions(
    name: str, data_root: str | os.PathLike[str] | None, count: int
) -> tuple[str, list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """The shipped weights ``name`` on the first ``count`` FASSEG frontal02 test faces at ``data_root``: one line
    saying what is shown (or what is missing) and the rows of ``agrnet.viz.predictions_figure`` (title, photograph,
    ground truth, prediction), none when the weights or the faces are not here."""
    from agrnet.predict import Predictor

    entries = installed_weights(None)
    if name not in entries or data_root is None:
        missing = [] if name in entries else [f"the weights {name!r}"]
        missing += [] if data_root is not None else ["FASSEG"]
        return f"No example predictions: {' and '.join(missing)} not found here.", []
    entry = entries[name]
    predictor = Predictor.from_weights(name, device="cpu")
    test = Fasseg(data_root, "test")
    rows = [(f"face {sample['name']}", sample["image"], sample["label"], predictor(sample["image"]))
            for sample in (test[i] for i in range(min(count, len(test))))]  # fmt: skip
    score = entry.metrics
    line = (f"{entry.name}: mean F1 {100 * score['mean_f1']:.1f} on {score['dataset']} {score['split']}; FASSEG "
            "frontal02 test faces " + ", ".join(title.split()[-1] for title, *_ in rows))  # fmt: skip
    return line, rows


def baseline_and_agrnet(
    baseline: str, agrnet: str, data_root: str | os.PathLike[str] | None, count: int, split: str = "test-unseen"
) -> tuple[str, list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """The paper's Fig. 5 on FASSEG: the shipped weights ``baseline`` and ``agrnet`` on every face of ``split``,
    and the faces a rule picks (``agrnet.analysis.largest_changes``): the ``count`` where AGRNet gains most over
    the baseline and the ``count`` where it loses most, by each face's mean F1. One line saying what is shown (or
    what is missing) and the rows of ``agrnet.viz.baseline_and_agrnet_figure``, none when the weights or the faces
    are not here."""
    from agrnet.analysis import image_scores, largest_changes
    from agrnet.predict import Predictor

    entries = installed_weights(None)
    missing = [f"the weights {name!r}" for name in (baseline, agrnet) if name not in entries]
    missing += [] if data_root is not None else ["FASSEG"]
    if missing:
        return f"No comparison: {' and '.join(missing)} not found here.", []
    faces = Fasseg(data_root, split)
    samples = [faces[i] for i in range(len(faces))]
    labels = [sample["label"] for sample in samples]
    predictions = {
        name: [Predictor.from_weights(name, device="cpu")(sample["image"]) for sample in samples]
        for name in (baseline, agrnet)
    }
    before, after = (image_scores(predictions[name], labels, faces.schema) for name in (baseline, agrnet))
    gains, losses = largest_changes(before, after, count)
    rows = [
        (f"face {samples[i]['name']}, {100 * (after[i] - before[i]):+.1f}", samples[i]["image"], labels[i],
         predictions[baseline][i], predictions[agrnet][i])
        for i in gains + losses
    ]  # fmt: skip
    better = int((after > before).sum())
    line = (
        f"{baseline} against {agrnet} on the {len(samples)} faces of FASSEG {split}: AGRNet scores higher on "
        f"{better} faces, lower on {int((after < before).sum())}; the mean of the per-face mean F1 is "
        f"{100 * before.mean():.1f} against {100 * after.mean():.1f}. Shown: the {count} largest gains, then the "
        f"{count} largest losses."
    )
    return line, rows


def domain_gap_scores(results: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """The domain-gap experiment in lines, each with the Markdown table of its scores per head yaw where it has them
    (``agrnet.experiments.yaw_table``): one line per run and split scored, then the command."""
    from agrnet.experiments.tables import percent, yaw_table

    lines: list[tuple[str, str | None]] = []
    for run in results["runs"]:
        for split, report in run["metrics"].items():
            line = (f"{run['variant']}, seed {run['seed']}, scored on {split}: mean F1 {percent(report['mean_f1'])} "
                    f"({run['steps']} steps)")  # fmt: skip
            lines.append((line, yaw_table(report) if "by_yaw" in report else None))
    lines.append((f"command: {portable_command(results['command'])}", None))
    return lines
