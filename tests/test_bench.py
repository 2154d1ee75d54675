"""``agrnet bench`` and the benchmark scripts: they run on CPU with tiny settings and report what they claim."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from agrnet.bench import BenchConfig, benchmark, bf16_peak_tflops, random_batch
from agrnet.cli import main
from agrnet.model.graph import gather_vertices, select_vertices

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    """Import a script of ``benchmarks/`` (not a package) by path."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_command_times_train_and_infer_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", "--backbone", "resnet18", "--size", "64", "--batch-size", "2", "--device", "cpu"]
    assert main([*argv, "--mode", "both", "--warmup", "1", "--repeats", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["size"] == [64, 64]
    assert set(result["modes"]) == {"train", "infer"}
    assert result["forward_gflops_per_image"] > 0
    for key in ("torch", "device_name", "git_commit", "command", "timestamp"):
        assert key in result["environment"]
    for mode, row in result["modes"].items():
        assert 0 < row["ms_per_batch"]["min"] <= row["ms_per_batch"]["median"]
        assert row["images_per_s"] == pytest.approx(2000 / row["ms_per_batch"]["median"])
        factor = 3 if mode == "train" else 1
        assert row["gflops_per_image"] == pytest.approx(factor * result["forward_gflops_per_image"])
        assert row["achieved_tflops"] == pytest.approx(row["gflops_per_image"] * row["images_per_s"] / 1e3)
        assert row["share_of_bf16_peak"] is None
        assert row["peak_rss_mib"] >= row["peak_rss_growth_mib"] >= 0
    assert "infer" in capsys.readouterr().out


def test_benchmark_one_mode_bf16_channels_last_baseline() -> None:
    config = BenchConfig(
        backbone="resnet18",
        size=(48, 48),
        batch_size=1,
        device="cpu",
        precision="bf16",
        channels_last=True,
        mode="infer",
        warmup=0,
        repeats=1,
        use_graph=False,
        use_edge=False,
    )
    result = benchmark(config)
    assert list(result["modes"]) == ["infer"]
    assert result["modes"]["infer"]["first_step_s"] is None
    assert result["config"]["precision"] == "bf16"
    json.dumps(result)


@pytest.mark.parametrize(
    ("field", "value"),
    [("precision", "fp8"), ("mode", "eval"), ("backbone", "vgg16"), ("repeats", 0), ("size", (16, 16))],
)
def test_config_rejects_bad_values_by_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BenchConfig(**{field: value})


def test_missing_cuda_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here, so asking for it is not an error")
    with pytest.raises(ValueError, match="CUDA is not available"):
        benchmark(BenchConfig(backbone="resnet18", size=(32, 32), device="cuda"))


def test_bf16_peak_table_matches_specific_names_first() -> None:
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bf16_peak_tflops("NVIDIA H200") == 989.0
    assert bf16_peak_tflops("NVIDIA GeForce GTX 1080") is None


def test_random_batch_labels_are_patches_with_edges_between_them() -> None:
    batch = random_batch((40, 56), 2, 5, torch.device("cpu"))
    assert batch["image"].shape == (2, 3, 40, 56)
    assert batch["label"].shape == batch["edge"].shape == (2, 40, 56)
    assert 0 <= batch["label"].min() and batch["label"].max() < 5
    # Each 16 x 16 patch holds one class, so no pixel strictly inside a patch is an edge.
    assert not batch["edge"][:, 1:15, 1:15].any()


def test_projection_benchmark_loop_matches_library_vertices() -> None:
    module = _load("bench_projection")
    z0 = torch.randn(2, 5, 9, 11)
    xne = torch.randn(2, 8, 9, 11)
    vertices, index = module.loop_select_and_gather(z0, xne, 3)
    expected_index = select_vertices(z0, 3)
    assert torch.equal(index, expected_index)
    assert torch.equal(vertices, gather_vertices(xne, expected_index))
    # Class-major: vertex c*K + j is the j-th best pixel of class c, and it carries Xne at that pixel.
    best = z0[1, 4].flatten().argmax()
    assert index[1, 12] == best
    assert torch.equal(vertices[1, 12], xne[1, :].flatten(1)[:, best])


def test_projection_benchmark_runs_and_reports_ratios() -> None:
    module = _load("bench_projection")
    results = module.compare(batch=1, num_classes=3, top_k=2, channels=8, size=12, min_run_time=0.02, rounds=1)
    assert len(results) == 4
    for row in results.values():
        assert row["vectorised"]["min_ms"] > 0 and row["loop"]["min_ms"] > 0
        assert row["ratio_min"] == pytest.approx(row["loop"]["min_ms"] / row["vectorised"]["min_ms"])
    assert "loop/vec" in module.format_results(results)


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_stage_on_cpu(tmp_path: Path) -> None:
    module = _load("gpu_check")
    out = tmp_path / "gpu_results.json"
    assert module.main(["--smoke", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["smoke"] and not result["errors"]
    assert result["complexity"]["total"]["gflops"] > 0
    expected = {"fp32", "bf16_channels_last"} | ({"bf16_channels_last_compile"} if torch.cuda.is_available() else set())
    assert set(result["runs"]) == expected
    assert set(result["summary"]["table"]) == {f"{name}/{mode}" for name in expected for mode in ("train", "infer")}
    assert result["runs"]["bf16_channels_last"]["modes"]["train"]["profile"]
    assert len(result["projection"]) == 4
    assert set(result["summary"]["checks"]["projection_loop_over_vectorised_min"]) == set(result["projection"])
    assert result["save_as"].startswith("book/results/gpu_") and result["save_as"].endswith(".json")


def test_gpu_check_result_name_is_a_safe_file_name() -> None:
    module = _load("gpu_check")
    assert module.result_name("NVIDIA H200") == "book/results/gpu_nvidia_h200.json"
    assert module.result_name("NVIDIA H100 80GB HBM3") == "book/results/gpu_nvidia_h100_80gb_hbm3.json"
