"""``agrnet bench``: time AGRNet's training steps and inference, print throughput, peak memory and TFLOP/s, and
optionally write the result as JSON (``agrnet.bench``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from agrnet.bench import MODES, PRECISIONS, BenchConfig, benchmark, format_result
from agrnet.files import write_json
from agrnet.model.backbone import BACKBONES


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agrnet bench``."""
    defaults = BenchConfig()
    parser.add_argument("--backbone", default=defaults.backbone, choices=BACKBONES)
    parser.add_argument(
        "--size",
        type=int,
        nargs="+",
        default=list(defaults.size),
        metavar="PX",
        help="input size: one value (square) or H W (default 473 473)",
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--num-classes", type=int, default=defaults.num_classes)
    parser.add_argument("--device", default=defaults.device, help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument(
        "--precision", default=defaults.precision, choices=tuple(PRECISIONS),
        help="autocast precision; auto (default): bf16 only where a short probe shows it faster than fp32",
    )  # fmt: skip
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None,
        help="channels_last memory format (default: chosen by the same probe)",
    )  # fmt: skip
    parser.add_argument("--channels", type=int, default=defaults.channels, help="C, the width of X0 (default 256)")
    parser.add_argument("--output-stride", type=int, default=defaults.output_stride, choices=(8, 16))
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--mode", default=defaults.mode, choices=MODES)
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="timed steps")
    parser.add_argument("--no-graph", action="store_true", help="the use_graph=False baseline")
    parser.add_argument("--no-edge", action="store_true", help="without the edge perceiving module")
    parser.add_argument("--profile", action="store_true", help="add the top operators (torch.profiler)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result as JSON to PATH")


def run(args: argparse.Namespace) -> int:
    """Benchmark, print the summary and optionally write the JSON."""
    if len(args.size) not in (1, 2):
        raise ValueError(f"--size: expected one value or H W, got {args.size}")
    config = BenchConfig(
        backbone=args.backbone,
        size=(args.size[0], args.size[-1]),
        batch_size=args.batch_size,
        num_classes=args.num_classes,
        device=args.device,
        precision=args.precision,
        channels_last="auto" if args.channels_last is None else args.channels_last,
        compile=args.compile,
        mode=args.mode,
        warmup=args.warmup,
        repeats=args.repeats,
        use_graph=not args.no_graph,
        use_edge=not args.no_edge,
        channels=args.channels,
        output_stride=args.output_stride,
        profile=args.profile,
    )
    result = benchmark(config)
    print(format_result(result))
    if args.json is not None:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
