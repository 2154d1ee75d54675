"""ONNX export: logits only, any batch size, onnxruntime agrees with PyTorch, the schema travels in the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_model import tiny_checkpoint, tiny_model

import agrnet.export
from agrnet.cli import main
from agrnet.data.labels import LAPA
from agrnet.export import averaging_matrix, check_onnx, export_onnx, read_metadata

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'agrnet[export]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'agrnet[export]')")

SIZE = (96, 96)  # the 1/8 map is 12 x 12, divisible by every pyramid bin (1, 2, 3, 6)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model(LAPA)
    path = export_onnx(model, tmp_path_factory.mktemp("export") / "tiny.onnx", SIZE, LAPA)
    return model, path


def test_onnxruntime_matches_pytorch_for_any_batch(exported):
    model, path = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    for batch in (1, 3):
        images = torch.rand(batch, 3, *SIZE)
        (logits,) = session.run(None, {"images": images.numpy()})
        with torch.inference_mode():
            expected = model(images).logits.numpy()
        assert logits.shape == (batch, LAPA.num_classes, *SIZE)
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-3)


def test_check_onnx_reports_the_difference(exported):
    model, path = exported
    assert check_onnx(model, path) < 1e-3
    other = tiny_model(LAPA)
    torch.nn.init.normal_(other.decoder.classifier.weight)
    with pytest.raises(RuntimeError, match="differs from PyTorch"):
        check_onnx(other, path)


def test_metadata_carries_schema_and_size(exported):
    model, path = exported
    metadata = read_metadata(path)
    assert metadata["schema"] == LAPA
    assert metadata["input_size"] == SIZE
    assert metadata["model_config"] == model.config


@pytest.mark.parametrize(("size", "options"), [((64, 64), {}), ((50, 70), {}), ((64, 64), {"projection": "spatial"})])
def test_sizes_whose_feature_maps_no_pyramid_bin_divides_export_too(tmp_path, size, options):
    """At 64 px the 1/8 map is 8 x 8, which bins of 3 and 6 cells do not divide: the TorchScript exporter refused
    adaptive pooling there before it became matrix products (issue 23)."""
    model = tiny_model(LAPA, **options)
    path = export_onnx(model, tmp_path / "odd.onnx", size, LAPA)
    assert check_onnx(model, path) < 1e-3
    assert read_metadata(path)["input_size"] == size


def test_the_averaging_matrices_are_adaptive_average_pooling():
    images = torch.rand(2, 3, 11, 7)
    for bins in (1, 2, 3, 6, (4, 9)):
        rows, columns = (bins, bins) if isinstance(bins, int) else bins
        left, right = torch.from_numpy(averaging_matrix(11, rows)), torch.from_numpy(averaging_matrix(7, columns))
        pooled = left @ images @ right.T
        torch.testing.assert_close(pooled, torch.nn.functional.adaptive_avg_pool2d(images, bins))


def test_a_failed_export_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("the exporter gave up")

    monkeypatch.setattr(agrnet.export, "_torch_export", fail)
    out = tmp_path / "new" / "folders" / "model.onnx"
    with pytest.raises(RuntimeError, match="the exporter gave up"):
        export_onnx(tiny_model(LAPA), out, SIZE, LAPA)
    assert list(tmp_path.iterdir()) == [], "no file, no folder"


def test_cli_exports_at_the_checkpoints_own_size_by_default(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt", config={"size": 64})
    out = tmp_path / "models" / "model.onnx"
    assert main(["export", str(checkpoint), "--out", str(out), "--check"]) == 0
    assert "N x 3 x 64 x 64" in capsys.readouterr().out
    assert read_metadata(out)["input_size"] == (64, 64)


def test_cli_exports_and_checks(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "model.onnx"
    assert main(["export", str(checkpoint), "--out", str(out), "--size", "96", "96", "--check"]) == 0
    assert "onnxruntime matches PyTorch" in capsys.readouterr().out
    assert read_metadata(out)["schema"] == LAPA


def test_cli_reports_a_missing_checkpoint(tmp_path, capsys):
    assert main(["export", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "none.pt" in capsys.readouterr().err
