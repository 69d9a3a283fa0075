"""A fit on several processes: ``--train-nproc N`` launches torch.distributed.run, and each rank plays its part.

Rank 0 runs the whole fit; the other ranks only fine-tune, on their share of each batch, when rank 0 sends a
job (:mod:`edgeprune.train.distributed`). ``torchrun --nproc-per-node N -m edgeprune fit ...`` (with its
multi-node rendezvous options where wanted) works the same way without ``--train-nproc``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from edgeprune.config import FitConfig
from edgeprune.errors import InputError
from edgeprune.train import distributed
from edgeprune.train.device import resolve_train_device
from edgeprune.train.loop import serve_training_jobs

log = logging.getLogger(__name__)

R = TypeVar("R")


def without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--train-nproc N`` (or ``--train-nproc=N``) taken out.

    >>> without_nproc(["fit", "--train-nproc", "2", "--budget", "50%"])
    ['fit', '--budget', '50%']
    """
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--train-nproc":
            skip = True
        elif not arg.startswith("--train-nproc="):
            out.append(arg)
    return out


def launch(nproc: int, argv: Sequence[str] | None = None) -> int:
    """Run this ``edgeprune`` command again on ``nproc`` processes of this machine under torch.distributed.run
    (standalone rendezvous); its exit code."""
    if distributed.launched_by_torchrun():
        raise InputError("--train-nproc is for launching: this command already runs under torchrun "
                         "(leave --train-nproc out)")
    args = without_nproc(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "edgeprune", *args]
    log.info("launching %d fine-tuning processes: %s", nproc, " ".join(command))
    return subprocess.call(command)


def run_ranked(config: FitConfig, run_fit: Callable[[FitConfig], R]) -> R | None:
    """``run_fit(config)`` on rank 0 of a torchrun launch, the fine-tune service on the others (None there);
    just ``run_fit(config)`` outside torchrun."""
    if not distributed.launched_by_torchrun():
        return run_fit(config)
    group = distributed.start(resolve_train_device(config.train_device))
    try:
        if not group.leads:
            served = serve_training_jobs()
            log.info("rank %d: %d fine-tune%s done", group.rank, served, "" if served == 1 else "s")
            return None
        try:
            return run_fit(config)
        finally:
            distributed.broadcast(None)  # the other ranks stop serving, whatever happened here
    finally:
        distributed.stop()
