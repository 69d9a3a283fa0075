"""Gradual weight pruning inside the fine-tune loop: the schedule's updates happen, the final sparsity is reached,
and an interrupted fine-tune resumed from its checkpoint ends with the same masks and weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import conv_stack

from edgeprune.prune.sparsity import WeightMasks, layer_sparsity, total_sparsity
from edgeprune.train.loop import TrainSpec, train_classifier
from edgeprune.train.sparsity_schedule import GradualPruning, PolynomialDecay

SPEC = TrainSpec(epochs=3, lr=0.05, batch_size=16, seed=0, schedule="constant")


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(64, 3, 8, 8, generator=gen), torch.randint(0, 10, (64,), generator=gen)


def _run(checkpoint: Path | None, stop_after: int | None = None) -> tuple[torch.nn.Module, GradualPruning]:
    torch.manual_seed(0)
    model = conv_stack(1, 8).train()
    schedule = PolynomialDecay(0.5, 0.8, begin_step=0, end_step=8, frequency=2)  # 4 steps an epoch, 12 in all
    gradual = GradualPruning(WeightMasks(model), schedule)
    gradual.start()

    def interrupt(epoch: int, _loss: float) -> None:
        if stop_after is not None and epoch == stop_after:
            raise KeyboardInterrupt

    x, y = _data()
    train_classifier(model, x, y, SPEC, checkpoint=checkpoint, on_step=gradual, on_epoch=interrupt)
    return model, gradual


def test_the_schedule_reaches_the_final_sparsity_and_masked_weights_stay_zero() -> None:
    model, gradual = _run(None)
    assert [step for step, _ in gradual.history] == [0, 2, 4, 6, 8]
    assert [round(s, 4) for _, s in gradual.history] == [0.5, 0.6734, 0.7625, 0.7953, 0.8]
    assert total_sparsity(layer_sparsity(model)) == pytest.approx(0.8, abs=1e-3)
    gradual.masks.make_permanent()
    assert total_sparsity(layer_sparsity(model)) == pytest.approx(0.8, abs=1e-3)


def test_a_resumed_fine_tune_keeps_its_masks_and_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    whole, _ = _run(None)
    checkpoint = tmp_path / "finetune-sparse.pt"
    with pytest.raises(KeyboardInterrupt):
        _run(checkpoint, stop_after=1)  # interrupted after epoch 1 (step 4: sparsity 0.7625)
    assert any(k.endswith("weight_mask") for k in torch.load(checkpoint, weights_only=True)["model"])
    resumed, gradual = _run(checkpoint)
    assert [step for step, _ in gradual.history] == [0, 6, 8]  # steps 2 and 4 came back with the checkpoint
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
