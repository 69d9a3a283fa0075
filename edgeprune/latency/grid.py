"""Width grids for probes and interpolation on them."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def width_grid(lowest: int, highest: int, alignment: int, max_points: int) -> list[int]:
    """Widths to probe between ``lowest`` and ``highest``: every alignment step when there are at most
    ``max_points`` of them, else ``max_points`` steps spread evenly. Both ends are always included.

    >>> width_grid(8, 64, 8, 8)
    [8, 16, 24, 32, 40, 48, 56, 64]
    >>> width_grid(8, 64, 8, 4)
    [8, 24, 48, 64]
    """
    step = max(1, alignment)
    if highest <= lowest:
        return [highest]
    candidates = list(range(lowest, highest + 1, step))
    if candidates[-1] != highest:
        candidates.append(highest)
    if len(candidates) <= max_points:
        return candidates
    n = len(candidates) - 1
    picks = sorted({round(i * n / (max_points - 1)) for i in range(max_points)})
    return [candidates[i] for i in picks]


def _bracket(grid: Sequence[int], x: float) -> tuple[int, int, float]:
    """Indices (i, j) around ``x`` and the weight of j; extrapolates linearly beyond the ends."""
    if len(grid) == 1:
        return 0, 0, 0.0
    k = bisect.bisect_left(grid, x)
    if k < len(grid) and grid[k] == x:
        return k, k, 0.0
    i = min(max(k - 1, 0), len(grid) - 2)
    j = i + 1
    return i, j, (x - grid[i]) / (grid[j] - grid[i])


def interpolate_2d(xs: Sequence[int], ys: Sequence[int], values: Sequence[Sequence[float]], x: float, y: float) -> float:
    """Bilinear interpolation of ``values[ix][iy]`` on the grid ``xs`` × ``ys`` (exact for a*x*y + b*x + c*y + d,
    which is how a kernel's work grows with its input and output widths)."""
    i0, i1, wx = _bracket(xs, x)
    j0, j1, wy = _bracket(ys, y)
    v00, v01 = values[i0][j0], values[i0][j1]
    v10, v11 = values[i1][j0], values[i1][j1]
    return (1 - wx) * ((1 - wy) * v00 + wy * v01) + wx * ((1 - wy) * v10 + wy * v11)
