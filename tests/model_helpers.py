"""Helpers shared by the test packages (importable because pytest puts tests/ on sys.path for conftest.py)."""

from __future__ import annotations

import torch
from torch import nn


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial affine parameters and running statistics (fresh BN layers are
    identities at eval, which would hide parity and surgery errors). Returns the model."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model


def conv_stack(layers: int, channels: int, classes: int = 10) -> nn.Module:
    """conv(3 → channels) + ReLU, then ``layers`` more conv(channels → channels) + ReLU, pool, linear; in eval
    mode. More layers cost more time, which is what timing tests compare."""
    body: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
    for _ in range(layers):
        body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)).eval()


class ConcatNet(nn.Module):
    """Two branches concatenated, then a consumer conv (an Inception/DenseNet-like join)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 24, 1), nn.BatchNorm2d(24), nn.ReLU())
        self.join = nn.Sequential(nn.Conv2d(40, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.join(torch.cat([self.a(x), self.b(x)], dim=1))
        return self.head(y.mean(dim=(2, 3)))


class OutlierNet(nn.Sequential):
    """conv 0 → ReLU → conv 2 → ReLU → (``extra_convs`` more) → pool → linear, where one layer (conv 2, or the
    linear with ``outlier_in_classifier``) has a huge weight on an input channel that is always zero: harmless in
    float, but it sets that layer's per-channel INT8 scales so coarse that its other weights round to zero. Leaving
    that layer in float is what restores the outputs (mixed precision's test case). No biases: predictions follow
    the images' colours."""

    def __init__(self, channels: int = 8, extra_convs: int = 0, outlier_in_classifier: bool = False) -> None:
        torch.manual_seed(0)
        body: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        for _ in range(extra_convs):
            body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        super().__init__(*body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 5))
        computing = [layer for layer in self if isinstance(layer, (nn.Conv2d, nn.Linear))]
        outlier = computing[-1] if outlier_in_classifier else computing[1]
        producer = computing[computing.index(outlier) - 1]
        with torch.no_grad():
            for index, layer in enumerate(computing):  # the extra convs keep the activations' scale
                layer.weight.normal_(0.0, 1.0 if index < 2 or layer is computing[-1] else
                                     (2.0 / layer.weight[0].numel()) ** 0.5)
                layer.bias.zero_()
            dead = channels - 1
            producer.weight[dead].zero_()
            producer.bias[dead] = -1.0  # always 0 after the ReLU
            outlier.weight[:, dead] = 500.0
        self.eval()


def outlier_net_wide() -> nn.Module:
    """An :class:`OutlierNet` whose INT8 form runs faster than float and whose classifier is the outlier layer
    (``--model model_helpers:outlier_net_wide``)."""
    return OutlierNet(channels=64, extra_convs=1, outlier_in_classifier=True)


class MiniMobile(nn.Module):
    """A MobileNet in miniature: 3x3 stride-2 stem on 3 channels, (1x1, depthwise 3x3, 1x1) + residual, a second
    block with a stride-2 depthwise, global average pool, linear. ``stem_stride=1``, ``head="flatten"`` (no global
    mean) and ``head="tensor-mean"`` (``x.mean((2, 3))``, which litert-torch exports as TRANSPOSE + MEAN) break
    the rules."""

    def __init__(self, stem_stride: int = 2, head: str = "mean", width: int = 16) -> None:
        super().__init__()
        hidden = 4 * width
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stem_stride, 1), nn.ReLU6())
        self.block = nn.Sequential(nn.Conv2d(width, hidden, 1), nn.ReLU6(),
                                   nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden), nn.ReLU6(),
                                   nn.Conv2d(hidden, width, 1))
        self.down = nn.Sequential(nn.Conv2d(width, hidden, 1), nn.ReLU6(),
                                  nn.Conv2d(hidden, hidden, 3, 2, 1, groups=hidden), nn.ReLU6(),
                                  nn.Conv2d(hidden, 2 * width, 1))
        self.head_kind = head
        side = 32 // stem_stride // 2  # for 32x32 inputs
        self.head = nn.Linear(2 * width * (side * side if head == "flatten" else 1), 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.down(x + self.block(x))
        if self.head_kind == "flatten":
            x = x.flatten(1)
        elif self.head_kind == "tensor-mean":
            x = x.mean((2, 3))
        else:
            x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


def mini_mobilenet() -> nn.Module:
    """:class:`MiniMobile` with seeded weights, meeting XNNPACK's sparse-subgraph rules
    (``--model model_helpers:mini_mobilenet``)."""
    torch.manual_seed(0)
    return MiniMobile()


def linear_only() -> nn.Module:
    """A classifier with no channel group to prune (``--model model_helpers:linear_only``, 3x8x8 inputs)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
