"""Figures of how well a model does: confusion matrices, per-class F1 (against the paper's), per-class errors,
paired experiments, scores per head yaw, and training curves (of an experiment's runs, or of one run's
``log.jsonl``)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import seaborn as sns
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from agrnet.analysis import ErrorBreakdown
from agrnet.data.labels import LabelSchema
from agrnet.diagnostics import curve_value
from agrnet.evaluate import table_columns
from agrnet.metrics import ConfusionMatrix
from agrnet.training.runlog import read_log
from agrnet.viz.style import BOOK_WIDTH, MIN_FONT_PT, book_figure, book_styled, class_colours

LOG_META_KEYS = ("kind", "step", "epoch", "lr", "images_per_s", "time")


def _confusion_array(matrix: ConfusionMatrix | torch.Tensor | np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    if isinstance(matrix, ConfusionMatrix):
        matrix = matrix.matrix
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    return np.asarray(matrix, dtype=np.float64)


@book_styled
def confusion_figure(
    matrix: ConfusionMatrix | torch.Tensor | np.ndarray | Sequence[Sequence[int]],
    schema: LabelSchema,
    normalize: bool = True,
) -> Figure:
    """The confusion matrix (rows ground truth, columns prediction) as a heatmap; with ``normalize`` each row is
    divided by its sum (the share of a class's pixels given each label). Takes a ``ConfusionMatrix``, a tensor or
    a report's ``confusion_matrix``."""
    counts = _confusion_array(matrix)
    if counts.shape != (schema.num_classes, schema.num_classes):
        raise ValueError(f"matrix: expected {schema.num_classes} x {schema.num_classes}, got {counts.shape}")
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        counts = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    figure = book_figure(height=BOOK_WIDTH * 0.85)
    ax = figure.subplots()
    annotate = schema.num_classes <= 12
    sns.heatmap(
        counts, ax=ax, cmap="Blues", square=True, annot=annotate, fmt=".2f" if normalize else ".0f", vmin=0,
        vmax=1 if normalize else None,
        annot_kws={"fontsize": MIN_FONT_PT}, xticklabels=schema.classes, yticklabels=schema.classes,
        cbar_kws={"label": "share of the row" if normalize else "pixels", "shrink": 0.8},
    )  # fmt: skip
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    ax.set_title("confusion matrix" + (" (rows normalised)" if normalize else ""))
    return figure


def _f1_bars(ax: Axes, report: Mapping[str, Any], schema: LabelSchema, dataset: str | None) -> None:
    """Draw a report's per-class F1 bars, its mean and the paper's numbers (if any) into ``ax``."""
    dataset = dataset if dataset is not None else report.get("dataset")
    scores = report.get("f1", {})
    names = list(schema.classes[1:])
    values = [100 * (scores.get(name) if scores.get(name) is not None else math.nan) for name in names]
    positions = np.arange(len(names))
    ax.bar(positions, values, color=class_colours(schema)[1:], edgecolor="0.3", linewidth=0.6, label="this run")
    paper = {key.removeprefix("f1/"): value for _, key, value in table_columns(schema, dataset)}
    published = [paper.get(name, math.nan) if paper.get(name) is not None else math.nan for name in names]
    if not all(math.isnan(v) for v in published):
        ax.scatter(
            positions, published, color="black", marker="_", s=200, linewidths=2, label="AGRNet (paper)", zorder=3
        )
    if report.get("mean_f1") is not None:
        ax.axhline(100 * report["mean_f1"], color="0.4", linestyle="--", linewidth=1, label="mean F1 (this run)")
    ax.set_xticks(positions, names, rotation=60, ha="right")
    ax.set_ylim(0, 100)


@book_styled
def f1_figure(report: Mapping[str, Any], schema: LabelSchema, dataset: str | None = None) -> Figure:
    """Per-class F1 (%) of a report as bars in the class colours, the mean as a line, and AGRNet's published
    Table II numbers as black markers when the report's dataset is one of the paper's."""
    figure = book_figure(height=BOOK_WIDTH * 0.5)
    ax = figure.subplots()
    _f1_bars(ax, report, schema, dataset)
    ax.set_ylabel("F1 (%)")
    ax.set_title("F1 per class")
    figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False)
    return figure


@book_styled
def f1_runs_figure(reports: Mapping[str, Mapping[str, Any]], schema: LabelSchema, dataset: str | None = None) -> Figure:
    """``f1_figure`` for several reports side by side, one panel per entry of ``reports`` (title -> report),
    on one F1 axis, with one legend below: e.g. the seeds of one experiment."""
    if not reports:
        raise ValueError("reports: nothing to draw")
    figure = book_figure(height=BOOK_WIDTH * 0.5)
    axes = np.atleast_1d(figure.subplots(1, len(reports), sharey=True))
    for ax, (title, report) in zip(axes, reports.items(), strict=True):
        _f1_bars(ax, report, schema, dataset)
        ax.set_title(title)
    axes[0].set_ylabel("F1 (%)")
    entries: dict[str, Any] = {}  # one legend entry per label, from whichever panel has it
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    figure.legend(entries.values(), entries.keys(), loc="outside lower center", ncols=len(entries), frameon=False)
    return figure


@book_styled
def paired_figure(results: Mapping[str, Any], split: str = "test") -> Figure:
    """A paired experiment's results file (``agrnet experiment``, with a ``reference`` variant): on the left the
    mean F1 of every variant, one line per seed joining its variants and the mean over seeds in black; on the right
    each other variant's paired difference to the reference on ``split`` with its 95 % interval (from the file's
    ``paired`` entry), against a line at zero. Variants with no run yet are left out."""
    trained = {run["variant"] for run in results["runs"]}
    variants = [name for name in results["variants"] if name in trained]
    reference = results["reference"]
    seeds = sorted({run["seed"] for run in results["runs"]})
    if not seeds:
        raise ValueError("results: no runs to draw")
    scores = {(run["variant"], run["seed"]): 100 * run["metrics"][split]["mean_f1"] for run in results["runs"]}
    figure = book_figure(height=0.45 * len(variants) + 1.6)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": (3, 2)})
    positions = np.arange(len(variants))
    for seed in seeds:
        values = [scores.get((variant, seed), np.nan) for variant in variants]
        left.plot(values, positions, "o-", color="0.65", markersize=4, linewidth=1)
    means = [np.nanmean([scores.get((v, s), np.nan) for s in seeds]) for v in variants]
    left.plot(means, positions, "D", color="black", label="mean over seeds")
    left.set_yticks(positions, variants)
    left.invert_yaxis()
    left.set_xlabel(f"mean F1 on {split} (%)")
    left.set_title(f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}, one grey line each")
    paired = results.get("paired", {})
    for position, variant in enumerate(variants):
        difference = paired.get(variant, {}).get(split)
        if difference is None:
            continue
        mean = 100 * difference["mean"]
        if difference["low"] is None:
            right.plot(mean, position, "o", color="tab:blue")
            continue
        low, high = 100 * difference["low"], 100 * difference["high"]
        colour = "tab:green" if low > 0 else "tab:red" if high < 0 else "tab:blue"
        right.errorbar(mean, position, xerr=[[mean - low], [high - mean]], fmt="o", color=colour, capsize=3)
    right.axvline(0, color="0.3", linewidth=1)
    right.set_yticks(positions, [])
    right.set_ylim(left.get_ylim())
    right.set_xlabel(f"minus {reference}, same seed (points)")
    right.set_title("95 % interval")
    return figure


CURVE_PANELS: dict[str, str] = {
    "final": "L_final (cross-entropy on Y, in Eq. 11)",
    "own_class": "vertices on their own class",
    "p_entropy": "entropy of P / log V",
    "grad_norm": "gradient norm",
}
"""The panels of ``curves_figure``: a loss term or a diagnostic of ``agrnet.diagnostics`` -> its axis label."""


@book_styled
def curves_figure(results: Mapping[str, Any], panels: Mapping[str, str] = CURVE_PANELS) -> Figure:
    """The training curves an experiment's results file records (each run's ``curve``): one panel per entry of
    ``panels``, one colour per variant, one line per seed, against the step."""
    runs = [run for run in results["runs"] if run.get("curve")]
    if not runs:
        raise ValueError("results: no run records its curve")
    variants = [name for name in results["variants"] if any(run["variant"] == name for run in runs)]
    colours = dict(zip(variants, matplotlib.colormaps["tab10"](np.arange(len(variants))), strict=True))
    rows = math.ceil(len(panels) / 2)
    figure = book_figure(height=2.4 * rows + 0.6)
    axes = np.atleast_1d(figure.subplots(rows, 2, sharex=True)).flatten()
    for ax, (key, title) in zip(axes, panels.items(), strict=False):
        for run in runs:
            points = [(p["step"], curve_value(p, key)) for p in run["curve"]]
            points = [(step, value) for step, value in points if value is not None]
            if points:
                ax.plot(*zip(*points, strict=True), color=colours[run["variant"]], linewidth=1, alpha=0.8)
        ax.set_title(title)
        if key in ("final", "grad_norm"):
            ax.set_yscale("log")
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax in axes[-2:]:
        ax.set_xlabel("step")
    handles = [Line2D([], [], color=colours[name], label=name) for name in variants]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    return figure


@book_styled
def training_curves_figure(log: str | os.PathLike[str] | Sequence[Mapping[str, Any]]) -> Figure:
    """Training curves of a run: the loss and each term of Eq. (11), the learning rate, and validation mean F1 and
    mIoU against the step. Takes a run directory, its ``log.jsonl`` or the records themselves."""
    records = read_log(log) if isinstance(log, str | os.PathLike) else list(log)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    if not train and not val:
        raise ValueError("log: no training or validation records (kind 'train' or 'val')")
    figure = book_figure(height=BOOK_WIDTH * 0.5)
    loss_ax, lr_ax, val_ax = figure.subplots(1, 3)
    terms = [k for k in train[0] if k not in LOG_META_KEYS and isinstance(train[0][k], int | float)] if train else []
    steps = [r["step"] for r in train]
    for term in terms:
        values = [r.get(term) if r.get(term) is not None else math.nan for r in train]
        loss_ax.plot(steps, values, label=term, linewidth=2 if term == "loss" else 1)
    _label(loss_ax, "training loss", "loss")
    if terms:  # the loss terms' legend goes below the panels, where it hides no curve
        loss_ax.set_yscale("log")
        figure.legend(*loss_ax.get_legend_handles_labels(), loc="outside lower center", ncols=6, frameon=False)
    lr_ax.plot(steps, [r.get("lr", math.nan) for r in train], color="0.3")
    _label(lr_ax, "learning rate", "lr")
    for key, name in (("mean_f1", "mean F1"), ("miou", "mIoU")):
        values = [100 * r[key] if r.get(key) is not None else math.nan for r in val]
        val_ax.plot([r["step"] for r in val], values, marker="o", label=name)
    _label(val_ax, "validation", "%")
    if val:
        val_ax.legend()
    return figure


def _label(ax: Axes, title: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)


@book_styled
def class_errors_figure(breakdown: ErrorBreakdown, schema: LabelSchema) -> Figure:
    """Per-class errors (``error_breakdown``): (a) the share of each class's pixels that are mislabelled, split
    into those within ``radius`` pixels of a boundary (hatched) and farther; (b) each class's share of all
    labelled pixels, which shows how unbalanced the classes are."""
    figure = book_figure(height=BOOK_WIDTH * 0.45)
    rate_ax, share_ax = figure.subplots(1, 2)
    positions = np.arange(schema.num_classes)
    colours = class_colours(schema)
    total = breakdown.pixels.double().clamp_min(1)
    near = (100 * breakdown.wrong_near.double() / total).numpy()
    far = (100 * (breakdown.wrong - breakdown.wrong_near).double() / total).numpy()
    rate_ax.bar(positions, near, color=colours, edgecolor="0.2", hatch="///", linewidth=0.6)
    rate_ax.bar(positions, far, bottom=near, color=colours, edgecolor="0.2", linewidth=0.6)
    rate_ax.set_ylabel("wrong pixels (% of the class)")
    rate_ax.set_title("(a) errors per ground-truth class")
    handles = [
        Patch(facecolor="white", edgecolor="0.2", hatch="///", label=f"within {breakdown.radius} px of a boundary"),
        Patch(facecolor="white", edgecolor="0.2", label="farther from any boundary"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    share = (100 * breakdown.pixels.double() / breakdown.pixels.sum().clamp_min(1)).numpy()
    share_ax.bar(positions, share, color=colours, edgecolor="0.2", linewidth=0.6)
    share_ax.set_ylabel("% of all labelled pixels")
    share_ax.set_title("(b) size of each class")
    for ax in (rate_ax, share_ax):
        ax.set_xticks(positions, schema.classes, rotation=45, ha="right")
    return figure


@book_styled
def yaw_figure(results: Mapping[str, Any]) -> Figure:
    """Mean F1 against head yaw of each run of a domain-gap experiment scored per yaw (``by_yaw``), with the same
    model's score on frontal02 test as a dashed line."""
    figure = book_figure(height=3.2)
    ax = figure.subplots()
    for run in results["runs"]:
        for split, report in run["metrics"].items():
            if "by_yaw" in report:
                yaws = sorted(report["by_yaw"], key=int)
                ax.plot([int(y) for y in yaws], [100 * report["by_yaw"][y]["mean_f1"] for y in yaws], "o-",
                        label=f"{run['variant']}, seed {run['seed']}")  # fmt: skip
            elif split == "test" and "multipose-train" in run["metrics"]:
                ax.axhline(100 * report["mean_f1"], color="0.5", linestyle="--",
                           label="the same model on frontal02 test")  # fmt: skip
    ax.set_xlabel("head yaw (degrees)")
    ax.set_ylabel("mean F1 (%)")
    ax.legend()
    return figure
