"""Training on synthetic faces: learning, the run directory, exact resume, the NaN stop, configuration and CLI."""

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import agrnet.losses
from agrnet.checkpoint import load_checkpoint, load_model
from agrnet.cli import main as cli_main
from agrnet.config import PRESETS, TrainConfig, coerce_value, parse_overrides, preset_config
from agrnet.data.labels import LAPA
from agrnet.training import NonFiniteLossError, Trainer, train


def tiny_config(out: Path, **overrides: Any) -> TrainConfig:
    """A ResNet-18 at 64 px, batch 2: a few steps take seconds on 2 CPU cores."""
    settings = {
        "size": 64,
        "batch_size": 2,
        "val_batch_size": 2,
        "num_images": 2,
        "num_val_images": 2,
        "channels": 16,
        "steps": 4,
        "log_every": 1,
        "val_every": 0,
        "checkpoint_every": 100,
        "device": "cpu",
        "workers": 0,
        "threads": 1,
        "amp": "none",
        "channels_last": False,
        "out": str(out),
    }
    return preset_config("synthetic", **{**settings, **overrides})


def read_log(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [line for line in lines if line["kind"] == kind]


def test_a_few_steps_lower_the_loss_and_fill_the_run_directory(tmp_path: Path) -> None:
    # One fixed batch (2 images, no augmentation): the loss must go down.
    config = tiny_config(tmp_path / "run", steps=8, rotation=0.0, scale=(1.0, 1.0), flip=False)
    run_dir = train(config)
    assert run_dir == tmp_path / "run"
    assert TrainConfig.from_json(run_dir / "config.json") == config

    steps = read_log(run_dir, "train")
    assert [line["step"] for line in steps] == list(range(1, 9))
    assert set(steps[0]) >= {"lr", "loss", *agrnet.losses.TERMS, "images_per_s"}
    assert steps[-1]["loss"] < 0.9 * steps[0]["loss"]
    assert steps[-1]["final"] < steps[0]["final"]
    # Poly schedule: lr_s = lr * (1 - s / steps) ** 0.9 for the update of step s + 1.
    for line in steps:
        assert line["lr"] == pytest.approx(config.lr * (1 - (line["step"] - 1) / 8) ** 0.9, rel=1e-6)
    # Eq. (11) with the paper's weights.
    weights = dict(zip(agrnet.losses.TERMS, agrnet.losses.PAPER_WEIGHTS, strict=True))
    first = steps[0]
    assert first["loss"] == pytest.approx(sum(w * first[name] for name, w in weights.items()), rel=1e-5)

    validations = read_log(run_dir, "val")
    assert [line["step"] for line in validations] == [8]
    assert 0.0 <= validations[0]["mean_f1"] <= 1.0
    assert set(validations[0]["group_f1"]) == set(LAPA.groups)

    model, schema, payload = load_model(run_dir / "best.pt")
    assert schema == LAPA and payload["step"] == 8 and model.config["backbone"] == "resnet18"
    assert payload["best_mean_f1"] == pytest.approx(validations[0]["mean_f1"])
    last = load_checkpoint(run_dir / "last.pt")
    assert {"optimizer", "scheduler", "scaler", "rng", "config"} <= set(last)
    assert last["config"]["steps"] == 8


def test_bf16_autocast_and_channels_last_train_on_the_cpu(tmp_path: Path) -> None:
    run_dir = train(tiny_config(tmp_path / "run", steps=2, amp="bf16", channels_last=True))
    steps = read_log(run_dir, "train")
    assert len(steps) == 2 and all(math.isfinite(line["loss"]) for line in steps)
    assert read_log(run_dir, "val")[0]["mean_f1"] is not None


def test_a_time_cap_ends_the_run_cleanly_and_says_so(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", steps=10_000, time_cap_s=2.0, checkpoint_every=100_000)
    run_dir = train(config)
    steps = read_log(run_dir, "train")
    payload = load_checkpoint(run_dir / "last.pt")
    assert 1 <= payload["step"] == steps[-1]["step"] < config.steps
    assert payload["elapsed_s"] >= 2.0 and payload["stopped_by"] == "time_cap"
    (stop,) = read_log(run_dir, "stop")
    assert stop == {"kind": "stop", "step": payload["step"], "reason": "time_cap", "elapsed_s": stop["elapsed_s"],
                    "time_cap_s": 2.0}  # fmt: skip
    assert [line["step"] for line in read_log(run_dir, "val")] == [payload["step"]]
    # The cap is not a schedule: the learning rate follows the steps (still ~lr after a few of 10,000).
    for line in steps:
        assert line["lr"] == pytest.approx(config.lr * (1 - (line["step"] - 1) / config.steps) ** 0.9, rel=1e-6)
    uncapped = train(tiny_config(tmp_path / "uncapped", steps=2))
    assert load_checkpoint(uncapped / "last.pt")["stopped_by"] is None and not read_log(uncapped, "stop")
    with pytest.raises(ValueError, match="time_cap_s"):
        tiny_config(tmp_path / "bad", time_cap_s=0.0)


def test_restarting_a_finished_run_directory_without_resume_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"")
    with pytest.raises(FileExistsError, match="--resume auto"):
        train(tiny_config(tmp_path / "run"))


@pytest.mark.slow
def test_resume_continues_bit_identically(tmp_path: Path) -> None:
    # 8 images, batch 2: 4 steps per epoch; stop at step 3 (mid-epoch) of 6, with augmentation on.
    common = {"num_images": 8, "steps": 6, "deterministic": True, "log_every": 2, "checkpoint_every": 2}
    uninterrupted = train(tiny_config(tmp_path / "whole", **common))
    stopped = train(tiny_config(tmp_path / "parts", stop_after=3, **common))
    assert load_checkpoint(stopped / "last.pt")["step"] == 3
    resumed = train(tiny_config(tmp_path / "parts", resume="auto", **common))

    expected, actual = load_checkpoint(uninterrupted / "last.pt"), load_checkpoint(resumed / "last.pt")
    assert actual["step"] == 6
    for name, tensor in expected["model"].items():
        assert torch.equal(tensor, actual["model"][name]), name
    for index, state in expected["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, actual["optimizer"]["state"][index][key]), (index, key)
    assert [line["loss"] for line in read_log(resumed, "train")] == [
        line["loss"] for line in read_log(uninterrupted, "train")
    ]


def test_validation_leaves_the_training_random_streams_alone(tmp_path: Path) -> None:
    plain = train(tiny_config(tmp_path / "plain", steps=3, deterministic=True))
    validated = train(tiny_config(tmp_path / "validated", steps=3, val_every=1, deterministic=True))
    assert [line["step"] for line in read_log(validated, "val")] == [1, 2, 3]
    expected, actual = load_checkpoint(plain / "last.pt")["model"], load_checkpoint(validated / "last.pt")["model"]
    assert all(torch.equal(tensor, actual[name]) for name, tensor in expected.items())


def test_a_nan_loss_stops_the_run_naming_the_term_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = agrnet.losses.discriminative_loss
    calls = {"n": 0}

    def poisoned(vertices: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
        calls["n"] += 1
        value = real(vertices, delta)
        return value * math.nan if calls["n"] == 3 else value

    monkeypatch.setattr(agrnet.losses, "discriminative_loss", poisoned)
    # Numbers reach the host every 4 steps; checkpoints every 2: the NaN of step 3 is caught at step 4.
    config = tiny_config(tmp_path / "run", steps=6, log_every=4, checkpoint_every=2)
    with pytest.raises(NonFiniteLossError, match=r"step 3: .*discriminative.*last.pt"):
        train(config)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["step"] == 2
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    assert read_log(tmp_path / "run", "error") == [{"kind": "error", "step": 3, "non_finite": ["discriminative"]}]
    assert [line["step"] for line in read_log(tmp_path / "run", "train")] == [1, 2]


def test_cli_trains_with_flags_and_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["train", "--steps", "2", "--size", "64", "--batch-size", "2", "--device", "cpu", "--out", str(out)]
    argv += ["--val-every", "0", "--workers", "0", "--set", "num_images=2", "--set", "num_val_images=2"]
    argv += ["--set", "channels=16", "--set", "threads=1", "--set", "scale=0.9,1.1", "--no-channels-last"]
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out)
    config = json.loads((out / "config.json").read_text())
    assert (config["preset"], config["steps"], config["size"], config["scale"]) == ("synthetic", 2, 64, [0.9, 1.1])
    assert config["backbone"] == "resnet18" and config["channels"] == 16
    assert [line["step"] for line in read_log(out, "train")] == [1, 2]
    # The same directory again without --resume is refused with a clear message.
    assert cli_main(argv) == 1
    assert "--resume auto" in capsys.readouterr().err


def test_presets_build_and_real_data_presets_keep_the_paper_settings() -> None:
    assert set(PRESETS) == {"synthetic", "lapa", "celebamask-hq", "helen", "lip", "fasseg"}
    for name in PRESETS:
        config = preset_config(name)
        assert config.preset == name
    lapa = preset_config("lapa")
    paper = ("sgd", 1e-3, 0.9, 5e-4, 0.9, 8, 473, "resnet101", "imagenet", (1.0, 1.0, 1.0, 0.5, 0.1))
    settings = (lapa.optimizer, lapa.lr, lapa.momentum, lapa.weight_decay, lapa.poly_power, lapa.batch_size)
    settings += (lapa.size, lapa.backbone, lapa.pretrained_backbone, lapa.loss_weights)
    assert settings == paper
    assert (lapa.rotation, lapa.scale) == (30.0, (0.75, 1.25))
    fasseg = preset_config("fasseg")
    assert (fasseg.train_split, fasseg.val_split) == ("fit", "val"), "FASSEG chooses on its val part, never on test"


def test_override_values_are_typed_from_the_config_fields() -> None:
    assert coerce_value("steps", "12") == 12
    assert coerce_value("lr", "3e-4") == pytest.approx(3e-4)
    assert coerce_value("flip", "false") is False
    assert coerce_value("pretrained_backbone", "none") is None
    assert coerce_value("grad_clip", "1.5") == 1.5
    assert coerce_value("loss_weights", "1,1,1,0.5,0") == (1.0, 1.0, 1.0, 0.5, 0.0)
    assert parse_overrides(["use-boundary=no", "backbone=resnet34"]) == {"use_boundary": False, "backbone": "resnet34"}
    with pytest.raises(ValueError, match="unknown config field 'stepz'"):
        coerce_value("stepz", "1")
    with pytest.raises(ValueError, match="steps=many"):
        coerce_value("steps", "many")
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["steps"])


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="amp"):
        preset_config(amp="fp8")
    with pytest.raises(ValueError, match="optimizer"):
        preset_config(optimizer="lamb")
    with pytest.raises(ValueError, match="stop_after"):
        preset_config(steps=5, stop_after=6)
    with pytest.raises(ValueError, match="loss_weights"):
        preset_config(loss_weights=(1.0,))
    with pytest.raises(ValueError, match="preset"):
        preset_config("imagenet")
    with pytest.raises(ValueError, match="unknown config field"):
        preset_config(stepz=3)
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        train(TrainConfig(amp="fp16", device="cpu", out="unused"))


def test_appearance_augmentation_is_a_setting_of_the_training(tmp_path: Path) -> None:
    assert parse_overrides(["augment=photometric,glasses"]) == {"augment": ("photometric", "glasses")}
    with pytest.raises(ValueError, match=r"augment: unknown \['mustache'\]"):
        preset_config("synthetic", augment=("mustache",))
    with pytest.raises(ValueError, match="augment_p"):
        preset_config("synthetic", augment_p=1.5)
    config = preset_config("synthetic", augment=("background",), augment_p=1.0, num_images=4, size=32)
    transform = Trainer(dataclasses.replace(config, out=str(tmp_path))).train_set.transform
    assert transform.appearance is not None and transform.appearance.kinds == ("background",)
