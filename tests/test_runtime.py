"""Devices and precision chosen by measurement: the decision on injected timings, the probe, its cache, and what a
training records."""

import json
from pathlib import Path

import pytest
import torch

from agrnet import runtime
from agrnet.config import preset_config
from agrnet.runtime import FP32, Precision, candidates, choose_precision, decide, parse_device
from agrnet.training import train

BF16 = Precision("bf16", False)
BF16_CL = Precision("bf16", True)
FP32_CL = Precision("none", True)
CPU = torch.device("cpu")


def test_decide_keeps_fp32_unless_another_precision_is_clearly_faster() -> None:
    # An AMD EPYC without AVX-512: emulated bf16 was measured over 7x slower than fp32.
    chosen, reason = decide({FP32: 13.7, BF16: 100.0, BF16_CL: 104.0})
    assert chosen == FP32 and "no candidate beat fp32" in reason and "bf16 100 s" in reason
    # An AMX Xeon: bf16 + channels_last 4.6x faster.
    chosen, reason = decide({FP32: 5.69, FP32_CL: 5.5, BF16: 1.6, BF16_CL: 1.23})
    assert chosen == BF16_CL and "4.63x faster than fp32" in reason
    # Faster, but within the 10 % margin: noise must not pick a precision that may be slower.
    assert decide({FP32: 1.0, FP32_CL: 0.95})[0] == FP32
    assert decide({FP32: 1.0, FP32_CL: 0.85})[0] == FP32_CL
    with pytest.raises(ValueError, match="no timings"):
        decide({})


def test_candidates_probe_bf16_only_where_it_is_native() -> None:
    assert candidates(CPU, "auto", "auto", bf16_native=False) == [FP32, FP32_CL]
    assert candidates(CPU, "auto", "auto", bf16_native=True) == [FP32, FP32_CL, BF16, BF16_CL]
    assert candidates(CPU, "auto", False, bf16_native=True) == [FP32, BF16]
    assert candidates(CPU, "bf16", True, bf16_native=False) == [BF16_CL]
    with pytest.raises(ValueError, match="amp"):
        candidates(CPU, "fp8", "auto", bf16_native=True)
    assert runtime.native_bf16(CPU, flags={"avx2", "fma"}) is False
    assert runtime.native_bf16(CPU, flags={"avx512f", "avx512_bf16"}) is True
    assert runtime.native_bf16(CPU, flags={"amx_bf16", "amx_tile"}) is True


def _never_called(precision: Precision):
    raise AssertionError(f"no step should be built for {precision.name}")


def test_choose_precision_records_the_decision_and_the_timings(tmp_path: Path) -> None:
    cache = tmp_path / "probes.json"
    amx = {"avx512f", "avx512_bf16", "amx_bf16"}
    timings = {FP32: 5.69, FP32_CL: 5.6, BF16: 1.5, BF16_CL: 1.23}
    choice = choose_precision("auto", "auto", CPU, _never_called, {"size": [8, 8]}, timings, cache, flags=amx)
    assert (choice.amp, choice.channels_last) == ("bf16", True) and choice.native_bf16
    record = choice.to_dict()
    assert record["name"] == "bf16+channels_last" and record["timings_s"]["fp32"] == 5.69
    assert json.loads(json.dumps(record)) == record

    slow = {FP32: 13.7, FP32_CL: 14.0}
    choice = choose_precision("auto", "auto", CPU, _never_called, {"size": [8, 8]}, slow, cache, flags={"avx2"})
    assert choice.precision == FP32 and not choice.native_bf16
    assert "bf16 not probed" in choice.reason and set(choice.timings_s) == {"fp32", "fp32+channels_last"}

    fixed = choose_precision("none", False, CPU, _never_called, {}, cache=cache, flags={"avx2"})
    assert fixed.precision == FP32 and "fixed by the configuration" in fixed.reason and fixed.timings_s == {}
    assert not cache.exists(), "injected timings and fixed settings never touch the cache"


def test_the_probe_times_real_steps_once_and_caches_them(tmp_path: Path) -> None:
    built: list[str] = []

    def make_step(precision: Precision):
        built.append(precision.name)
        return lambda: torch.ones(64, 64) @ torch.ones(64, 64)

    cache = tmp_path / "probes.json"
    first = choose_precision("auto", "auto", CPU, make_step, {"size": [1, 1]}, cache=cache, flags={"avx2"})
    assert built == ["fp32", "fp32+channels_last"] and set(first.timings_s) == {"fp32", "fp32+channels_last"}
    assert all(t > 0 for t in first.timings_s.values())
    again = choose_precision("auto", "auto", CPU, make_step, {"size": [1, 1]}, cache=cache, flags={"avx2"})
    assert built == ["fp32", "fp32+channels_last"], "the second choice reads the cache"
    assert again.timings_s == first.timings_s and "cached" in again.reason
    choose_precision("auto", "auto", CPU, make_step, {"size": [2, 2]}, cache=cache, flags={"avx2"})
    assert len(built) == 4, "another input shape is probed again"


def test_the_probe_leaves_the_random_streams_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    runtime.probe(lambda p: (lambda: torch.rand(100)), [FP32, FP32_CL], CPU, warmup=1, repeats=1)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(("bf16_seconds", "expected"), [(100.0, "none"), (0.001, "bf16")])
def test_training_picks_and_records_its_precision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bf16_seconds: float, expected: str
) -> None:
    """A CPU whose flags claim native bf16 and whose probe (injected) finds bf16 slower / faster than fp32."""
    monkeypatch.setenv("AGRNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512_bf16"})
    fake = {FP32: 1.0, FP32_CL: 1.05, BF16: bf16_seconds, BF16_CL: bf16_seconds * 1.1}
    monkeypatch.setattr(runtime, "probe", lambda make_step, options, device: {o: fake[o] for o in options})
    config = preset_config(
        "synthetic", size=32, steps=2, num_images=4, num_val_images=2, batch_size=2, channels=8, val_every=0,
        checkpoint_every=2, device="cpu", threads=1, out=str(tmp_path / "run"),
    )  # fmt: skip
    assert config.amp == "auto" and config.channels_last == "auto"
    run_dir = train(config)
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded["amp"] == "auto" and recorded["precision"]["amp"] == expected
    assert recorded["precision"]["channels_last"] is False
    assert recorded["precision"]["timings_s"]["bf16"] == bf16_seconds
    checkpoint = torch.load(run_dir / "last.pt", weights_only=True)
    assert checkpoint["precision"] == recorded["precision"]
    start = json.loads((run_dir / "log.jsonl").read_text().splitlines()[0])
    assert start["precision"] == ("fp32" if expected == "none" else "bf16")


def test_parse_device_errors_name_the_option() -> None:
    assert parse_device("cpu") == CPU
    assert parse_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else CPU)
    names = ["banana", "tpu", f"cuda:{torch.cuda.device_count() + 7}"]
    names += [] if torch.cuda.is_available() else ["cuda"]
    for name in names:
        with pytest.raises(ValueError, match=f"--device '{name}'"):
            parse_device(name)
