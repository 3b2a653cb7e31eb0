"""One process or many under ``torchrun``: who this rank is and how figures are averaged over the ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Distributed:
    """Where this process sits in a ``torchrun`` job (a single process is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_environment(cls) -> Distributed:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("LOCAL_WORLD_SIZE", 1)))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def slots(self, batch_size: int) -> range:
        """This rank's share of a global batch."""
        if batch_size % self.world_size:
            raise ValueError(f"train.batch_size ({batch_size}) must divide by the {self.world_size} ranks")
        local = batch_size // self.world_size
        return range(self.rank * local, (self.rank + 1) * local)

    def cuda_device(self) -> str:
        """The GPU of this rank: its local rank among the GPUs it sees (one each when a launcher binds them)."""
        return f"cuda:{self.local_rank % max(torch.cuda.device_count(), 1)}"

    def loader_workers(self, wanted: int) -> int:
        """DataLoader workers for this rank: ``wanted``, but no more than its share of the node's cores."""
        return max(1, min(wanted, (os.cpu_count() or 1) // self.local_world_size))


def read_figures(pending: list[torch.Tensor], distributed: Distributed) -> list[list[float]]:
    """The figures of each pending step, averaged over the ranks: one device read (and one all-reduce).

    Shape:
        pending: N tensors of (K,) -> N lists of K floats
    """
    values = torch.stack(pending)
    if distributed.world_size > 1:
        dist.all_reduce(values)
        values = values / distributed.world_size
    return values.tolist()
