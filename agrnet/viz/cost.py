"""Figures of what AGRNet costs: FLOPs and parameters per part (Table I(d), ``agrnet.model.complexity``), inference
time on a CPU (``benchmarks/bench_cost.py``'s ``cost_*.json``) and throughput on a GPU
(``benchmarks/gpu_check.py``'s ``gpu_*.json``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from agrnet.model.flops import PARTS
from agrnet.viz.style import book_figure, book_styled


@book_styled
def parts_cost_figure(table: Mapping[str, Mapping[str, float]], backbone: str, size: int) -> Figure:
    """GFLOPs and parameters of each part of ``agrnet.model.flops.PARTS`` (a ``complexity`` table of the model with
    ``backbone`` at ``size`` x ``size``, batch 1), as bars on log scales with their values."""
    parts = list(PARTS)
    figure = book_figure(height=3.4)
    flops_ax, params_ax = figure.subplots(1, 2)
    colours = matplotlib.colormaps["tab10"](np.arange(len(parts)))
    for ax, key, unit in ((flops_ax, "gflops", "GFLOPs"), (params_ax, "mparams", "parameters (M)")):
        values = [table[part][key] for part in parts]
        ax.barh(parts, values, color=colours)
        ax.set_xscale("log")
        ax.set_xlim(right=max(values) * 60)  # room for the labels inside the frame
        ax.set_xlabel(f"{unit}, log scale")
        ax.invert_yaxis()
        for position, value in enumerate(values):
            ax.annotate(f"{value:.3g}", (value, position), xytext=(3, 0), textcoords="offset points", va="center")
    flops_ax.set_ylabel("part of AGRNet")
    params_ax.set_yticklabels([])
    figure.suptitle(f"cost per part, {backbone} at {size} × {size} (batch 1)", fontsize=10)
    return figure


def _median_ms(entry: Mapping[str, float] | float) -> float:
    """A timing entry: {"min_ms", "median_ms"} or a plain number of milliseconds."""
    return entry["median_ms"] if isinstance(entry, Mapping) else entry


def _cpu_row(row: Any, path: Path, data: Mapping[str, Any]) -> str:
    """One file's panels in the subfigure ``row``; returns its line on AGRNet's time over the baseline's."""
    env, inference = data["environment"], data["inference"]
    parts_ms = {name: _median_ms(entry) for name, entry in data.get("inference_parts", {}).items()}
    whole_ax, parts_ax = row.subplots(1, 2, gridspec_kw={"width_ratios": (1, 2)})
    names = list(inference)
    whole_ax.bar(names, [inference[name]["median_ms"] / 1e3 for name in names], color=["tab:blue", "0.6"],
                 label="median")  # fmt: skip
    whole_ax.scatter(names, [inference[name]["min_ms"] / 1e3 for name in names], color="black", marker="_", s=300,
                     label="min", zorder=3)  # fmt: skip
    whole_ax.set_ylabel("seconds per image")
    whole_ax.set_xlabel("model")
    whole_ax.set_title("inference, whole model")
    whole_ax.margins(y=0.3)  # room above the bars for the legend
    whole_ax.legend(loc="upper center", ncols=2)
    parts_ax.barh(list(parts_ms), [value / 1e3 for value in parts_ms.values()], color="tab:blue")
    parts_ax.set_xscale("log")
    parts_ax.set_xlabel("median seconds per image, log scale")
    parts_ax.set_ylabel("part (AGRNet attribute)")
    parts_ax.invert_yaxis()
    parts_ax.set_title("inference, per part")
    config = data["config"]
    row.suptitle(
        f"{path.name}: {config['backbone']} {config['size'][0]} × {config['size'][1]}, batch {config['batch_size']}\n"
        f"on {env['device_name']} ({env.get('torch_threads', '?')} threads), {env['timestamp'][:10]}",
        fontsize=10,
    )
    overhead = data.get("overhead_end_to_end", {})
    return (
        f"{path.name}: AGRNet's inference time over the baseline's: {100 * overhead.get('median', np.nan):+.0f} % "
        f"(medians), {100 * overhead.get('min', np.nan):+.0f} % (minima); command: {env['command']}"
    )


@book_styled
def cpu_timings(folder: str | os.PathLike[str]) -> tuple[Figure | None, str]:
    """The inference timings of ``folder``'s ``cost_*.json`` files: a figure with one row per file (the whole model
    against the baseline, and each part) and one line per file on AGRNet's time over the baseline's; without such a
    file, None and the command that makes one."""
    folder = Path(folder)
    files = sorted(folder.glob("cost_*.json"))
    if not files:
        hint = "run `python benchmarks/bench_cost.py --out book/results/cost_cpu.json`"
        return None, f"no CPU timing in {folder}: {hint}"
    figure = book_figure(height=3.8 * len(files))
    rows = np.atleast_1d(figure.subfigures(len(files), 1))
    lines = [_cpu_row(row, path, json.loads(path.read_text())) for path, row in zip(files, rows, strict=True)]
    return figure, "\n".join(lines)


@book_styled
def gpu_throughput(folder: str | os.PathLike[str]) -> tuple[Figure | None, str]:
    """The throughput of ``folder``'s ``gpu_*.json`` files: a figure with one row per GPU, images per second of each
    configuration and mode; without such a file, None and how to make one."""
    folder = Path(folder)
    files = sorted(folder.glob("gpu_*.json"))
    if not files:
        return None, (
            f"No GPU benchmark in {folder} yet. On a GPU machine run `python benchmarks/gpu_check.py --out "
            "gpu_results.json` and save the file under the name it prints (book/results/gpu_<gpu name>.json)."
        )
    figure = book_figure(height=3.4 * len(files))
    for path, row in zip(files, np.atleast_1d(figure.subfigures(len(files), 1)), strict=True):
        data = json.loads(path.read_text())
        table = data["summary"]["table"]
        variants = sorted({key.split("/")[0] for key in table})
        modes = sorted({key.split("/")[1] for key in table})
        ax = row.subplots()
        width = 0.8 / len(modes)
        for offset, mode in enumerate(modes):
            values = [table.get(f"{variant}/{mode}", {}).get("images_per_s", np.nan) for variant in variants]
            ax.bar(np.arange(len(variants)) + offset * width, values, width, label=mode)
        ax.set_xticks(np.arange(len(variants)) + width * (len(modes) - 1) / 2, variants)
        ax.set_xlabel("configuration")
        ax.set_ylabel("images per second")
        ax.legend(title="mode")
        settings, env = data["settings"], data["environment"]
        ax.set_title(f"{env['device_name']}: {settings['backbone']} {settings['size'][0]} px, "
                     f"batch {settings['batch_size']}")  # fmt: skip
    return figure, ""
