"""Adaptive graph projection, vectorised (``agrnet.model.graph``) against the authors' per-class loop.

The authors' public code selects the vertices of Eq. (3) one class at a time: for each class c, a top-k over
Z0[:, c], a gather of those K columns of Xne, and a concatenation of the Nc results. ``agrnet`` does one top-k over
all classes and one gather. This script checks that both give the same vertices XG, then times

- vertex selection: the top-k and gather from Z0 and Xne (the only part that differs), forward, and forward plus
  backward into Xne (where the loop pays: each of its Nc gathers backpropagates into a full N x C x H1 x W1 buffer);
- the Eq. (3) to (6) chain: Z0 = conv(X0), XG, X^G = reasoning(XG), P = softmax(XG Xe^T), XP = P^T X^G, forward,
  and forward plus backward into X0, Xe, Xne and the weights,

at the paper's scale (Nc = 11, K = 4, C = 256, 119 x 119, batch 4) with ``torch.utils.benchmark``, in alternating
rounds so that load from other processes hits both alike, and prints min/median times and loop/vectorised ratios.

Usage: ``python benchmarks/bench_projection.py [--device cuda] [--threads 1] [--flush-denormal] [--json]``.
With these unit-variance random features P is so peaked that some of its entries are denormal floats, which slow
the reprojection's matrix products on CPU about twofold; ``--flush-denormal`` (``torch.set_flush_denormal``) shows
the chain without that cost. (A freshly initialised AGRNet's P had none at 473 x 473; a trained one may.)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import torch
from torch.utils import benchmark

from agrnet.model.graph import (
    AdaptiveGraphProjection,
    GraphReasoning,
    GraphReprojection,
    gather_vertices,
    select_vertices,
)

SelectAndGather = Callable[[torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


def vectorised_select_and_gather(z0: torch.Tensor, xne: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The library's selection: one top-K over all classes of Z0, one gather of Xne -> (XG N x V x C, index)."""
    index = select_vertices(z0, top_k)
    return gather_vertices(xne, index), index


def loop_select_and_gather(z0: torch.Tensor, xne: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' per-class loop: Z0 (N x Nc x H1 x W1), Xne (N x C x H1 x W1) -> (XG N x V x C, index N x V).

    For each class c: top-K over Z0[:, c], gather those pixels of Xne, then concatenate the classes (class-major).
    """
    scores, features = z0.flatten(2), xne.flatten(2)
    anchors, indices = [], []
    for c in range(scores.shape[1]):
        index = scores[:, c].topk(top_k, dim=1).indices
        anchors.append(features.gather(2, index.unsqueeze(1).expand(-1, features.shape[1], -1)))
        indices.append(index)
    return torch.cat(anchors, 2).transpose(1, 2), torch.cat(indices, 1)


class ProjectionChain(torch.nn.Module):
    """Eq. (3) to (6) with the library's modules; ``per_class_loop=True`` swaps in the authors' vertex selection."""

    def __init__(self, channels: int, num_classes: int, top_k: int, per_class_loop: bool) -> None:
        super().__init__()
        self.projection = AdaptiveGraphProjection(channels, num_classes, top_k)
        self.reasoning = GraphReasoning(top_k * num_classes, channels)
        self.reprojection = GraphReprojection()
        self.per_class_loop = per_class_loop

    def forward(self, x0: torch.Tensor, xe: torch.Tensor, xne: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """X0, Xe, Xne (N x C x H1 x W1) -> (Z0, XP)."""
        if self.per_class_loop:
            z0 = self.projection.classifier(x0)
            vertices, _ = loop_select_and_gather(z0, xne, self.projection.top_k)
        else:
            z0, vertices, _ = self.projection(x0, xne)
        xp, _ = self.reprojection(vertices, self.reasoning(vertices), xe)
        return z0, xp


def check_same_vertices(z0: torch.Tensor, xne: torch.Tensor, top_k: int) -> None:
    """Raise RuntimeError unless the library and the loop choose the same vertices XG in the same order."""
    vertices, index = vectorised_select_and_gather(z0, xne, top_k)
    loop_vertices, loop_index = loop_select_and_gather(z0, xne, top_k)
    if not torch.equal(index, loop_index):
        raise RuntimeError("vectorised and per-class vertex indices differ")
    if not torch.equal(vertices, loop_vertices):
        raise RuntimeError("vectorised and per-class vertices XG differ")


def _measure_pair(
    first: Callable[[], object], second: Callable[[], object], label: str, min_run_time: float, rounds: int
) -> tuple[benchmark.Measurement, benchmark.Measurement]:
    """Time two statements in alternating rounds, so that load from other processes hits both alike."""
    timers = [
        benchmark.Timer(
            stmt="stmt()", globals={"stmt": stmt}, label=label, sub_label=name, num_threads=torch.get_num_threads()
        )
        for stmt, name in ((first, "vectorised"), (second, "per-class loop"))
    ]
    runs: list[list[benchmark.Measurement]] = [[], []]
    for _ in range(rounds):
        for timer, measured in zip(timers, runs, strict=True):
            measured.append(timer.blocked_autorange(min_run_time=min_run_time / rounds))
    fast, slow = (benchmark.Measurement.merge(measured)[0] for measured in runs)
    return fast, slow


def _summary(measurement: benchmark.Measurement) -> dict[str, float]:
    return {"min_ms": min(measurement.times) * 1e3, "median_ms": measurement.median * 1e3}


def compare(
    batch: int = 4,
    num_classes: int = 11,
    top_k: int = 4,
    channels: int = 256,
    size: int = 119,
    device: str = "cpu",
    min_run_time: float = 4.0,
    rounds: int = 4,
) -> dict[str, dict[str, float]]:
    """Time the vectorised projection against the per-class loop; returns ``{case: {vectorised, loop, ratio}}``.

    Each statement gets ``min_run_time`` seconds in all, spread over ``rounds`` rounds that alternate the two.

    ``vectorised`` and ``loop`` hold min and median milliseconds per call; ``ratio_min`` and ``ratio_median`` are
    loop / vectorised (above 1: the library is faster). On a shared machine the minimum is the steadier figure.
    """
    dev = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    x0, xe, xne = (torch.randn(batch, channels, size, size, generator=generator).to(dev) for _ in range(3))
    z0 = torch.randn(batch, num_classes, size, size, generator=generator).to(dev)
    check_same_vertices(z0, xne, top_k)

    torch.manual_seed(0)
    vectorised = ProjectionChain(channels, num_classes, top_k, per_class_loop=False).to(dev)
    loop = ProjectionChain(channels, num_classes, top_k, per_class_loop=True).to(dev)
    loop.load_state_dict(vectorised.state_dict())
    with torch.no_grad():
        reference, candidate = vectorised(x0, xe, xne), loop(x0, xe, xne)
    if not all(torch.equal(a, b) for a, b in zip(reference, candidate, strict=True)):
        raise RuntimeError("the vectorised and per-class chains give different Z0 or XP")

    inputs = [t.clone().requires_grad_(True) for t in (x0, xe, xne)]
    chain_grads = (torch.randn_like(z0), torch.randn_like(x0))
    vertex_grad = torch.randn(batch, top_k * num_classes, channels, device=dev)

    def selection(select_and_gather: SelectAndGather, backward: bool) -> Callable[[], object]:
        def run() -> object:
            if not backward:
                with torch.no_grad():
                    return select_and_gather(z0, xne, top_k)
            vertices, _ = select_and_gather(z0, inputs[2], top_k)
            return torch.autograd.grad(vertices, inputs[2], vertex_grad)

        return run

    def chain(module: ProjectionChain, backward: bool) -> Callable[[], object]:
        def run() -> object:
            if not backward:
                with torch.no_grad():
                    return module(x0, xe, xne)
            return torch.autograd.grad(module(*inputs), [*inputs, *module.parameters()], chain_grads)

        return run

    synchronize = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def synced(stmt: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            result = stmt()
            synchronize()
            return result

        return run

    cases = {
        "vertex selection, forward": (
            selection(vectorised_select_and_gather, False),
            selection(loop_select_and_gather, False),
        ),
        "vertex selection, fwd+bwd": (
            selection(vectorised_select_and_gather, True),
            selection(loop_select_and_gather, True),
        ),
        "Eq. 3-6 chain, forward": (chain(vectorised, False), chain(loop, False)),
        "Eq. 3-6 chain, fwd+bwd": (chain(vectorised, True), chain(loop, True)),
    }
    results: dict[str, dict[str, float]] = {}
    for case, (fast, slow) in cases.items():
        fast_m, slow_m = _measure_pair(synced(fast), synced(slow), case, min_run_time, rounds)
        results[case] = {
            "vectorised": _summary(fast_m),
            "loop": _summary(slow_m),
            "ratio_min": min(slow_m.times) / min(fast_m.times),
            "ratio_median": slow_m.median / fast_m.median,
        }
    return results


def format_results(results: dict[str, dict[str, float]]) -> str:
    """A plain-text table of ``compare``'s results."""
    lines = [f"{'case':34s} {'vectorised min / med ms':>23s} {'loop min / med ms':>21s} {'loop/vec min, med':>18s}"]
    for case, row in results.items():
        vec, loop = row["vectorised"], row["loop"]
        lines.append(
            f"{case:34s} {vec['min_ms']:11.2f} / {vec['median_ms']:9.2f} {loop['min_ms']:9.2f} / "
            f"{loop['median_ms']:9.2f} {row['ratio_min']:8.2f}x {row['ratio_median']:6.2f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run ``compare`` and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--size", type=int, default=119, help="H1 = W1 of the low-level map")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-run-time", type=float, default=4.0, help="seconds per statement and case")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per case")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--flush-denormal", action="store_true", help="flush denormal floats to zero (CPU)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        parser.error("--flush-denormal: not supported on this CPU")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = compare(
        args.batch, args.num_classes, args.top_k, args.channels, args.size, args.device, args.min_run_time, args.rounds
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"batch {args.batch}, Nc {args.num_classes}, K {args.top_k}, C {args.channels}, "
            f"{args.size} x {args.size}, {args.device}, {torch.get_num_threads()} threads, "
            f"flush denormal {args.flush_denormal}"
        )
        print(format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
