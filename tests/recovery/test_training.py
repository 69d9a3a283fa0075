"""Recovery training: learning-rate rewinding, distillation, seeded and resumable epochs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.errors import UnknownNameError
from edgeprune.train.distill import DistillationLoss
from edgeprune.train.loop import TrainSpec, train_classifier
from edgeprune.train.schedules import make_scheduler


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


def _data(n: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def _lrs(name: str, steps: int = 100) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make_scheduler(opt, name, 0.1, steps)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_rewind_schedule_replays_the_step_schedule_tail_from_the_peak() -> None:
    lrs = _lrs("rewind")
    assert lrs[0] == pytest.approx(0.1)  # starts at the peak: no warm-up, unlike one-cycle
    assert lrs[49] == pytest.approx(0.1) and lrs[50] == pytest.approx(0.01)
    assert lrs[75] == pytest.approx(0.001) and lrs[-1] == pytest.approx(0.001)
    assert _lrs("constant") == pytest.approx([0.1] * 100)
    assert _lrs("one-cycle")[0] < 0.02  # warm-up


def test_unknown_schedule_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="rewind"):
        _lrs("rewnd")


def test_distillation_loss_is_zero_against_itself_and_needs_no_labels() -> None:
    teacher = _tiny().eval()
    x, y = _data(16)
    loss = DistillationLoss(teacher, temperature=4.0, alpha=1.0)
    with torch.no_grad():
        assert float(loss(teacher(x), x, None)) == pytest.approx(0.0, abs=1e-6)
        other = _tiny(seed=5).eval()(x)
        assert float(loss(other, x, None)) > 1e-4
    mixed = DistillationLoss(teacher, temperature=4.0, alpha=0.5)
    with torch.no_grad():
        expected = 0.5 * float(loss(other, x, None)) + 0.5 * float(F.cross_entropy(other, y))
        assert float(mixed(other, x, y)) == pytest.approx(expected, rel=1e-5)


def test_distillation_moves_the_student_towards_the_teacher_without_labels() -> None:
    teacher, student = _tiny(0).eval(), _tiny(7)
    x, _ = _data()
    gap = lambda: float(F.mse_loss(student.eval()(x), teacher(x)))  # noqa: E731
    with torch.no_grad():
        before = gap()
    train_classifier(student, x, None, TrainSpec(epochs=15, lr=0.05, batch_size=16, schedule="constant"),
                     loss_fn=DistillationLoss(teacher, alpha=1.0))
    with torch.no_grad():
        assert gap() < 0.5 * before


def test_training_is_seeded() -> None:
    x, y = _data()
    spec = TrainSpec(epochs=2, lr=0.05, batch_size=16, schedule="rewind", seed=3)
    a, b = _tiny(), _tiny()
    train_classifier(a, x, y, spec)
    train_classifier(b, x, y, spec)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize("augment", ["none", "crop,flip"])
def test_interrupted_training_resumes_to_the_same_weights(tmp_path: Path, augment: str) -> None:
    x, y = _data()
    spec = TrainSpec(epochs=3, lr=0.05, batch_size=16, schedule="rewind", seed=3, augment=augment)
    reference = _tiny()
    train_classifier(reference, x, y, spec)

    checkpoint = tmp_path / "ft.pt"
    interrupted = _tiny()

    def stop_after_first(epoch: int, _loss: float) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(interrupted, x, y, spec, on_epoch=stop_after_first, checkpoint=checkpoint)
    assert checkpoint.is_file()
    resumed = _tiny(seed=99)  # a fresh process would start from other weights: the checkpoint must win
    losses = train_classifier(resumed, x, y, spec, checkpoint=checkpoint)
    assert len(losses) == 3
    for (name, pa), pb in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_a_checkpoint_from_other_settings_is_ignored(tmp_path: Path) -> None:
    x, y = _data()
    checkpoint = tmp_path / "ft.pt"
    train_classifier(_tiny(), x, y, TrainSpec(epochs=1, lr=0.05, batch_size=16), checkpoint=checkpoint)
    model = _tiny()
    losses = train_classifier(model, x, y, TrainSpec(epochs=2, lr=0.02, batch_size=16), checkpoint=checkpoint)
    assert len(losses) == 2


def test_every_epoch_trains_in_train_mode_even_if_a_callback_evaluated_the_model() -> None:
    model = _tiny()
    x, y = _data()
    modes: list[bool] = []

    def record_mode(logits: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        modes.append(model.training)
        return F.cross_entropy(logits, labels)

    train_classifier(model, x, y, TrainSpec(epochs=3, lr=0.01, batch_size=32), loss_fn=record_mode,
                     on_epoch=lambda epoch, loss: model.eval())  # e.g. a callback that measures accuracy
    assert len(modes) == 9 and all(modes)
    assert not model.training  # handed back in eval mode
