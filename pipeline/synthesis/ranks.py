"""Several processes, one per GPU, started by torchrun or `accelerate launch` (which set RANK, WORLD_SIZE, LOCAL_RANK).

Rank r makes the shards k with k % WORLD_SIZE == r on cuda:LOCAL_RANK (the CPU when there is no GPU), writing into the
shared work-in-progress folder; all ranks then meet at a barrier (gloo), and rank 0 alone assembles the outputs.

On the CPU every process computes with as many threads as it has cores, however it was launched: the CPU kernels
(MKL's gemm, oneDNN's convolutions) split their float sums by thread, so the rounding, and now and then a pixel,
depends on the thread count, and torchrun sets OMP_NUM_THREADS=1 in its workers. With the same count, ranks make
the bytes one process makes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# The barrier waits for the slowest rank, which may have hours more to make after a resume; torchrun and accelerate
# stop every rank when one fails, so a long wait cannot outlive a crash.
BARRIER_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local: int = 0

    @classmethod
    def from_env(cls) -> Ranks:
        if "WORLD_SIZE" not in os.environ:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", self.local) if torch.cuda.is_available() else torch.device("cpu")

    def owns(self, shard_index: int) -> bool:
        return shard_index % self.world == self.rank

    def set_threads(self) -> None:
        """On the CPU, compute with every core this process may run on (see the module), whatever OMP_NUM_THREADS says."""
        if self.device.type == "cpu":
            torch.set_num_threads(len(os.sched_getaffinity(0)))

    def start(self) -> None:
        """Join the process group (returns once every rank has joined)."""
        if self.world > 1:
            dist.init_process_group("gloo", rank=self.rank, world_size=self.world, timeout=BARRIER_TIMEOUT)

    def wait_for_all(self) -> None:
        """Return once every rank has made its shards."""
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()
