"""PNG plots of a fit report: accuracy against latency, and per-layer latency before and after pruning.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly (no ``pyplot``, no
display, no global backend switch) and written atomically. Every latency axis says where its figures come
from: measured on this machine, measured on the device through an agent, or PREDICTED from a shipped
profile. Accuracies are never invented: a candidate without a ``top1`` is drawn on a latency-only strip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeprune.io_atomic import write_atomic
from edgeprune.report.fit_result import headline_accuracy

log = logging.getLogger(__name__)

ACCURACY_PLOT = "accuracy_vs_latency.png"
LAYER_PLOT = "layer_latency.png"
#: layers shown in the per-layer plot (the slowest before pruning)
TOP_LAYERS = 25
_DPI = 120

_AXIS_LABELS = {
    "measured-local": "measured median latency (ms)",
    "measured-agent": "median latency measured on the device via agent (ms)",
    "predicted-profile": "PREDICTED median latency from shipped profile (ms), not measured",
}


def latency_axis_label(report: dict[str, Any]) -> str:
    """The latency axis label for the report's latency source (measured here, via agent, or predicted)."""
    source = _latency_source(report)
    return _AXIS_LABELS.get(source, f"median latency (ms), source: {source}")


def _latency_source(report: dict[str, Any]) -> str:
    return str(((report.get("final") or {}).get("latency") or {}).get("source", "measured-local"))


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (plots are skipped, with a warning, without it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _save(fig: Any, path: Path) -> Path:
    """Render ``fig`` to PNG at ``path`` atomically (temporary file, then rename)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight"))


def _pct(value: Any) -> float | None:
    """A top-1 fraction (as in report.json) in percent; None when absent."""
    return None if value is None else 100.0 * float(value)


def _points(report: dict[str, Any]) -> tuple[list[tuple[float, float]], list[float]]:
    """Search candidates: (latency, accuracy %) where a round carries the task's metric (``top1``, ``map50_95``,
    ``miou``), else latency only."""
    key = (report.get("evaluation") or {}).get("metric_key", "top1")
    with_acc: list[tuple[float, float]] = []
    latency_only: list[float] = []
    for r in (report.get("search") or {}).get("rounds") or []:
        if r.get("kind") == "baseline" or r.get("median_ms") is None:
            continue
        accuracy = _pct(r.get(key))
        if accuracy is None:
            latency_only.append(float(r["median_ms"]))
        else:
            with_acc.append((float(r["median_ms"]), accuracy))
    return with_acc, latency_only


def plot_accuracy_vs_latency(report: dict[str, Any], path: Path) -> Path:
    """Top-1 (%) against median latency (ms): original, search candidates, final model, budget line."""
    from matplotlib.figure import Figure
    from matplotlib.transforms import blended_transform_factory

    fig = Figure(figsize=(8, 5.5))
    ax = fig.add_subplot()
    base, final = report["baseline"], report["final"]
    base_ms, final_ms = float(base["latency"]["median_ms"]), float(final["latency"]["median_ms"])
    metric = (report.get("evaluation") or {}).get("metric", "top-1")  # a detector's: mAP50-95
    base_acc, final_acc = _pct(headline_accuracy(base)), _pct(headline_accuracy(final))
    with_acc, latency_only = _points(report)
    rug = blended_transform_factory(ax.transData, ax.transAxes)  # x in ms, y in axes fraction
    if with_acc:
        xs, ys = zip(*with_acc)
        ax.scatter(xs, ys, s=36, color="tab:gray", alpha=0.8, label="search candidate", zorder=2)
    if latency_only:
        ax.plot(latency_only, [0.03] * len(latency_only), "|", transform=rug, markersize=18, mew=2,
                color="tab:gray", label="search candidate (latency only: no accuracy evaluated)", zorder=2)
    for ms, acc, style, label in ((base_ms, base_acc, dict(marker="o", color="tab:blue"), "original"),
                                  (final_ms, final_acc, dict(marker="*", color="tab:green"), "pruned (final)")):
        if acc is None:
            ax.plot([ms], [0.03], transform=rug, linestyle="none", markersize=14, label=f"{label} (no labels)",
                    zorder=3, **style)
        else:
            ax.plot([ms], [acc], linestyle="none", markersize=14 if style["marker"] == "*" else 10, label=label,
                    zorder=3, **style)
            ax.annotate(f"{acc:.1f}% @ {ms:.3f} ms", (ms, acc), textcoords="offset points", xytext=(8, 6),
                        fontsize=9)
    budget = report.get("budget_ms")
    if budget is not None:
        ax.axvline(float(budget), color="tab:red", linestyle="--", linewidth=1.5,
                   label=f"budget {float(budget):.3f} ms")
    accs = [a for a in (base_acc, final_acc) if a is not None] + [y for _, y in with_acc]
    if accs:
        low, high = min(accs), max(accs)
        pad = max(2.0, 0.1 * (high - low))
        ax.set_ylim(max(0.0, low - pad), min(100.0, high + pad) if high <= 100.0 else high + pad)
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no labelled evaluation data: accuracy not available", transform=ax.transAxes,
                ha="center", va="center", color="tab:gray")
    if latency_only and not with_acc:
        ax.text(0.99, 0.10, "candidates were measured for latency only (ticks at the bottom)",
                transform=ax.transAxes, ha="right", fontsize=8, color="tab:gray")
    ax.set_xlabel(latency_axis_label(report))
    ax.set_ylabel(f"{metric} (%)" if metric != "top-1" else "top-1 accuracy (%)")
    target = (report.get("target") or {}).get("name", "?")
    model = (report.get("model") or {}).get("spec", "?")
    ax.set_title(f"Accuracy vs latency: {model} on target {target}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    return _save(fig, path)


def _layer_label(layer: dict[str, Any], width: int = 42) -> str:
    name = str(layer.get("module") or layer.get("name", "?"))
    op = layer.get("op_type")
    label = f"{name} ({op})" if op and layer.get("module") else name
    return label if len(label) <= width else "…" + label[-(width - 1):]


def plot_layer_latency(per_layer: dict[str, Any], path: Path, top: int = TOP_LAYERS,
                       subtitle: str = "") -> Path:
    """Horizontal grouped bars of the ``top`` slowest layers (before pruning), before and after."""
    from matplotlib.figure import Figure

    layers = sorted((l for l in per_layer.get("layers") or [] if l.get("before_ms") is not None),
                    key=lambda l: -float(l["before_ms"]))[:top]
    if not layers:
        raise ValueError("per_layer_latency has no layers to plot")
    source = str(per_layer.get("source", "unknown source"))
    unit = str(per_layer.get("unit", "ms"))
    n = len(layers)
    fig = Figure(figsize=(9, max(3.5, 0.38 * n + 1.8)))
    ax = fig.add_subplot()
    ys = list(range(n))
    height = 0.4
    before = [float(l["before_ms"]) for l in layers]
    after = [float(l["after_ms"]) if l.get("after_ms") is not None else 0.0 for l in layers]
    ax.barh([y - height / 2 for y in ys], before, height, color="tab:blue", label="before pruning")
    ax.barh([y + height / 2 for y in ys], after, height, color="tab:green", label="after pruning")
    for y, layer in zip(ys, layers):
        if layer.get("after_ms") is None:
            ax.text(0, y + height / 2, " removed or fused after pruning", va="center", fontsize=7, color="tab:gray")
    ax.set_yticks(ys)
    ax.set_yticklabels([_layer_label(l) for l in layers], fontsize=8)
    ax.set_ylim(n - 0.5, -0.6)  # slowest at the top, no empty margin
    first, _, rest = source.partition(" ")
    loud = f"{first.upper()} {rest}".strip() if first in ("measured", "predicted") else source
    ax.set_xlabel(f"latency per layer ({unit}), {source}")
    total = len(per_layer.get("layers") or [])
    shown = f"top {n} of {total} layers" if total > n else f"all {n} layers"
    ax.set_title(f"Per-layer latency before/after pruning: {loud}\n{shown}, slowest before pruning first"
                 + (f"; {subtitle}" if subtitle else ""), fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def write_plots(out_dir: Path, report: dict[str, Any]) -> list[str]:
    """Write every plot the report has data for into ``out_dir``; returns the file names written.

    The per-layer plot needs ``report["per_layer_latency"]``; without it (or without matplotlib) a plot
    is skipped and the reason logged.
    """
    if not matplotlib_available():
        log.warning("matplotlib is not installed: report plots skipped (pip install matplotlib)")
        return []
    out_dir = Path(out_dir)
    written = []
    jobs: list[tuple[str, Callable[[], Path]]] = [
        (ACCURACY_PLOT, lambda: plot_accuracy_vs_latency(report, out_dir / ACCURACY_PLOT))]
    if report.get("size"):
        from edgeprune.report.size_report import SIZE_PLOT, plot_accuracy_vs_size

        jobs.append((SIZE_PLOT, lambda: plot_accuracy_vs_size(report, out_dir / SIZE_PLOT)))
    per_layer = report.get("per_layer_latency")
    if per_layer and per_layer.get("layers"):
        model = (report.get("model") or {}).get("spec", "")
        jobs.append((LAYER_PLOT, lambda: plot_layer_latency(per_layer, out_dir / LAYER_PLOT, subtitle=model)))
    else:
        log.info("no per-layer latency in the report (runtime without a layer profiler, or an older report): "
                 "%s not drawn", LAYER_PLOT)
    for name, draw in jobs:
        draw()
        written.append(name)
    return written
