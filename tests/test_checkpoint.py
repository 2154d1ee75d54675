"""Atomic writes, safe loading, clear errors and model rebuilding."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from agrnet.checkpoint import (
    load_checkpoint,
    load_model,
    model_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unwrap_model,
)
from agrnet.data.labels import HELEN
from agrnet.model import AGRNet


@pytest.fixture(scope="module")
def small_model() -> AGRNet:
    return AGRNet(num_classes=HELEN.num_classes, backbone="resnet18", channels=16).eval()


def test_save_writes_atomically_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, {"step": 1, "model": {}, "model_config": {}, "schema": {}})
    save_checkpoint(path, {"step": 2, "model": {}, "model_config": {}, "schema": {}})
    assert load_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1, "model": {}, "model_config": {}, "schema": {}})

    def crash(obj: object, file: object) -> None:
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_load_model_rebuilds_the_same_network(tmp_path: Path, small_model: AGRNet) -> None:
    path = save_checkpoint(tmp_path / "best.pt", {**model_state(small_model, HELEN), "step": 7})
    model, schema, payload = load_model(path)
    assert schema == HELEN
    assert payload["step"] == 7
    assert payload["model_config"] == small_model.config
    assert not model.training
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(images).logits, small_model(images).logits)


def test_model_state_unwraps_compiled_and_ddp_style_wrappers(small_model: AGRNet) -> None:
    wrapper = torch.nn.Module()
    wrapper.module = small_model
    assert unwrap_model(wrapper) is small_model
    assert model_state(wrapper, HELEN)["model"].keys() == small_model.state_dict().keys()


def test_missing_checkpoint_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path: Path, small_model: AGRNet) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(RuntimeError, match="garbage.pt: cannot be read"):
        load_checkpoint(garbage)
    whole = save_checkpoint(tmp_path / "whole.pt", model_state(small_model, HELEN)).read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(RuntimeError, match="truncated.pt: cannot be read"):
        load_model(truncated)


def test_foreign_and_unsafe_files_are_refused(tmp_path: Path) -> None:
    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(ValueError, match="tensor.pt: not an agrnet checkpoint"):
        load_checkpoint(tensor_file)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="other.pt: not an agrnet checkpoint .missing model, model_config, schema"):
        load_checkpoint(other)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": {}, "model_config": {}, "schema": {}, "thing": Path("x")}, unsafe)
    with pytest.raises(RuntimeError, match="unsafe.pt: cannot be read"):
        load_checkpoint(unsafe)


def test_weights_that_do_not_fit_the_config_are_reported(tmp_path: Path, small_model: AGRNet) -> None:
    state = model_state(small_model, HELEN)
    state["model_config"] = {**state["model_config"], "channels": 32}
    path = save_checkpoint(tmp_path / "mismatch.pt", state)
    with pytest.raises(RuntimeError, match="mismatch.pt: weights do not fit"):
        load_model(path)


def draw() -> tuple[float, float, float]:
    # The legacy global numpy generator is what rng_state saves.
    return torch.rand(()).item(), float(np.random.rand()), random.random()  # noqa: NPY002


def test_rng_state_round_trips_through_a_safe_checkpoint(tmp_path: Path) -> None:
    np.random.randn()  # noqa: NPY002 (leaves a cached gaussian in the global state)
    path = save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state(), "model": {}, "model_config": {}, "schema": {}})
    expected = draw()
    draw()
    set_rng_state(load_checkpoint(path)["rng"])
    assert draw() == expected
