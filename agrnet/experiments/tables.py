"""An experiment's results as the book's Markdown tables: each variant beside the reference and the paper, what each
part of the ablation adds, and the difference class by class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agrnet.experiments.results import paired
from agrnet.paper import PAPER_MEAN_F1
from agrnet.stats import verdict


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
