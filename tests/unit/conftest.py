"""Fixtures shared by the unit tests: tiny in-code models and a helper to write importable user modules."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from model_helpers import randomise_bn
from torch import nn


class ProjBlock(nn.Module):
    """Residual block with a 1x1 projection shortcut (so the residual stream is prunable)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.proj(x))


class TinyResNet(nn.Module):
    """stem (8 ch) -> one projection block (16 ch, stride 2) -> pool -> linear(4)."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = ProjBlock(8, 16, 2)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))




@pytest.fixture
def tiny_resnet() -> TinyResNet:
    torch.manual_seed(0)
    model = TinyResNet().eval()
    randomise_bn(model, 1)
    return model


@pytest.fixture
def tiny_input() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 3, 16, 16)


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """Write ``name.py`` with ``source`` into tmp_path and make it importable; unimported afterwards."""
    created: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        created.append(name)
        return name

    yield make
    for name in created:
        sys.modules.pop(name, None)


@pytest.fixture
def tiny_resnet_cls() -> type[TinyResNet]:
    return TinyResNet


@pytest.fixture
def randomise() -> Callable[[nn.Module, int], None]:
    return randomise_bn
