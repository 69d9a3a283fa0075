"""Iterative pruning keeps indices into the original model's channels across steps."""

from __future__ import annotations

from edgeprune.fit.run import _compose


def test_compose_maps_second_step_indices_back_to_the_original() -> None:
    first = {"a": [0, 2, 4, 6], "b": [1, 3]}
    second = {"a": [1, 3], "c": [0, 5]}
    assert _compose(first, second) == {"a": [2, 6], "b": [1, 3], "c": [0, 5]}
    assert _compose({}, second) == second
