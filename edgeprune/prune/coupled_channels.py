"""Which channels of one Torch-Pruning group go together, and which can go on their own.

Torch-Pruning's group of a root layer lists, for every layer and functional op its channels reach, pairs
``(index there, root channel)``. Two facts follow from them that its own merge (one root channel per index) hides:

* root channels that reach the same index of the same node are one channel to edgeprune: removing one removes
  the other (GhostNet: a layer's channel ``c`` and its depthwise copy at ``c + n`` in the concatenation after it);
* root channels that reach different sets of layers are independent: ReXNet's partial residual
  ``cat([x[:, :c] + shortcut, x[:, c:]])`` puts the residual stream and the channels a block adds in one group,
  though the stream also runs through earlier blocks and the added channels do not.

:func:`coupled_components` finds the first, :func:`partition_components` the second: channels reaching the same
layers the same number of times (and frozen, or not, for the same reason) form one edgeprune group. Plain data
only; :mod:`edgeprune.prune.graph` feeds it from Torch-Pruning's objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence

Pairs = Sequence[tuple[int, int]]  # (index in the node, root channel)


def coupled_components(width: int, items: Sequence[Pairs]) -> list[tuple[int, ...]]:
    """The root channels ``0..width-1`` in classes that must be removed together, each sorted, ordered by their
    first channel: channels reaching one index of one item (``items[k]``: its pairs) are one class.

    >>> coupled_components(4, [[(0, 0), (1, 1), (2, 2), (3, 3)], [(0, 0), (0, 2), (1, 1), (1, 3)]])
    [(0, 2), (1, 3)]
    """
    parent = list(range(width))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pairs in items:
        first: dict[int, int] = {}
        for idx, root in pairs:
            if not 0 <= root < width:
                continue
            other = first.setdefault(idx, root)
            if other != root:
                a, b = find(other), find(root)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    classes: dict[int, list[int]] = defaultdict(list)
    for channel in range(width):
        classes[find(channel)].append(channel)
    return sorted((tuple(c) for c in classes.values()), key=lambda c: c[0])


def indices_by_component(components: Sequence[tuple[int, ...]], pairs: Pairs) -> dict[int, list[int]]:
    """``component number -> the sorted indices one item has for its channels`` (components it misses left out).

    >>> indices_by_component([(0, 2), (1,)], [(5, 0), (6, 2), (5, 2)])
    {0: [5, 6]}
    """
    number = {root: k for k, component in enumerate(components) for root in component}
    found: dict[int, set[int]] = defaultdict(set)
    for idx, root in pairs:
        if root in number:
            found[number[root]].add(idx)
    return {k: sorted(v) for k, v in found.items()}


def partition_components(count: int, by_component: Sequence[dict[int, list[int]]],
                         reason: Callable[[int], str]) -> list[list[int]]:
    """The components ``0..count-1`` split into parts whose channels reach the same items (``by_component[k]``:
    item ``k``'s indices per component) the same number of times and share ``reason(component)`` (why they are
    frozen, or ""); parts in the order of their first component.

    >>> partition_components(3, [{0: [0], 1: [1], 2: [2]}, {0: [0], 1: [1]}], lambda c: "")   # item 1 misses 2
    [[0, 1], [2]]
    """
    signatures: list[list[tuple[int, int]]] = [[] for _ in range(count)]
    for k, item in enumerate(by_component):
        for component, idxs in item.items():
            signatures[component].append((k, len(idxs)))
    parts: dict[Hashable, list[int]] = {}
    for component in range(count):
        parts.setdefault((tuple(signatures[component]), reason(component)), []).append(component)
    return list(parts.values())
