"""edgeprune.prune.uniform: aligned widths and the uniform keep-the-most-important allocation."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.prune.groups import ChannelGroup, GroupMember
from edgeprune.prune.uniform import aligned_width, uniform_keep


@pytest.mark.parametrize(
    ("width", "ratio", "alignment", "expected"),
    [
        (64, 0.5, 8, 32),
        (64, 0.01, 8, 8),  # at least one step
        (10, 0.5, 1, 5),
        (64, 1.0, 8, 64),
        (64, 0.55, 8, 32),  # 35.2 rounds to 32
        (64, 0.57, 8, 40),  # 36.5 rounds to 40
        (16, 0.3, 8, 8),
        (4, 0.5, 8, 4),  # narrower than one step: never pruned below its width
        (12, 1.0, 8, 12),  # never above the width
        (7, 0.01, 1, 1),
        (7, 0.01, 0, 1),  # alignment < 1 behaves as 1
        (100, 0.333, 1, 33),
    ],
)
def test_aligned_width(width: int, ratio: float, alignment: int, expected: int) -> None:
    assert aligned_width(width, ratio, alignment) == expected


@pytest.mark.parametrize("width", [8, 16, 24, 32, 48, 64, 96, 128])
@pytest.mark.parametrize("ratio", [0.05, 0.3, 0.5, 0.77, 1.0])
def test_aligned_width_is_a_multiple_of_alignment_within_bounds(width: int, ratio: float) -> None:
    kept = aligned_width(width, ratio, 8)
    assert kept % 8 == 0
    assert 8 <= kept <= width
    assert abs(kept - ratio * width) <= 4 or kept == 8


def _group(name: str, width: int) -> ChannelGroup:
    return ChannelGroup(name, width, (GroupMember(name, "Conv2d", "out", tuple(range(width))),))


def test_uniform_keep_keeps_highest_scores_sorted() -> None:
    groups = [_group("a", 6), _group("b", 4)]
    scores = {"a": np.array([0.1, 5.0, 0.3, 4.0, 0.2, 3.0]), "b": np.array([9.0, 1.0, 8.0, 2.0])}
    keep = uniform_keep(groups, scores, 0.5)
    assert keep == {"a": [1, 3, 5], "b": [0, 2]}
    assert all(isinstance(i, int) for i in keep["a"])


def test_uniform_keep_alignment_and_minimum_step() -> None:
    rng = np.random.default_rng(0)
    groups = [_group("wide", 32), _group("narrow", 16)]
    scores = {"wide": rng.random(32), "narrow": rng.random(16)}
    keep = uniform_keep(groups, scores, 0.3, alignment=8)
    assert len(keep["wide"]) == 8  # 9.6 -> 8
    assert len(keep["narrow"]) == 8  # 4.8 rounds to 8 (one step)
    assert keep["wide"] == sorted(np.argsort(-scores["wide"])[:8].tolist())
    keep = uniform_keep(groups, scores, 0.01, alignment=8)
    assert len(keep["wide"]) == 8 and len(keep["narrow"]) == 8


def test_uniform_keep_full_ratio_keeps_everything() -> None:
    groups = [_group("a", 16)]
    assert uniform_keep(groups, {"a": np.ones(16)}, 1.0, alignment=8) == {"a": list(range(16))}


def test_uniform_keep_ties_prefer_lower_indices() -> None:
    assert uniform_keep([_group("a", 6)], {"a": np.ones(6)}, 0.5) == {"a": [0, 1, 2]}


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.01, float("nan")])
def test_uniform_keep_rejects_bad_ratios(ratio: float) -> None:
    with pytest.raises(ValueError, match="keep ratio"):
        uniform_keep([_group("a", 4)], {"a": np.ones(4)}, ratio)


def test_group_producers() -> None:
    group = ChannelGroup(
        "c",
        2,
        (
            GroupMember("c", "Conv2d", "out", (0, 1)),
            GroupMember("bn", "BatchNorm2d", "out", (0, 1)),
            GroupMember("next", "Conv2d", "in", (0, 1)),
        ),
    )
    assert [m.module for m in group.producers()] == ["c", "bn"]
