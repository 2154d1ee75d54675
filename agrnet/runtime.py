"""Where and how a run computes: the device a name means, the mixed-precision dtypes, and the precision a run
picks by measuring this machine.

Training, evaluation, inference and the benchmarks all import from here (and nothing here imports them), so the
dependencies point one way.

**Precision chosen by measurement.** ``amp="auto"`` and ``channels_last="auto"`` (the defaults of training, of
``agrnet bench`` and of every experiment) become concrete by ``choose_precision``: the candidates are fp32, plus
bf16 autocast where the device computes bf16 natively (CUDA with bf16 support; a CPU with AVX512-BF16 or AMX), each
with and without channels_last; a few timed steps of the actual model (``probe``) measure them, and ``decide``
keeps fp32 unless another candidate is faster by ``MARGIN``. A CPU that only emulates bf16 (an AMD EPYC without
AVX-512, for one, where a bf16 step was measured over 7 times slower than fp32) is never probed in bf16: one
emulated step can cost a minute. The decision, the reason and the timings are a ``PrecisionChoice`` that training
writes into ``config.json``, its checkpoints and the experiments' results files. Probe results are cached under
``agrnet.files.default_cache_dir()`` by machine, torch version, model and input shape, so the many trainings of
an experiment measure once.
"""

from __future__ import annotations

import itertools
import json
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from agrnet.files import default_cache_dir, write_json

AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES: tuple[str, ...] = (*AMP_DTYPES, "auto")
MARGIN = 0.10
"""A candidate other than fp32 (contiguous) is chosen only when its fastest step is this fraction faster."""


def parse_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """The device a ``--device`` value names, checked to exist on this machine.

    ``"auto"`` is this process's CUDA device (``cuda:local_rank``) when CUDA is available, else the CPU; a bare
    ``"cuda"`` is ``cuda:local_rank``. Errors are ValueErrors naming ``--device`` and the problem.
    """
    text = str(name)
    if text == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError as error:
        raise ValueError(f"--device {text!r}: not a device name (use auto, cpu, cuda, cuda:N or mps)") from error
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {text!r}: unsupported device type {device.type!r} (use cpu, cuda or mps)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {text!r}: CUDA is not available on this machine (use --device cpu or auto)")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"--device {text!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {text!r}: MPS is not available on this machine (use --device cpu or auto)")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for the device to finish its queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_flags() -> set[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: torch.device, flags: set[str] | None = None) -> bool:
    """Whether ``device`` computes bf16 in hardware: CUDA with bf16 support, or a CPU with AVX512-BF16, AMX-BF16
    (x86) or the BF16 extension (Arm). Unknown CPUs count as emulating bf16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


@dataclass(frozen=True)
class Precision:
    """One way to run a step: autocast dtype ``amp`` ("none", "bf16", "fp16") and the channels_last layout."""

    amp: str
    channels_last: bool

    @property
    def name(self) -> str:
        """``fp32``, ``bf16``, ``fp32+channels_last``, ..."""
        return ("fp32" if self.amp == "none" else self.amp) + ("+channels_last" if self.channels_last else "")

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, None for fp32."""
        return AMP_DTYPES[self.amp]


FP32 = Precision("none", False)


@dataclass
class PrecisionChoice:
    """What ``choose_precision`` decided and why: the precision, the reason, the fastest seconds per step of each
    probed candidate (by name; empty when nothing was probed), whether the device has native bf16, and the probe's
    settings."""

    amp: str
    channels_last: bool
    reason: str
    timings_s: dict[str, float] = field(default_factory=dict)
    native_bf16: bool = False
    device: str = ""
    probe: dict[str, Any] = field(default_factory=dict)

    @property
    def precision(self) -> Precision:
        """The chosen ``Precision``."""
        return Precision(self.amp, self.channels_last)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what config.json, checkpoints and results files record)."""
        return {"name": self.precision.name, **asdict(self)}


def candidates(device: torch.device, amp: str, channels_last: bool | str, bf16_native: bool) -> list[Precision]:
    """The precisions to consider for the settings ``amp`` and ``channels_last`` ("auto" or fixed)."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp: expected one of {AMP_CHOICES}, got {amp!r}")
    if channels_last not in (True, False, "auto"):
        raise ValueError(f"channels_last: expected true, false or 'auto', got {channels_last!r}")
    amps = [amp] if amp != "auto" else ["none", *(["bf16"] if bf16_native else [])]
    layouts = [channels_last] if channels_last != "auto" else [False, True]
    return [Precision(a, bool(c)) for a, c in itertools.product(amps, layouts)]


def decide(timings: Mapping[Precision, float], margin: float = MARGIN) -> tuple[Precision, str]:
    """The precision to use given seconds per step of each candidate, and a sentence saying why.

    The reference is fp32 in the contiguous layout (or the first candidate, when fp32 is not among them); the
    fastest candidate replaces it only when faster by ``margin``, so noise never picks a precision slower than
    fp32.
    """
    if not timings:
        raise ValueError("decide: no timings")
    reference = FP32 if FP32 in timings else next(iter(timings))
    fastest = min(timings, key=timings.__getitem__)
    listed = ", ".join(f"{p.name} {t:.3g} s" for p, t in timings.items())
    if fastest != reference and timings[fastest] <= (1 - margin) * timings[reference]:
        ratio = timings[reference] / timings[fastest]
        return fastest, f"{fastest.name} is {ratio:.2f}x faster than {reference.name} per step ({listed})"
    return reference, f"no candidate beat {reference.name} by {100 * margin:.0f} % per step ({listed})"


def probe(
    make_step: Callable[[Precision], Callable[[], None]],
    options: Sequence[Precision],
    device: torch.device,
    warmup: int = 1,
    repeats: int = 3,
) -> dict[Precision, float]:
    """The fastest of ``repeats`` timed calls of ``make_step(option)()`` per option, after ``warmup`` untimed ones.

    The options' timed calls alternate (A B A B ...) and the minimum is kept, so a burst of other load on a
    shared machine slows one call of each rather than all the calls of one option. The random streams (torch's
    CPU and CUDA generators) are left as they were, so probing changes nothing in the run that follows.
    """
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        steps = {option: make_step(option) for option in options}
        for step in steps.values():
            for _ in range(warmup):
                step()
        times: dict[Precision, list[float]] = {option: [] for option in options}
        for _ in range(repeats):
            for option, step in steps.items():
                synchronize(device)
                start = time.perf_counter()
                step()
                synchronize(device)
                times[option].append(time.perf_counter() - start)
        del steps
    return {option: min(values) for option, values in times.items()}


def device_description(device: torch.device) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo (platform's processor string elsewhere)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cache_key(device: torch.device, key: Mapping[str, Any]) -> str:
    identity = {
        "device": device_description(device), "flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16",
        "amx_bf16", "bf16"}), "torch": torch.__version__, "threads": torch.get_num_threads(), **key,
    }  # fmt: skip
    return json.dumps(identity, sort_keys=True, default=str)


def choose_precision(
    amp: str,
    channels_last: bool | str,
    device: torch.device,
    make_step: Callable[[Precision], Callable[[], None]],
    key: Mapping[str, Any],
    timings: Mapping[Precision, float] | None = None,
    cache: Path | None = None,
    flags: set[str] | None = None,
) -> PrecisionChoice:
    """Resolve ``amp`` / ``channels_last`` ("auto" or fixed) for a step built by ``make_step`` on ``device``.

    ``key`` describes the step (model configuration, input shape) for the probe cache at ``cache`` (default
    ``default_cache_dir() / "precision-probes.json"``). ``timings`` injects measured seconds per candidate instead of
    probing (for tests); ``flags`` injects the CPU's feature flags.
    """
    bf16 = native_bf16(device, flags)
    options = candidates(device, amp, channels_last, bf16)
    why_not_bf16 = "" if amp != "auto" or bf16 else (
        "bf16 not probed: this device has no native bf16 (no AVX512-BF16 or AMX on this CPU), so it would be "
        "emulated and slower; "
    )  # fmt: skip
    settings = {"warmup": 1, "repeats": 3, "statistic": "min", **key}
    common = {"native_bf16": bf16, "device": device_description(device), "probe": settings}
    if len(options) == 1:
        only = options[0]
        return PrecisionChoice(only.amp, only.channels_last, why_not_bf16 + "fixed by the configuration", **common)
    cache = cache or default_cache_dir() / "precision-probes.json"
    cache_key = _cache_key(device, {**key, "options": [o.name for o in options]})
    note = ""
    if timings is None:
        stored = json.loads(cache.read_text()) if cache.is_file() else {}
        if cache_key in stored:
            by_name = stored[cache_key]["timings_s"]
            timings = {option: by_name[option.name] for option in options}
            note = f" (probed {stored[cache_key]['date']}, cached in {cache})"
        else:
            timings = probe(make_step, options, device)
            stored[cache_key] = {
                "timings_s": {o.name: t for o, t in timings.items()},
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            write_json(cache, stored)
    chosen, reason = decide(timings)
    return PrecisionChoice(
        chosen.amp, chosen.channels_last, why_not_bf16 + reason + note,
        {o.name: t for o, t in timings.items()}, **common,
    )  # fmt: skip
