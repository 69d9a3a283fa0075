"""--train-device: what it resolves to, and training on a GPU (mixed precision) where one is present."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.errors import InputError
from edgeprune.models.preprocessing import Preprocessing
from edgeprune.train.batches import InMemoryImages
from edgeprune.train.device import resolve_train_device, uses_mixed_precision
from edgeprune.train.distill import DistillationLoss
from edgeprune.train.loop import TrainSpec, train_classifier

GPU = torch.cuda.is_available()


def test_auto_takes_a_gpu_only_when_pytorch_sees_one() -> None:
    assert resolve_train_device("auto").type == ("cuda" if GPU else "cpu")
    assert resolve_train_device("cpu") == torch.device("cpu")
    assert not uses_mixed_precision(torch.device("cpu"))


@pytest.mark.skipif(GPU, reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_with_the_way_out() -> None:
    with pytest.raises(InputError, match="PyTorch sees no CUDA GPU here.*--train-device cpu"):
        resolve_train_device("cuda")


def test_in_memory_images_travel_as_pixels_not_as_their_float_copy() -> None:
    pixels = np.zeros((8, 4, 4, 3), dtype=np.uint8)
    images = InMemoryImages(pixels, torch.zeros(8, dtype=torch.long), Preprocessing(4, 4, 3, (0.5,) * 3, (0.5,) * 3))
    next(images.batches([torch.arange(2)]))  # converts and caches the float inputs
    assert images._inputs is not None and pickle.loads(pickle.dumps(images))._inputs is None


def _setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(96, 3, 8, 8)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 2))
    return model, x, y


@pytest.mark.skipif(not GPU, reason="needs a CUDA GPU (CI has none): --train-device cuda was not exercised here")
def test_training_on_a_gpu_with_mixed_precision_learns_checkpoints_and_returns_to_the_cpu(tmp_path: Path) -> None:
    model, x, y = _setup()
    teacher = nn.Sequential(*[m for m in _setup()[0]]).eval()
    spec = TrainSpec(epochs=3, lr=0.05, batch_size=32, schedule="rewind", augment="crop,flip")
    checkpoint = tmp_path / "ft.pt"
    losses = train_classifier(model, x, y, spec, loss_fn=DistillationLoss(teacher), checkpoint=checkpoint,
                              device=torch.device("cuda"))
    assert next(model.parameters()).device.type == "cpu" and next(teacher.parameters()).device.type == "cpu"
    assert losses[-1] < losses[0]
    assert torch.load(checkpoint, weights_only=True)["scaler"]  # the gradient scaler's state is kept for --resume
    cpu_model, _, _ = _setup()
    cpu_losses = train_classifier(cpu_model, x, y, spec, loss_fn=DistillationLoss(teacher))
    assert losses == pytest.approx(cpu_losses, rel=0.05)  # float16 autocast: close, not equal


class _StopAfterFirstEpoch(Exception):
    pass


def _stop_after_first(epoch: int, _loss: float) -> None:
    raise _StopAfterFirstEpoch(epoch)


@pytest.mark.skipif(not GPU, reason="needs a CUDA GPU (CI has none): --resume on a GPU was not exercised here")
def test_an_interrupted_gpu_fine_tune_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    """The checkpoint carries the gradient scaler and both generators: the resumed run ends where the whole one does
    (to float rounding: cuDNN may pick another algorithm in a new run)."""
    _, x, y = _setup()
    teacher = _setup()[0].eval()
    spec = TrainSpec(epochs=3, lr=0.05, batch_size=32, seed=5, schedule="rewind", augment="crop,flip")
    cuda = torch.device("cuda")
    whole = _setup()[0]
    whole_losses = train_classifier(whole, x, y, spec, loss_fn=DistillationLoss(teacher), device=cuda)
    checkpoint = tmp_path / "ft.pt"
    with pytest.raises(_StopAfterFirstEpoch):
        train_classifier(_setup()[0], x, y, spec, loss_fn=DistillationLoss(teacher), checkpoint=checkpoint,
                         device=cuda, on_epoch=_stop_after_first)
    resumed = _setup()[0]
    resumed_losses = train_classifier(resumed, x, y, spec, loss_fn=DistillationLoss(teacher), checkpoint=checkpoint,
                                      device=cuda)
    assert resumed_losses == pytest.approx(whole_losses, rel=1e-4)
    for name, value in whole.state_dict().items():
        if value.is_floating_point():
            scale = float(value.abs().max()) or 1.0
            assert float((resumed.state_dict()[name] - value).abs().max()) <= 1e-4 * scale, name
