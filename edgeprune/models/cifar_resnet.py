"""The classic CIFAR ResNets of He et al. 2016 (depth 6n+2) with the parameter-free option-A shortcut.

Written from the paper's description. Module names match the widely used state-dict layout
(``conv1``, ``bn1``, ``layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2}``, ``linear``) so weights trained with
that layout (e.g. ../shared/data/models/cifar10/akamaster_resnet) load directly.

Option A: when a block changes resolution and width, the shortcut subsamples by the stride and pads the
missing channels with zeros. :class:`ZeroPadShortcut` holds that padding explicitly (which channels of the
output carry the input) so that a pruned network can keep it consistent.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: spatial subsampling by ``stride`` and zero padding from ``in_channels`` to ``out_channels``.

    The input's channels are placed at offset ``pad_front`` of the output (the classic layout pads equally
    on both sides). ``channel_padding = True`` tells edgeprune's dependency graph that output channel
    ``pad_front + i`` carries input channel ``i`` and the others are zeros, so the residual stream across
    stages can be pruned consistently.
    """

    channel_padding = True

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.pad_front = (out_channels - in_channels) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:  # x[:, :, ::s, ::s], written as a 1x1 max pool: strided slicing has no ncnn layer
            x = F.max_pool2d(x, 1, self.stride)
        pad_back = self.out_channels - self.in_channels - self.pad_front
        if self.pad_front or pad_back:
            x = F.pad(x, (0, 0, 0, 0, self.pad_front, pad_back))
        return x


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, ReLU, and an identity or option-A shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module
        if stride != 1 or in_planes != planes:
            self.shortcut = ZeroPadShortcut(in_planes, planes, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet with three stages of ``n`` blocks (16, 32, 64 channels) and a linear classifier."""

    def __init__(self, depth: int = 56, num_classes: int = 10) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, n, 1)
        self.layer2 = self._stage(16, 32, n, 2)
        self.layer3 = self._stage(32, 64, n, 2)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes, 1) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


_NAME = re.compile(r"^cifar-resnet(\d+)$")


def parse_cifar_resnet_depth(name: str) -> int | None:
    """Return the depth encoded in ``cifar-resnetN``, or None if the name is not of that form."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None
