"""Data-parallel fine-tuning on two CPU processes (gloo) against one process with the same global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from edgeprune.prune.sparsity import WeightMasks
from edgeprune.train import distributed
from edgeprune.train.loop import TrainSpec, serve_training_jobs, train_classifier
from edgeprune.train.sparsity_schedule import GradualPruning, PolynomialDecay

SPEC = TrainSpec(epochs=2, lr=0.05, batch_size=16, seed=3, schedule="rewind", augment="crop,flip")


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(69, 3, 8, 8, generator=g)  # 69: the last batch is 5 images, split 3 + 2
    y = (x[:, 0].mean((1, 2)) > 0).long() + 2 * (x[:, 1].mean((1, 2)) > 0).long()
    return x, y


def _model(batch_norm: bool) -> nn.Module:
    torch.manual_seed(1)
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(8))
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)]
    return nn.Sequential(*layers)


class _StopAfterFirstEpoch(Exception):
    pass


def _stop_after_first(epoch: int, _loss: float) -> None:
    if epoch == 1:
        raise _StopAfterFirstEpoch


def _gradual(model: nn.Module) -> GradualPruning:
    """Global magnitude masks rising 0 -> 60% over the first 8 steps, updated every 2 (``--sparsity``'s hook)."""
    gradual = GradualPruning(WeightMasks(model, "global"), PolynomialDecay(0.0, 0.6, 0, 8, frequency=2))
    gradual.start()
    return gradual


def _rank(rank: int, world: int, port: int, out: str, batch_norm: bool, checkpoint: str | None,
          interrupt: bool, sparse: bool = False) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    distributed.start(torch.device("cpu"))
    try:
        if rank == 0:
            x, y = _data()
            model = _model(batch_norm)
            losses = train_classifier(model, x, y, SPEC, checkpoint=Path(checkpoint) if checkpoint else None,
                                      on_epoch=_stop_after_first if interrupt else None,
                                      on_step=_gradual(model) if sparse else None)
            distributed.broadcast(None)
            torch.save({"model": model.state_dict(), "losses": losses}, out)
        else:
            serve_training_jobs()
    finally:
        distributed.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(tmp_path: Path, name: str, batch_norm: bool, checkpoint: Path | None = None,
                   interrupt: bool = False, sparse: bool = False) -> dict:
    out = tmp_path / f"{name}.pt"
    mp.spawn(_rank, args=(2, _free_port(), str(out), batch_norm, str(checkpoint) if checkpoint else None, interrupt,
                          sparse), nprocs=2, join=True)
    return torch.load(out, weights_only=True)


def _one_process(batch_norm: bool, sparse: bool = False) -> dict:
    x, y = _data()
    model = _model(batch_norm)
    losses = train_classifier(model, x, y, SPEC, on_step=_gradual(model) if sparse else None)
    return {"model": model.state_dict(), "losses": losses}


def _max_difference(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point())


def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path) -> None:
    """Without batch norm the averaged gradient is the whole batch's: the weights agree to float rounding."""
    single, double = _one_process(False), _two_processes(tmp_path, "ddp", False)
    assert _max_difference(single["model"], double["model"]) < 1e-5
    assert double["losses"] == pytest.approx(single["losses"], rel=1e-5)
    assert single["losses"][1] < single["losses"][0]  # it trained


def test_with_batch_norm_two_processes_stay_within_the_stated_tolerance(tmp_path: Path) -> None:
    """Batch norm normalises each process's share by that share's statistics (as plain DDP does): the runs
    differ slightly (measured: epoch losses 0.1% apart, weights 2.4% of their scale). Tolerance: losses within 1%,
    weights within 5% of their scale."""
    single, double = _one_process(True), _two_processes(tmp_path, "ddp-bn", True)
    assert double["losses"] == pytest.approx(single["losses"], rel=0.01)
    weight = single["model"]["0.weight"]
    assert float((double["model"]["0.weight"] - weight).abs().max()) < 0.05 * float(weight.abs().max())


@pytest.mark.full
def test_a_resumed_data_parallel_fine_tune_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = _two_processes(tmp_path, "whole", True)
    checkpoint = tmp_path / "finetune.pt"
    with pytest.raises(Exception, match="StopAfterFirstEpoch"):
        _two_processes(tmp_path, "interrupted", True, checkpoint, interrupt=True)
    assert checkpoint.is_file()
    resumed = _two_processes(tmp_path, "resumed", True, checkpoint)
    assert _max_difference(whole["model"], resumed["model"]) < 1e-6
    assert resumed["losses"] == pytest.approx(whole["losses"], rel=1e-6)


def test_gradual_weight_pruning_runs_on_every_rank_and_matches_one_process(tmp_path: Path) -> None:
    """``--sparsity``'s step hook travels with the job: every rank updates its masks at the same steps, and the
    result is one process's (no batch norm: to float rounding), 60% of the weights zero."""
    single, double = _one_process(False, sparse=True), _two_processes(tmp_path, "sparse", False, sparse=True)
    assert _max_difference(single["model"], double["model"]) < 1e-5
    masks = {k: v for k, v in double["model"].items() if k.endswith("weight_mask")}
    assert masks and all(torch.equal(v, single["model"][k]) for k, v in masks.items())
    kept = sum(float(v.sum()) for v in masks.values()) / sum(v.numel() for v in masks.values())
    assert kept == pytest.approx(0.4, abs=0.01)
