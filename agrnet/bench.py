"""``agrnet bench``: time AGRNet's training steps and inference, report throughput, peak memory and TFLOP/s.

A training step is forward, ``AGRNetLoss`` (Eq. 11), backward and an SGD step on random images and blocky random
label maps; inference is a forward pass under ``torch.inference_mode``. Warm-up steps are excluded (the first one,
which includes ``torch.compile``'s compilation, is reported apart); each timed step is synchronised with the device,
and min and median over the repeats are reported. Achieved TFLOP/s are the forward FLOPs of
``agrnet.model.complexity`` times images per second (three times that for a training step: forward and backward).
"""

from __future__ import annotations

import contextlib
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from agrnet.data.edges import label_edges
from agrnet.losses import AGRNetLoss
from agrnet.model import AGRNet, AGRNetConfig, complexity
from agrnet.model.backbone import BACKBONES
from agrnet.paper import PAPER_INPUT_SIZE
from agrnet.provenance import environment
from agrnet.runtime import (
    Precision,
    PrecisionChoice,
    choose_precision,
    device_description,
    parse_device,
    synchronize,
)

PRECISIONS: dict[str, str] = {"fp32": "none", "bf16": "bf16", "fp16": "fp16", "auto": "auto"}
"""``--precision`` names and the ``amp`` setting each stands for (``agrnet.runtime``)."""
MODES = ("train", "infer", "both")

#: Dense bf16 tensor-core peak in TFLOP/s, by a fragment of the CUDA device name (first match wins, so the more
#: specific names come first). Vendor datasheet figures without sparsity.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),
    ("A100", 312.0),
)

#: Side of the square patches of the random label maps: parts the size of facial components, not pixel noise.
LABEL_PATCH = 16


@dataclass
class BenchConfig:
    """What ``benchmark`` measures: the model, the input, the device and precision, and how long to time it.

    ``precision`` "auto" and ``channels_last`` "auto" are chosen by ``agrnet.runtime.choose_precision`` (a short
    probe of the step being benchmarked); the result records the choice.
    """

    backbone: str = "resnet101"
    size: tuple[int, int] = (PAPER_INPUT_SIZE, PAPER_INPUT_SIZE)
    batch_size: int = 8
    num_classes: int = 11
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | str = "auto"
    compile: bool = False
    mode: str = "both"
    warmup: int = 3
    repeats: int = 10
    use_graph: bool = True
    use_edge: bool = True
    channels: int = 256
    output_stride: int = 8
    profile: bool = False

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone: unknown {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.channels_last not in (True, False, "auto"):
            raise ValueError(f"channels_last: expected true, false or 'auto', got {self.channels_last!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        self.size = (*self.size,)
        if len(self.size) != 2 or min(self.size) < 32:
            raise ValueError(f"size: expected (H, W) with both at least 32, got {self.size}")
        for name, minimum in (("batch_size", 1), ("num_classes", 2), ("warmup", 0), ("repeats", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes to run, inference first (it needs less memory, so the CPU's peak RSS stays readable)."""
        return ("infer", "train") if self.mode == "both" else (self.mode,)


def bf16_peak_tflops(name: str) -> float | None:
    """The dense bf16 peak of a GPU named ``name`` from ``BF16_PEAK_TFLOPS``, or None when unknown."""
    return next((peak for fragment, peak in BF16_PEAK_TFLOPS if fragment in name), None)


def random_batch(
    size: tuple[int, int], batch_size: int, num_classes: int, device: torch.device, channels_last: bool = False
) -> dict[str, torch.Tensor]:
    """Random images in [0, 1] and label maps of LABEL_PATCH-pixel squares of random classes, with their edges
    (from a generator of its own: the global random streams are untouched)."""
    generator = torch.Generator().manual_seed(0)
    height, width = size
    images = torch.rand(batch_size, 3, height, width, generator=generator)
    cells = (batch_size, math.ceil(height / LABEL_PATCH), math.ceil(width / LABEL_PATCH))
    label = torch.randint(0, num_classes, cells, generator=generator)
    label = label.repeat_interleave(LABEL_PATCH, 1).repeat_interleave(LABEL_PATCH, 2)[:, :height, :width]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return {
        "image": images.to(device, memory_format=memory_format),
        "label": label.to(device),
        "edge": label_edges(label).to(device),
    }


def model_steps(
    model: AGRNet, batch: dict[str, torch.Tensor], precision: Precision, compile: bool = False
) -> dict[str, Callable[[], None]]:
    """One closure per mode for ``model`` (already on the batch's device): ``train`` (forward, ``AGRNetLoss``,
    backward, an SGD step) and ``infer`` (a forward pass under ``torch.inference_mode``), in ``precision``."""
    device = batch["image"].device
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
        batch = {**batch, "image": batch["image"].contiguous(memory_format=torch.channels_last)}
    runner = torch.compile(model) if compile else model
    criterion = AGRNetLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.amp == "fp16")

    def autocast() -> contextlib.AbstractContextManager:
        if precision.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=precision.dtype)

    def train_step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss, _ = criterion(runner(batch["image"]), batch)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def infer_step() -> None:
        model.eval()
        with torch.inference_mode(), autocast():
            runner(batch["image"])

    return {"train": train_step, "infer": infer_step}


def probe_step(
    architecture: AGRNetConfig, size: tuple[int, int], batch_size: int, device: torch.device, mode: str = "train"
) -> Callable[[Precision], Callable[[], None]]:
    """For ``agrnet.runtime.choose_precision``: a function that builds, for a ``Precision``, the ``mode`` step of a
    fresh AGRNet of ``architecture`` on a random batch (plain BatchNorm, so no process group is involved)."""

    def make(precision: Precision) -> Callable[[], None]:
        model = AGRNet.from_config(architecture).to(device)
        batch = random_batch(size, batch_size, model.num_classes, device)
        return model_steps(model, batch, precision)[mode]

    return make


def build_model(config: BenchConfig, device: torch.device) -> AGRNet:
    """The benchmarked ``AGRNet`` (seed 0) on ``device``."""
    torch.manual_seed(0)
    return AGRNet.from_config(AGRNetConfig.from_settings(config)).to(device)


def resolve_precision(config: BenchConfig, model: AGRNet, device: torch.device) -> PrecisionChoice:
    """The precision ``config`` asks for, probed on ``model`` when it says "auto"."""
    mode = "infer" if config.mode == "infer" else "train"
    key = {"model": model.config, "size": list(config.size), "batch_size": config.batch_size, "mode": mode}
    return choose_precision(
        PRECISIONS[config.precision], config.channels_last, device,
        probe_step(AGRNetConfig(**model.config), config.size, config.batch_size, device, mode), key,
    )  # fmt: skip


def peak_rss_mib() -> float:
    """The process's peak resident set size so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


@contextlib.contextmanager
def _memory_probe(device: torch.device, record: dict[str, Any]) -> Iterator[None]:
    """Fill ``record`` with the peak memory of the enclosed steps: CUDA allocator peaks, or the CPU's peak RSS."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = peak_rss_mib()
    yield
    if device.type == "cuda":
        record["peak_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        record["peak_reserved_mib"] = torch.cuda.max_memory_reserved(device) / 2**20
    else:
        record["peak_rss_mib"] = peak_rss_mib()
        record["peak_rss_growth_mib"] = record["peak_rss_mib"] - rss_before


def _timed(step: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def profile_step(step: Callable[[], None], device: torch.device, steps: int = 2, top: int = 10) -> list[dict]:
    """The operators that take the most time over ``steps`` calls of ``step`` (self time on the device for CUDA,
    on the CPU otherwise), with their share of the total."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as profiler:
        for _ in range(steps):
            step()
        synchronize(device)
    events = profiler.key_averages()

    def self_time(event: Any) -> float:
        return event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total

    total = sum(self_time(event) for event in events) or 1.0
    ranked = sorted(events, key=self_time, reverse=True)[:top]
    return [
        {
            "name": event.key,
            "self_ms_per_step": self_time(event) / 1e3 / steps,
            "share": self_time(event) / total,
            "calls_per_step": event.count / steps,
        }
        for event in ranked
    ]


def time_mode(
    step: Callable[[], None], config: BenchConfig, device: torch.device, forward_flops: float, mode: str
) -> dict[str, Any]:
    """Warm up, time ``config.repeats`` steps and summarise them: latency, throughput, TFLOP/s and peak memory."""
    record: dict[str, Any] = {}
    with _memory_probe(device, record):
        first_step_s = _timed(step, device) if config.warmup else None
        for _ in range(config.warmup - 1):
            step()
        times = [_timed(step, device) for _ in range(config.repeats)]
    best, median = min(times), statistics.median(times)
    flops_per_image = forward_flops * (3 if mode == "train" else 1)
    images_per_s = config.batch_size / median
    achieved = flops_per_image * images_per_s / 1e12
    peak = bf16_peak_tflops(device_description(device)) if device.type == "cuda" else None
    summary = {
        "first_step_s": first_step_s,
        "ms_per_batch": {"min": best * 1e3, "median": median * 1e3},
        "ms_per_image": {"min": best * 1e3 / config.batch_size, "median": median * 1e3 / config.batch_size},
        "images_per_s": images_per_s,
        "gflops_per_image": flops_per_image / 1e9,
        "achieved_tflops": achieved,
        "bf16_peak_tflops": peak,
        "share_of_bf16_peak": achieved / peak if peak else None,
        **record,
    }
    if config.profile:
        summary["profile"] = profile_step(step, device)
    return summary


def benchmark(config: BenchConfig) -> dict[str, Any]:
    """Run the benchmark ``config`` describes; returns a JSON-ready dict (config, environment, FLOPs, modes)."""
    device = parse_device(config.device)
    model = build_model(config, device)
    choice = resolve_precision(config, model, device)
    name = next(name for name, amp in PRECISIONS.items() if amp == choice.amp)
    config = replace(config, precision=name, channels_last=choice.channels_last)
    forward_flops = complexity(model, config.size)["total"]["gflops"] * 1e9
    steps = model_steps(model, random_batch(config.size, config.batch_size, config.num_classes, device),
                        choice.precision, config.compile)  # fmt: skip
    result: dict[str, Any] = {
        "config": asdict(config),
        "precision_choice": choice.to_dict(),
        "environment": environment(device),
        "forward_gflops_per_image": forward_flops / 1e9,
        "mparams": sum(p.numel() for p in model.parameters()) / 1e6,
        "modes": {},
    }
    for mode in config.modes:
        result["modes"][mode] = time_mode(steps[mode], config, device, forward_flops, mode)
    return result


def _memory_text(row: dict[str, Any]) -> str:
    if "peak_allocated_mib" in row:
        return f"{row['peak_allocated_mib']:.0f} MiB allocated (peak)"
    return f"{row['peak_rss_mib']:.0f} MiB RSS (peak, +{row['peak_rss_growth_mib']:.0f})"


def format_result(result: dict[str, Any]) -> str:
    """A plain-text summary of ``benchmark``'s result."""
    config, env = result["config"], result["environment"]
    options = [config["precision"]] + [name for name in ("channels_last", "compile") if config[name]]
    lines = [
        f"AGRNet {config['backbone']} {config['size'][0]}x{config['size'][1]}, batch {config['batch_size']}, "
        f"{'+'.join(options)} on {env['device_name']} ({env['device']}), torch {env['torch']}",
        f"{result['forward_gflops_per_image']:.1f} GFLOPs per image forward, {result['mparams']:.1f} M parameters; "
        f"{config['warmup']} warm-up steps, {config['repeats']} timed",
        f"precision: {result['precision_choice']['name']}: {result['precision_choice']['reason']}",
        f"{'mode':6s} {'ms/batch min':>12s} {'median':>9s} {'ms/img':>8s} {'img/s':>8s} {'TFLOP/s':>8s} "
        f"{'bf16 peak':>9s}  memory",
    ]
    for mode, row in result["modes"].items():
        share = "unknown" if row["share_of_bf16_peak"] is None else f"{100 * row['share_of_bf16_peak']:.1f}%"
        lines.append(
            f"{mode:6s} {row['ms_per_batch']['min']:12.1f} {row['ms_per_batch']['median']:9.1f} "
            f"{row['ms_per_image']['median']:8.2f} {row['images_per_s']:8.2f} {row['achieved_tflops']:8.3f} "
            f"{share:>9s}  {_memory_text(row)}"
        )
        for op in row.get("profile", []):
            lines.append(f"         {100 * op['share']:5.1f}%  {op['self_ms_per_step']:9.2f} ms  {op['name']}")
    return "\n".join(lines)
