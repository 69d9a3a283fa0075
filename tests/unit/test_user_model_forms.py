"""Attribute forms real user modules use (issue 19): lists for strides, "same" padding; and ImageFolder images
brought to the model's size the way torchvision's reference transforms do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from edgeprune.data.loaders import fit_image, load_image_folder
from edgeprune.latency.layers import _pair, extract_layers
from edgeprune.prune.graph import ModelGraph


class ListStrideConv(nn.Conv2d):
    """The "static same padding" pattern of a popular third-party EfficientNet package: stride kept as a list."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stride = list(self.stride)  # type: ignore[assignment]
        self.kernel_size = list(self.kernel_size)  # type: ignore[assignment]


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((1, 2), (1, 2)), ([2, 2], (2, 2)),
                                             (torch.Size([5, 3]), (5, 3)), (torch.tensor([4, 4]), (4, 4))])
def test_pair_accepts_every_form(value: object, expected: tuple[int, int]) -> None:
    assert _pair(value) == expected


def test_layers_of_a_model_with_list_strides_and_same_padding() -> None:
    model = nn.Sequential(ListStrideConv(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 5, padding="same"), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 4)).eval()
    example = torch.randn(1, 3, 16, 16)
    graph = ModelGraph(model, example, warn_frozen=False)
    layers = {layer.name: layer for layer in extract_layers(model, example, graph.groups)}
    assert layers["0"].signature.stride == (2, 2) and layers["0"].signature.kernel == (3, 3)
    assert layers["2"].signature.padding == (2, 2)


def _striped(width: int, height: int) -> Image.Image:
    """Red left and right bands a quarter of the width each, green centre."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, :, 1] = 255
    pixels[:, : width // 4] = (255, 0, 0)
    pixels[:, -(width // 4):] = (255, 0, 0)
    return Image.fromarray(pixels)


def test_imagenet_sized_inputs_are_resized_on_the_shorter_side_and_centre_cropped() -> None:
    out = np.asarray(fit_image(_striped(400, 200), (64, 64)))
    assert out.shape == (64, 64, 3)
    # squashing would keep the red bands (a quarter of the width each); the centre crop of the aspect-kept
    # resize sees only the green middle
    assert out[:, :, 0].max() < 40 and out[:, :, 1].min() > 200


def test_small_inputs_are_resized_whole(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    _striped(64, 32).save(tmp_path / "a" / "x.png")
    data = load_image_folder(tmp_path, (32, 32), 3)
    assert data.images.shape == (1, 32, 32, 3)
    assert data.images[0, :, 0, 0].min() > 200  # the red band is still there


def test_a_grouped_convolution_with_more_outputs_than_inputs_is_frozen_with_its_name_and_the_rest_prunes() -> None:
    from edgeprune.prune.surgery import slim_copy

    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, padding=1, groups=4), nn.ReLU(),  # 4 inputs, 8 outputs a group
                          nn.Conv2d(32, 8, 1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 4)).eval()
    example = torch.randn(1, 3, 8, 8)
    graph = ModelGraph(model, example, warn_frozen=False)
    frozen = [g for g in graph.groups if not g.prunable and "grouped convolution 2 (4 groups of 4" in g.frozen_reason]
    assert len(frozen) == 2, [g.frozen_reason for g in graph.groups]  # the conv's input side and output side
    prunable = graph.prunable_groups()
    assert [g.name for g in prunable] == ["4"]
    slim = slim_copy(model, example, {"4": [0, 1, 2, 3]})
    assert slim(example).shape == (1, 4)


class _TinyAttentionBlock(nn.Module):
    """A transformer block in the torchvision layout: attention on the embedding, then an MLP."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 4, stride=4)
        self.dim = dim
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).reshape(x.shape[0], self.dim, -1).permute(0, 2, 1)  # the reshape fixes the width
        x = x + self.attention(x, x, x, need_weights=False)[0]
        x = x + self.mlp(x)
        return self.head(x.mean(1))


def test_attention_freezes_its_embedding_width_and_leaves_the_mlp_prunable() -> None:
    from edgeprune.prune.surgery import slim_copy

    model = _TinyAttentionBlock().eval()
    example = torch.randn(1, 3, 16, 16)
    graph = ModelGraph(model, example, warn_frozen=False)
    reasons = [g.frozen_reason for g in graph.groups if not g.prunable]
    assert any("embedding width of attention attention" in r for r in reasons), reasons
    (mlp,) = graph.prunable_groups()
    assert mlp.width == 64
    slim = slim_copy(model, example, {mlp.name: list(range(32))})
    assert slim(example).shape == (1, 3)
