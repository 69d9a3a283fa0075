"""The plot of ``edgeprune bench``: each artifact's median latency per thread count, with its paired interval."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeprune.io_atomic import write_atomic


def plot_bench(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Grouped bars (one group per artifact, one bar per thread count); error bars are the ratio's interval
    times the first artifact's median."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    artifacts = list(dict.fromkeys(Path(r["artifact"]).name for r in rows))
    threads = sorted({int(r["threads"]) for r in rows})
    fig = Figure(figsize=(max(5.0, 1.6 * len(artifacts) + 2), 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(threads)
    for k, t in enumerate(threads):
        chosen = {Path(r["artifact"]).name: r for r in rows if int(r["threads"]) == t}
        xs = [i + (k - (len(threads) - 1) / 2) * width for i in range(len(artifacts))]
        medians = [chosen[a]["median_ms"] for a in artifacts]
        scale = [chosen[a]["median_ms"] / chosen[a]["ratio"] if chosen[a]["ratio"] else 0.0 for a in artifacts]
        low = [m - chosen[a]["ratio_low"] * s for m, a, s in zip(medians, artifacts, scale)]
        high = [chosen[a]["ratio_high"] * s - m for m, a, s in zip(medians, artifacts, scale)]
        ax.bar(xs, medians, width, yerr=[low, high], capsize=3, label=f"{t} thread(s)")
    ax.set_xticks(range(len(artifacts)))
    ax.set_xticklabels(artifacts, rotation=15, ha="right")
    ax.set_ylabel("median latency (ms, measured)")
    ax.set_title("edgeprune bench: paired with the first artifact")
    ax.legend(fontsize=8)
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
