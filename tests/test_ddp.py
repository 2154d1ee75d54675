"""Two gloo processes on the CPU (``torchrun``) against one process on the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from agrnet.training import Trainer, preset_config

# No augmentation (both runs must see the same pixels) and frozen BatchNorm: SyncBatchNorm needs CUDA, and with
# running statistics a sample's forward pass does not depend on which process holds the rest of the batch. SGD, as
# AdamW's first steps (about lr * sign(gradient)) would magnify tiny gradient differences.
SETTINGS: dict[str, Any] = {
    "size": 64,
    "batch_size": 4,
    "val_batch_size": 2,
    "num_images": 8,
    "num_val_images": 4,
    "channels": 16,
    "steps": 3,
    "log_every": 1,
    "val_every": 0,
    "rotation": 0.0,
    "scale": (1.0, 1.0),
    "flip": False,
    "freeze_bn": True,
    "optimizer": "sgd",
    "lr": 1e-3,
    "device": "cpu",
    "workers": 0,
    "threads": 1,
}

WORKER = """
import json, sys
import torch
from agrnet.training import Trainer, preset_config

trainer = Trainer(preset_config("synthetic", **json.loads(sys.argv[1])))
trainer.run()
torch.save(trainer.model.state_dict(), f"{sys.argv[2]}/rank{trainer.context.rank}.pt")
"""


def log_lines(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [line for line in lines if line["kind"] == kind]


def losses(run_dir: Path) -> list[float]:
    return [line["loss"] for line in log_lines(run_dir, "train")]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    settings = {**SETTINGS, "out": str(tmp_path / "ddp")}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    result = subprocess.run(
        [*command, json.dumps(settings), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]

    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), name
    assert not (tmp_path / "ddp" / "rank1").exists()
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["batch_size"] == 4

    single = Trainer(preset_config("synthetic", **{**SETTINGS, "out": str(tmp_path / "single")}))
    single.run()
    # Same global batches, same initial weights: the first loss differs only where a term normalises per process
    # (edge balancing, boundary pixels); later steps follow the averaged gradients.
    ddp_losses, single_losses = losses(tmp_path / "ddp"), losses(tmp_path / "single")
    assert len(ddp_losses) == len(single_losses) == 3
    assert ddp_losses[0] == pytest.approx(single_losses[0], rel=1e-3)
    assert ddp_losses == pytest.approx(single_losses, rel=2e-2)
    single_state = single.model.state_dict()
    # Three SGD steps at lr 1e-3 move weights by about 1e-3; the per-process normalisations leave about 1e-5.
    for name, tensor in rank0.items():
        if tensor.is_floating_point():
            assert torch.allclose(tensor, single_state[name], atol=1e-4), name
    # Validation shards the 4 images over the processes and sums their confusion matrices.
    ddp_val, single_val = log_lines(tmp_path / "ddp", "val")[0], log_lines(tmp_path / "single", "val")[0]
    assert ddp_val["pixels"] == single_val["pixels"] == 4 * 64 * 64
    assert ddp_val["mean_f1"] == pytest.approx(single_val["mean_f1"], abs=1e-2)
