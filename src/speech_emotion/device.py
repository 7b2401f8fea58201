"""Where a model runs: the device, and this process's place in a torchrun job.

Under `torchrun --nproc_per_node N` every process joins one process group (gloo on CPU,
NCCL on CUDA); rank 0 is the main process, the one that writes outputs. A plain run is
rank 0 of 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


def select_device(choice: str) -> torch.device:
    """`auto`: CUDA, then Apple MPS, then CPU. Under torchrun, CUDA is this rank's GPU."""
    if choice == "auto":
        if torch.cuda.is_available():
            choice = "cuda"
        elif torch.backends.mps.is_available():
            choice = "mps"
        else:
            choice = "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device = cuda, but CUDA is not available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if choice == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("train.device = mps, but Apple MPS is not available")
    return torch.device(choice)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int
    world: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return Distributed(0, 1)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a plain run: the process that writes outputs."""
    return int(os.environ.get("RANK", 0)) == 0
