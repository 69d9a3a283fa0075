"""Data-parallel fine-tuning under ``torchrun``: the fit runs on rank 0, every rank fine-tunes its share.

``torchrun --nproc-per-node N -m edgeprune fit ...`` (or ``edgeprune fit --train-nproc N``, which launches
torch.distributed.run) starts N copies of the command. Rank 0 runs the whole fit: the search, every latency
measurement, the writing of results. The other ranks wait for fine-tunes: each time rank 0 fine-tunes a model it
broadcasts the job (model, training data, settings, resumed state) with ``torch.distributed``'s object broadcast,
and every rank trains its share of each batch inside :class:`~torch.nn.parallel.DistributedDataParallel`,
which averages the gradients. Checkpoints are written by rank 0. Multi-node runs use torchrun's own rendezvous
options; the training data must then be at the same path on every node when it is a folder read lazily.

The process group is gloo on CPUs, NCCL on GPUs. Its timeout is long: between two fine-tunes the other ranks
wait while rank 0 measures candidates on the target, which can take hours on a slow device.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

#: how long the other ranks wait for rank 0's next fine-tune (or its end) before giving up
JOB_WAIT = timedelta(hours=24)


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a data-parallel run."""

    rank: int
    world_size: int

    @property
    def leads(self) -> bool:
        """Whether this is rank 0: the one that runs the fit."""
        return self.rank == 0

    def share(self, count: int) -> slice:
        """This rank's rows of a batch of ``count`` (contiguous; sizes differ by at most one)."""
        base, extra = divmod(count, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by torchrun (``WORLD_SIZE`` > 1 in the environment)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> ProcessGroup:
    """Join torchrun's process group (gloo on the CPU, NCCL on GPUs)."""
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=JOB_WAIT)
        log.info("data-parallel fine-tuning: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return ProcessGroup(dist.get_rank(), dist.get_world_size())


def current() -> ProcessGroup | None:
    """The process group of a data-parallel run with more than one process, or None."""
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return ProcessGroup(dist.get_rank(), dist.get_world_size())


def stop() -> None:
    """Leave the process group (after rank 0 sent the end)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast(job: Any) -> Any:
    """Rank 0's ``job`` on every rank (None tells the other ranks that the fit is over)."""
    box = [job]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Each value summed over all ranks (``device``: where the process group's backend takes tensors)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()
