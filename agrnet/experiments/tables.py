"""An experiment's results as the book's Markdown tables: each variant beside the reference and the paper, what each
part of the ablation adds, the difference class by class, every run's scores, the training curves' ends, the runs
of one protocol against another, and the scores per head yaw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agrnet.diagnostics import curve_summary
from agrnet.experiments.results import paired, progress
from agrnet.paper import PAPER_MEAN_F1
from agrnet.stats import paired_difference, verdict


def interval_text(difference: Mapping[str, Any]) -> str:
    """A paired difference in points of F1: its mean and, from two seeds on, its 95 % interval ("-1.3 [-2.0, -0.5]")."""
    text = f"{100 * difference['mean']:+.1f}"
    if difference["low"] is not None:
        text += f" [{100 * difference['low']:+.1f}, {100 * difference['high']:+.1f}]"
    return text


def paired_table(
    results: Mapping[str, Any], split: str = "test", paper: Mapping[str, float] = PAPER_MEAN_F1,
    reference: str | None = None,
) -> str:  # fmt: skip
    """A paired experiment's results as a Markdown table: per variant the seeds, mean F1 +- its sample standard
    deviation, the paired difference to ``reference`` (default: the experiment's) with its 95 % interval, what the
    interval reads (``agrnet.stats.verdict``), ``paper``'s number and, when ``paper`` has the reference, the paper's
    difference to it; variants with no run read "not yet run"."""
    if reference is None or reference == results["reference"]:
        reference, differences = results["reference"], results.get("paired", {})
    else:
        differences = paired(results["runs"], reference)
    lines = [
        f"| variant | seeds | mean F1 (%) | minus {reference}, 95 % interval | reads | paper (LaPa) "
        f"| paper minus {reference} |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in results["variants"]:
        entry = results["summary"].get(variant, {}).get(split)
        printed = paper.get(variant, "–")
        against = f"{paper[variant] - paper[reference]:+.1f}" if variant in paper and reference in paper else "–"
        if entry is None:
            lines.append(f"| {variant} | 0 | not yet run | | | {printed} | {against} |")
            continue
        f1 = entry["mean_f1"]
        spread = f" ± {100 * f1['std']:.1f}" if f1["std"] is not None else ""
        difference = differences.get(variant, {}).get(split)
        compared, reads = ("reference", "") if variant == reference else ("–", "")
        if difference is not None:
            compared, reads = interval_text(difference), verdict(difference["low"], difference["high"])
        lines.append(f"| {variant} | {f1['n']} | {100 * f1['mean']:.1f}{spread} | {compared} | {reads} | {printed} "
                     f"| {against} |")  # fmt: skip
    return "\n".join(lines)


PARTS: tuple[tuple[str, str, str], ...] = (
    ("L_BA on the baseline (our baseline minus the paper's)", "baseline", "paper-baseline"),
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
            lines.append(f"| {part} | not yet run | 0 | | {printed} |")
            continue
        reads = verdict(difference["low"], difference["high"])
        lines.append(f"| {part} | {interval_text(difference)} | {difference['n']} | {reads} | {printed} |")
    return "\n".join(lines)


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


def percent(value: float | None) -> str:
    """A fraction in percent with one decimal, "–" for None."""
    return "–" if value is None else f"{100 * value:.1f}"


def f1_cells(report: Mapping[str, Any], classes: Sequence[str]) -> str:
    """The Markdown cells of a report's F1 (%) for each of ``classes``, then its mean F1 in bold."""
    return " | ".join(percent(report["f1"][c]) for c in classes) + f" | **{percent(report['mean_f1'])}**"


def experiment_section(results: Mapping[str, Any], place: str | None = None) -> str:
    """A paired experiment under its name in bold, ``place`` (where it was scored, e.g. "frontal02 test") and what
    its file holds (``progress``): the heading and the ``paired_table``."""
    heading = ", ".join([f"**{results['experiment']}**", *([place] if place else []), progress(results)])
    return heading + "\n\n" + paired_table(results)


def split_section(results: Mapping[str, Any], split: str) -> str:
    """A paired experiment's ``paired_table`` on ``split``, under the split's name in bold."""
    return f"**{split}**\n\n" + paired_table(results, split=split)


def runs_table(results: Mapping[str, Any], classes: Sequence[str]) -> str:
    """Every run of an experiment on every split it was scored on: its seed, the F1 of each of ``classes``, mean F1
    (bold), mIoU, steps and seconds per step, as a Markdown table."""
    lines = [
        "| seed | split | " + " | ".join(classes) + " | mean F1 | mIoU | steps | s/step |",
        "|---" * (len(classes) + 6) + "|",
    ]
    for run in results["runs"]:
        for split, report in run["metrics"].items():
            lines.append(
                f"| {run['seed']} | {split} | {f1_cells(report, classes)} | {percent(report['miou'])} | "
                f"{run['steps']} | {run['seconds_per_step']:.2f} |"
            )
    return "\n".join(lines)


def verdict_lines(results: Mapping[str, Any], split: str = "test") -> str:
    """One line per variant with a paired difference to the reference on ``split``: what its interval reads
    (``agrnet.stats.verdict``) and the mean difference over the seeds."""
    lines = []
    for variant, splits in results.get("paired", {}).items():
        difference = splits.get(split)
        if difference is None:
            continue
        reads = verdict(difference["low"], difference["high"])
        lines.append(f"{variant}: {reads} ({100 * difference['mean']:+.1f} points of mean F1 against the "
                     f"{results['reference']} over seeds {difference['seeds']})")  # fmt: skip
    return "\n".join(lines)


def rule_line(results: Mapping[str, Any], variant: str, split: str) -> str:
    """The verdict of a keep-if-positive rule fixed before the runs: ``variant``'s mean paired difference to the
    reference on ``split`` over the seeds run, and whether that keeps it."""
    difference = results.get("paired", {}).get(variant, {}).get(split)
    if difference is None:
        return f"{variant}: no paired run on {split} yet."
    return f"{variant} minus {results['reference']} on {split}, {_keep(difference['mean'], difference['seeds'])}"


def sure_rule_line(
    results: Mapping[str, Any], variant: str, split: str, guard_split: str, tolerance: float = 0.003
) -> str:
    """The verdict of a keep-if-sure rule fixed before the runs: ``variant`` is kept when the 95 % interval of its
    paired difference to the reference on ``split`` lies above zero and its mean paired difference on
    ``guard_split`` is above ``-tolerance`` (F1 as a fraction: 0.003 is 0.3 points)."""
    paired = results.get("paired", {}).get(variant, {})
    difference, guard = paired.get(split), paired.get(guard_split)
    if difference is None or guard is None:
        return f"{variant}: no paired runs on {split} and {guard_split} yet."
    sure = difference["low"] is not None and difference["low"] > 0
    kept = "kept" if sure and guard["mean"] > -tolerance else "not kept"
    return (
        f"{variant} minus {results['reference']} over seeds {difference['seeds']}: {interval_text(difference)} "
        f"points on {split}, {interval_text(guard)} on {guard_split}, so by the rule (kept when the first interval "
        f"lies above zero and the second mean above {-100 * tolerance:+.1f}) it is {kept}."
    )


def flip_rule_line(results: Mapping[str, Any], variant: str, split: str) -> str:
    """The verdict of a keep-if-positive rule on flip test-time augmentation: over ``variant``'s runs, the mean
    paired difference of each run's score on ``split`` with flip (``Evaluation.flip_key``) and without it."""
    flipped = f"{split} (flip)"
    runs = [run for run in results["runs"] if run["variant"] == variant and {split, flipped} <= run["metrics"].keys()]
    if not runs:
        return f"{variant}: no run scored with and without flip on {split} yet."
    difference = paired_difference(
        [run["metrics"][flipped]["mean_f1"] for run in runs], [run["metrics"][split]["mean_f1"] for run in runs]
    )
    seeds = sorted(run["seed"] for run in runs)
    interval = interval_text(difference.to_dict())
    return f"{variant} with flip minus without on {split} ({interval}), {_keep(difference.mean, seeds)}"


def _ensemble_scores(results: Mapping[str, Any], variant: str, split: str) -> tuple[float, dict[int, float]] | None:
    """The mean F1 on ``split`` of the ensemble of ``variant``'s seeds (``score_ensembles``) and of each of its
    members, by seed; None when no ensemble was scored there."""
    ensemble = results.get("ensembles", {}).get(variant)
    if ensemble is None or split not in ensemble["metrics"]:
        return None
    members = {run["seed"]: run["metrics"][split]["mean_f1"] for run in results["runs"]
               if run["variant"] == variant and run["seed"] in ensemble["seeds"]}  # fmt: skip
    return ensemble["metrics"][split]["mean_f1"], members


def ensemble_line(results: Mapping[str, Any], variant: str, split: str) -> str:
    """How the ensemble of ``variant``'s seeds (``score_ensembles``) scores on ``split`` beside each of its members,
    and its margin over the best of them."""
    scores = _ensemble_scores(results, variant, split)
    if scores is None:
        return f"{variant}: no ensemble scored on {split} yet."
    value, members = scores
    each = ", ".join(f"seed {seed} {100 * members[seed]:.1f}" for seed in sorted(members))
    return (f"{variant}, ensemble of seeds {sorted(members)} on {split}: {100 * value:.1f} (members: {each}); "
            f"{100 * (value - max(members.values())):+.1f} points on the best member")  # fmt: skip


def ensemble_rule_line(results: Mapping[str, Any], variant: str, split: str) -> str:
    """The verdict of the rule on an ensemble (``ensemble_line``): kept when its mean F1 on ``split`` is above that
    of every one of its members, the runs of ``variant`` with its seeds."""
    scores = _ensemble_scores(results, variant, split)
    if scores is None:
        return ensemble_line(results, variant, split)
    value, members = scores
    kept = "kept" if value > max(members.values()) else "not kept"
    return f"{ensemble_line(results, variant, split)}, so by the rule (kept when above every member) it is {kept}."


def _keep(mean: float, seeds: Sequence[int]) -> str:
    """The end of a keep-if-positive rule's verdict: the mean difference over ``seeds`` and what it decides."""
    kept = "kept" if mean > 0 else "not kept"
    return (f"mean over seeds {list(seeds)}: {100 * mean:+.1f} points, so by the rule (kept when above zero) "
            f"it is {kept}.")


def rerun_table(
    first: Mapping[str, Any], again: Mapping[str, Any], splits: Sequence[str] = ("test", "test-unseen")
) -> str:
    """An experiment trained twice, ``again`` with the variants, seeds and settings of ``first`` on another machine:
    per variant, the CPUs ``first`` trained it on, its paired difference to the reference in ``first`` on test and
    in ``again`` on each of ``splits``, the seeds ``again`` holds, and how far its runs' test mean F1 moved between
    the two, seed by seed (largest change; "same runs" where ``again`` reused ``first``'s records)."""
    reference = first["reference"]
    lines = [
        f"| variant | first trained on | first: minus {reference}, test | "
        + " | ".join(f"again: minus {reference}, {split}" for split in splits)
        + " | seeds again | largest change of a run (test) |",
        "|---" * (len(splits) + 5) + "|",
    ]
    scores = {(run["variant"], run["seed"]): run for run in first["runs"]}
    for variant in again["variants"]:
        runs = [run for run in again["runs"] if run["variant"] == variant]
        if not runs:
            continue
        cells = [_difference(first, variant, "test")] + [_difference(again, variant, split) for split in splits]
        moved = [abs(run["metrics"]["test"]["mean_f1"] - scores[variant, run["seed"]]["metrics"]["test"]["mean_f1"])
                 for run in runs if (variant, run["seed"]) in scores and "shared_from" not in run]  # fmt: skip
        change = f"{100 * max(moved):.1f}" if moved else "same runs"
        devices = sorted({run.get("precision", {}).get("device", "?")
                          for run in first["runs"] if run["variant"] == variant})  # fmt: skip
        lines.append(f"| {variant} | {', '.join(devices)} | " + " | ".join(cells) + f" | {len(runs)} | {change} |")
    return "\n".join(lines)


def _difference(results: Mapping[str, Any], variant: str, split: str) -> str:
    """``variant``'s paired difference to the reference on ``split`` (``interval_text``), "reference" or "–"."""
    if variant == results["reference"]:
        return "reference"
    difference = results.get("paired", {}).get(variant, {}).get(split)
    return interval_text(difference) if difference is not None else "–"


def _cell(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "–" if value is None else f"{scale * value:.{digits}f}"


def curve_table(results: Mapping[str, Any]) -> str:
    """Each variant's seeds, lowest, mean and highest mean F1 and the ends of its training curves
    (``agrnet.diagnostics.curve_summary``), as a Markdown table."""
    return (
        "| variant | seeds | mean F1: lowest, mean, highest | L_final "
        "| own class (%) | entropy of P | edge mean | gradient norm |\n"
        "|---|---|---|---|---|---|---|---|\n"
        + "\n".join(
            f"| {row['variant']} | {len(row['seeds'])} | "
            + ", ".join(f"{100 * value:.1f}" for value in row["mean_f1"])
            + f" | {_cell(row['final'], digits=3)} | "
            f"{_cell(row['own_class'], 100, 1)} | "
            f"{_cell(row['p_entropy'])} | {_cell(row['edge_mean'])} | "
            f"{_cell(row['grad_norm'])} |"
            for row in curve_summary(results)
        )
    )


def precision_table(results: Mapping[str, Any]) -> str:
    """A paired experiment under its name with the precision it ran in: the heading and the ``paired_table``."""
    amp = {"none": "fp32"}.get(results["precision"]["amp"], results["precision"]["amp"])
    return (
        f"**{results['experiment']}** ({amp}, channels_last {results['precision']['channels_last']})\n\n"
        + paired_table(results)
    )


def protocols_table(protocols: Mapping[str, Mapping[str, Any] | None], variants: Sequence[str]) -> str:
    """``variants`` as each protocol (name -> its results, None when not run) trained them: seeds, mean F1, its
    standard deviation over the seeds and its range, as a Markdown table."""
    rows = []
    for protocol, results in protocols.items():
        if results is None:
            continue
        for row in curve_summary(results):
            if row["variant"] not in variants:
                continue
            std = results["summary"][row["variant"]]["test"]["mean_f1"]["std"]
            low, mean, high = (100 * value for value in row["mean_f1"])
            rows.append(
                f"| {protocol} | {row['variant']} | {len(row['seeds'])} | {mean:.1f} | "
                + ("–" if std is None else f"{100 * std:.1f}")
                + f" | {low:.1f} to {high:.1f} |"
            )
    return (
        "| learning rate, precision | variant | seeds | mean F1 (%) | standard deviation "
        "| range |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


def yaw_table(report: Mapping[str, Any]) -> str:
    """Mean F1 per head yaw (a report's ``by_yaw``), yaws in order, as a one-row Markdown table."""
    yaws = sorted(report["by_yaw"], key=int)
    return (
        "| yaw (°) | " + " | ".join(yaws) + " |\n|---" + "|---" * len(yaws)
        + "|\n| mean F1 | "
        + " | ".join(percent(report["by_yaw"][y]["mean_f1"]) for y in yaws)
        + " |"
    )
