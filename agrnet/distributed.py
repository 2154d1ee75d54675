"""The little that DistributedDataParallel training needs beyond ``torch.distributed``: process-group setup from
the ``torchrun`` environment, a resumable sampler, and collective helpers that are no-ops in a single process.

``torchrun --nproc_per_node=N -m agrnet train ...`` sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous
variables; without them (or with ``WORLD_SIZE=1``) everything here behaves as a single process.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from agrnet.runtime import parse_device


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank, the number of processes and the device it computes on."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_distributed(self) -> bool:
        """True in a multi-process run with an initialised process group."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that writes files and shows progress."""
        return self.rank == 0


def setup_distributed(device_name: str = "auto") -> DistributedContext:
    """Read the ``torchrun`` environment; when ``WORLD_SIZE > 1`` join the process group (NCCL on CUDA, gloo
    on the CPU) and pin this process to its local CUDA device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = parse_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def cleanup_distributed(context: DistributedContext) -> None:
    """Leave the process group that ``setup_distributed`` joined."""
    if context.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``tensor`` over all processes (the tensor itself in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def all_gather_objects(obj: Any) -> list[Any]:
    """One picklable object from every process, in rank order (``[obj]`` in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, source: int = 0) -> Any:
    """Rank ``source``'s object on every process (``obj`` in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=source)
    return box[0]


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled per epoch from ``seed + epoch``, one shard per rank) that can start part
    way through an epoch: ``set_position(epoch, start)`` skips this rank's first ``start`` indices, so a resumed
    run sees exactly the samples the uninterrupted run would have seen. Works in a single process too."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, shuffle: bool = True, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        """Shuffle for ``epoch`` and begin at this rank's index ``start`` (until the next call)."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start: expected 0..{self.num_samples}, got {start}")
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start
