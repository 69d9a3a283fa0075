"""The built-in demo network: a small residual CNN for 32x32 grayscale digits.

Sized so that one inference takes a few milliseconds on one CPU thread and pruning its channels changes
latency visibly; its residual blocks use 1x1 projection shortcuts, so every width (residual stream
included) is prunable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.models.preprocessing import Preprocessing

DEMO_PREPROCESSING = Preprocessing(height=32, width=32, channels=1, mean=(0.3,), std=(0.33,))


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.proj: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.proj(x))


class DemoNet(nn.Module):
    """Stem (48 ch) and three residual stages (48, 96, 192 ch at 32, 16, 8 px), global pool, linear head."""

    def __init__(self, num_classes: int = 10, width: int = 48) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stage1 = _Block(width, width, 1)
        self.stage2 = _Block(width, 2 * width, 2)
        self.stage3 = _Block(2 * width, 4 * width, 2)
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))
