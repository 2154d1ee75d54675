"""The cost of each part of AGRNet: FLOPs, parameters and inference time against the ``use_graph=False`` baseline.

FLOPs and parameters come from ``agrnet.model.complexity`` and sit beside the paper's Table I(d). Inference time
is measured for AGRNet and for the baseline (``use_graph=False, use_edge=False``: ResNet, pyramid pooling, fusion
and decoder, Table I(a) model 1, with AGRNet's weights for the modules they share) in alternating rounds, each
going first in every other round, so that load from other processes and the order hit both alike. Forward
hooks on AGRNet's top-level modules time each part inside the full forward pass (the edge masking of Eq. (2) and
the input normalisation fall outside every module and show as "other").

The overhead of the graph modules (edge perceiving, projection, reasoning, reprojection) is given two ways: AGRNet's
time over the baseline's, and the time spent inside those modules and "other" (an upper bound: it includes the
input normalisation the baseline also does) over the rest of AGRNet's forward, each part at its minimum over the
repeats. The second is steadier on a busy
machine; the issue's target is at most 10%.

Usage: ``python benchmarks/bench_cost.py [--threads 1] [--out book/results/cost_cpu.json]`` (2 to 5 minutes with
ResNet-101 at 473 x 473 on two CPU cores; one thread gives steadier numbers when other processes share them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agrnet.files import write_json
from agrnet.model import AGRNet, complexity
from agrnet.model.flops import format_table
from agrnet.paper import PAPER_TABLE_1D
from agrnet.provenance import environment
from agrnet.runtime import parse_device, synchronize

#: The top-level modules of AGRNet that the graph adds on top of the baseline.
GRAPH_MODULES = ("edge", "projection", "reasoning", "reprojection")
#: What the paper's Table I(d) says the edge module, projection and reasoning add: GFLOPs, M parameters.
PAPER_GRAPH_COST = tuple(
    round(sum(PAPER_TABLE_1D[part][i] for part in ("edge perceiving", "graph projection", "graph reasoning")), 3)
    for i in (0, 1)
)


class PartTimer:
    """Forward hooks that add up the wall time spent inside each top-level child of a model."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self._starts: dict[str, float] = {}
        self._handles = []
        for name, child in model.named_children():
            self._handles.append(child.register_forward_pre_hook(self._pre(name)))
            self._handles.append(child.register_forward_hook(self._post(name)))

    def _pre(self, name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            synchronize(self.device)
            self._starts[name] = time.perf_counter()

        return hook

    def _post(self, name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - self._starts.pop(name)

        return hook

    def reset(self) -> None:
        """Forget the times recorded so far."""
        self.seconds = {}


def _timed_forward(model: nn.Module, images: torch.Tensor, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        model(images)
    synchronize(device)
    return time.perf_counter() - start


def measure(
    backbone: str = "resnet101",
    size: int = 473,
    batch_size: int = 1,
    num_classes: int = 11,
    device: str = "cpu",
    warmup: int = 1,
    repeats: int = 4,
) -> dict[str, Any]:
    """Complexity of AGRNet per part and inference times of AGRNet and the baseline; a JSON-ready dict."""
    dev = parse_device(device)
    torch.manual_seed(0)
    full = AGRNet(num_classes, backbone=backbone).to(dev).eval()
    baseline = AGRNet(num_classes, backbone=backbone, use_graph=False, use_edge=False).to(dev).eval()
    missing, _ = baseline.load_state_dict(full.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"the baseline has modules AGRNet lacks: {missing[:3]}")
    table = complexity(full, (size, size))
    images = torch.rand(batch_size, 3, size, size, device=dev)

    parts = PartTimer(full, dev)
    for _ in range(warmup):
        _timed_forward(full, images, dev)
        _timed_forward(baseline, images, dev)
    times: dict[str, list[float]] = {"agrnet": [], "baseline": []}
    part_times: list[dict[str, float]] = []
    for round_index in range(repeats):
        if round_index % 2:
            times["baseline"].append(_timed_forward(baseline, images, dev))
        parts.reset()
        times["agrnet"].append(_timed_forward(full, images, dev))
        part_times.append({**parts.seconds, "other": times["agrnet"][-1] - sum(parts.seconds.values())})
        if not round_index % 2:
            times["baseline"].append(_timed_forward(baseline, images, dev))

    per_part_ms = {
        name: {
            "min_ms": min(run[name] for run in part_times) * 1e3,
            "median_ms": statistics.median(run[name] for run in part_times) * 1e3,
        }
        for name in part_times[0]
    }
    graph_ms = sum(per_part_ms[name]["min_ms"] for name in (*GRAPH_MODULES, "other") if name in per_part_ms)
    rest_ms = sum(row["min_ms"] for row in per_part_ms.values()) - graph_ms
    summary = {
        name: {"min_ms": min(values) * 1e3, "median_ms": statistics.median(values) * 1e3}
        for name, values in times.items()
    }
    return {
        "config": {
            "backbone": backbone,
            "size": [size, size],
            "batch_size": batch_size,
            "num_classes": num_classes,
            "warmup": warmup,
            "repeats": repeats,
        },
        "environment": environment(dev),
        "complexity": table,
        "paper_table_1d": {part: {"gflops": g, "mparams": m} for part, (g, m) in PAPER_TABLE_1D.items()},
        "graph_modules": {
            "gflops": table["total"]["gflops"] - table["baseline"]["gflops"],
            "mparams": table["total"]["mparams"] - table["baseline"]["mparams"],
            "paper_gflops": PAPER_GRAPH_COST[0],
            "paper_mparams": PAPER_GRAPH_COST[1],
        },
        "inference": summary,
        "inference_parts": per_part_ms,
        "overhead_end_to_end": {
            "min": summary["agrnet"]["min_ms"] / summary["baseline"]["min_ms"] - 1,
            "median": summary["agrnet"]["median_ms"] / summary["baseline"]["median_ms"] - 1,
        },
        "overhead_from_parts": graph_ms / rest_ms,
    }


def format_result(result: dict[str, Any]) -> str:
    """The complexity table, the graph modules' cost and the inference times as plain text."""
    config, graph = result["config"], result["graph_modules"]
    parts = result["inference_parts"]
    lines = [
        f"AGRNet {config['backbone']} at {config['size'][0]} x {config['size'][1]}, batch {config['batch_size']}, "
        f"{result['environment']['device_name']} ({result['environment']['torch_threads']} threads)",
        "",
        format_table(result["complexity"]),
        "",
        f"graph modules add {graph['gflops']:.3f} GFLOPs and {graph['mparams']:.3f} M parameters "
        f"(paper: {graph['paper_gflops']:.3f} GFLOPs, {graph['paper_mparams']:.2f} M)",
        "",
        f"{'inference':10s} {'min ms':>10s} {'median ms':>10s}",
    ]
    for name, row in result["inference"].items():
        lines.append(f"{name:10s} {row['min_ms']:10.1f} {row['median_ms']:10.1f}")
    lines += ["", f"AGRNet forward by part {'min ms':>10s} {'share':>7s} {'median ms':>10s}"]
    total = sum(row["min_ms"] for row in parts.values())
    for name, row in parts.items():
        lines.append(f"  {name:20s} {row['min_ms']:10.2f} {100 * row['min_ms'] / total:6.2f}% {row['median_ms']:10.2f}")
    end_to_end = result["overhead_end_to_end"]
    lines += [
        "",
        f"graph overhead over the rest of the forward: {100 * result['overhead_from_parts']:.2f}% (from the parts' "
        "minimum times, with 'other'); "
        f"AGRNet / baseline - 1: {100 * end_to_end['min']:+.2f}% (min), {100 * end_to_end['median']:+.2f}% (median)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet101")
    parser.add_argument("--size", type=int, default=473)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = measure(
        args.backbone, args.size, args.batch_size, args.num_classes, args.device, args.warmup, args.repeats
    )
    print(format_result(result))
    if args.out is not None:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
