"""The size side of a fit report: report.md's "Size and weight sparsity" section and the accuracy-vs-size plot.

Every fit reports each shipped artifact's bytes on disk and zipped (deflate), the original's, and, with
``--sparsity`` or ``--size-budget``, what weight pruning did: the sparsity of every layer, the zeros read back from
the artifact, the one-shot probes of the size search, and that unstructured zeros make no runtime here faster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeprune.io_atomic import write_atomic
from edgeprune.report.fit_result import headline_accuracy
from edgeprune.report.markdown_sections import table

SIZE_PLOT = "accuracy_vs_size.png"
#: layers listed in report.md's per-layer sparsity table (report.json has all)
SPARSITY_ROWS = 40


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.2f}%"


def _bytes(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def size_section(report: dict[str, Any]) -> list[str]:
    """report.md's lines on sizes and weight sparsity (none for a report without sizes)."""
    size = report.get("size")
    if not isinstance(size, dict):
        return []
    original = size.get("original") or {}
    lines = ["## Size and weight sparsity", ""]
    rows = [["original (" + str(original.get("format", "?")) + ")", _bytes(original.get("raw_bytes")),
             _bytes(original.get("zip_bytes")), "—", "—"]]
    for a in report.get("artifacts") or []:
        s, z = a.get("size") or {}, a.get("weight_zeros") or {}
        rows.append([f"{a.get('file')} ({a.get('format')})", _bytes(s.get("raw_bytes")), _bytes(s.get("zip_bytes")),
                     _pct(z.get("sparsity")), ", ".join(z.get("dtypes") or []) or "—"])
    lines += table(["artifact", "bytes on disk", "bytes zipped (deflate)", "weights zero (read from the file)",
                    "weight storage"], rows) + [""]
    budget = size.get("size_budget_bytes")
    if budget is not None:
        met = "met" if size.get("size_budget_met") else "**not met**"
        lines += [f"Size budget `{size.get('size_budget')}` = {int(budget):,} bytes zipped, judged on "
                  f"{(size.get('shipped') or {}).get('file')}: {met}.", ""]
    sparsity = report.get("sparsity") or {}
    note = sparsity.get("latency_note") or size.get("latency_note")
    if sparsity.get("applied"):
        method = sparsity.get("method") or {}
        how = (f"gradually during a {method.get('finetune_epochs')}-epoch fine-tune ({method.get('schedule')} "
               f"schedule: {_pct(method.get('initial_sparsity', method.get('target_sparsity')))} → "
               f"{_pct(method.get('final_sparsity', method.get('target_sparsity')))} between steps "
               f"{method.get('begin_step')} and {method.get('end_step')}, masks updated every "
               f"{method.get('frequency')} steps, {method.get('updates')} updates)"
               if method.get("kind") == "gradual" else "in one shot, without fine-tuning")
        lines += [f"Weight pruning ({sparsity.get('scope')} magnitude ranking, torch.nn.utils.prune masks made "
                  f"permanent before export): {_pct(sparsity.get('sparsity'))} of the weights of the convolutions and "
                  f"linear layers are zero, reached {how}. Top-1 in PyTorch on the first "
                  f"{sparsity.get('evaluation_images')} evaluation images: {_pct(sparsity.get('dense_top1_pytorch'))} "
                  f"before weight pruning, {_pct(sparsity.get('top1_pytorch'))} after.", ""]
        if sparsity.get("top_up"):
            lines += [f"Pruned further in one shot after the fine-tune to fit the size budget: "
                      f"{', '.join(_pct(s) for s in sparsity['top_up'])}.", ""]
    elif sparsity:
        lines += ["The size budget was met without weight pruning.", ""]
    sparse = sparsity.get("sparse_tflite")
    if sparse:
        if not sparse.get("rules_hold"):
            lines += [f"Sparse LiteRT file: not written. {sparse.get('summary')}.", ""]
        else:
            lines += [f"Sparse LiteRT file: {sparse.get('summary')}. The file rewritten with "
                      f"{sparse.get('sparse_tensors')} 1x1 weights in CSR form ({_bytes(sparse.get('sparse_bytes'))} "
                      f"bytes against {_bytes(sparse.get('dense_bytes'))}) measured {sparse.get('sparse_ms', 0):.3f} ms "
                      f"against {sparse.get('dense_ms', 0):.3f} ms dense, a measured speed-up of "
                      f"{sparse.get('measured_speedup', 0):.2f}x; "
                      + ("the sparse file ships." if sparse.get("shipped") else "the dense file ships."), ""]
    probes = sparsity.get("probes") or []
    if probes:
        lines += ["One-shot probes of the weight sparsity (no fine-tuning), exported and zipped:", ""]
        lines += table(["sparsity", "bytes zipped", "top-1 (PyTorch)"],
                       [[_pct(p["sparsity"]), _bytes(p.get("zip_bytes")), _pct(p.get("top1_pytorch"))]
                        for p in probes]) + [""]
    layers = sparsity.get("layers") or []
    if layers:
        shown = layers[:SPARSITY_ROWS]
        lines += ["Sparsity per layer" + (f" (first {len(shown)} of {len(layers)}; all in report.json)"
                                          if len(layers) > len(shown) else "") + ":", ""]
        lines += table(["layer", "weights", "zero", "sparsity"],
                       [[str(layer["name"]), f"{layer['params']:,}", f"{layer['zeros']:,}", _pct(layer["sparsity"])]
                        for layer in shown]) + [""]
    if note:
        lines += [f"Note: {note}.", ""]
    return lines


def _points(report: dict[str, Any]) -> list[tuple[str, float, float | None, dict[str, Any]]]:
    """(label, zipped bytes, top-1 %, marker style) of every model the report has a size for."""
    size, sparsity = report.get("size") or {}, report.get("sparsity") or {}
    points: list[tuple[str, float, float | None, dict[str, Any]]] = []

    def pct(value: Any) -> float | None:
        return None if value is None else 100.0 * float(value)

    for probe in sparsity.get("probes") or []:
        points.append((f"one shot {100 * probe['sparsity']:.0f}% (PyTorch)", probe["zip_bytes"],
                       pct(probe.get("top1_pytorch")), {"marker": "o", "color": "tab:gray"}))
    if sparsity.get("dense_size"):
        points.append(("before weight pruning (PyTorch)", sparsity["dense_size"]["zip_bytes"],
                       pct(sparsity.get("dense_top1_pytorch")), {"marker": "s", "color": "tab:orange"}))
    original = size.get("original") or {}
    if original.get("zip_bytes") is not None:
        points.append(("original", original["zip_bytes"], pct(headline_accuracy(report["baseline"])),
                       {"marker": "o", "color": "tab:blue"}))
    shipped = size.get("shipped") or {}
    if shipped.get("zip_bytes") is not None:
        points.append(("shipped (final)", shipped["zip_bytes"], pct(headline_accuracy(report["final"])),
                       {"marker": "*", "color": "tab:green"}))
    return points


def plot_accuracy_vs_size(report: dict[str, Any], path: Path) -> Path:
    """Top-1 (%) against the zipped artifact size: original, before and after weight pruning, one-shot probes,
    the size budget; drawn beside accuracy vs latency."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5))
    ax = fig.add_subplot()
    probes_labelled = False
    for label, zipped, accuracy, style in _points(report):
        y = accuracy if accuracy is not None else 0.0
        is_probe = label.startswith("one shot")
        ax.plot([zipped / 1e3], [y], linestyle="none", markersize=14 if style["marker"] == "*" else 8,
                label=None if is_probe and probes_labelled else ("one-shot probe (PyTorch)" if is_probe else label),
                zorder=3, **style)
        probes_labelled = probes_labelled or is_probe
        if not is_probe and accuracy is not None:
            ax.annotate(f"{accuracy:.1f}% @ {zipped / 1e3:,.0f} kB", (zipped / 1e3, y), textcoords="offset points",
                        xytext=(8, 6), fontsize=9)
    budget = (report.get("size") or {}).get("size_budget_bytes")
    if budget is not None:
        ax.axvline(budget / 1e3, color="tab:red", linestyle="--", linewidth=1.5,
                   label=f"size budget {budget / 1e3:,.0f} kB")
    ax.set_xlabel("artifact size zipped, deflate (kB = 1000 bytes)")
    metric = (report.get("evaluation") or {}).get("metric", "top-1")  # a detector's: mAP50-95
    ax.set_ylabel("top-1 accuracy (%)" if metric == "top-1" else f"{metric} (%)")
    model = (report.get("model") or {}).get("spec", "?")
    ax.set_title(f"Accuracy vs compressed size: {model}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    FigureCanvasAgg(fig)
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
