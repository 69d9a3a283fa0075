"""The tables of report.md: search rounds, channel widths, per-artifact validation, per-layer latency, time
per stage, files and environment.

Each function takes the report dictionary and returns Markdown lines, or no lines when the report lacks
the (optional) data, so that reports written by older versions still render.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: per-artifact validation columns in display order (others a report carries are appended after them)
_ARTIFACT_COLUMNS = ("format", "file", "max_abs_diff", "top1_agreement", "agreement", "top1", "map50_95", "map50",
                     "miou", "pixel_accuracy", "median_ms", "p90_ms", "passed")
_PERCENT_KEYS = {"top1", "top1_agreement", "agreement", "agreement_with_original", "cv", "miou", "pixel_accuracy",
                 "map50_95", "map50"}
PER_LAYER_ROWS = 10


def cell(value: Any, key: str = "") -> str:
    """One table cell: numbers formatted by their meaning, None as a dash, pipes escaped."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, (int, float)):
        if key in _PERCENT_KEYS and 0 <= value <= 1:
            return f"{100 * value:.2f}%"
        if key.endswith("_ms"):
            return f"{value:.3f}"
        if "diff" in key or "error" in key:
            return f"{value:.2e}"
        return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {cell(v, k)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _ms(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def search_rounds(report: dict[str, Any]) -> list[str]:
    """Every export-and-measure round: predicted (when the latency model made a prediction) vs measured."""
    rounds = (report.get("search") or {}).get("rounds") or []
    if not rounds:
        return []
    predicted_run = _latency_source(report) == "predicted-profile"
    measured_col = "predicted ms (profile)" if predicted_run else "measured ms (median)"
    evaluation = report.get("evaluation") or {}
    key, metric = evaluation.get("metric_key", "top1"), evaluation.get("metric", "top-1")
    rows = []
    for i, r in enumerate(rounds, 1):
        pred, meas = r.get("predicted_ms"), r.get("median_ms")
        error = f"{100 * (float(pred) - float(meas)) / float(meas):+.1f}%" if pred is not None and meas else "—"
        kept = r.get("channels_kept")
        ok = r.get("meets_budget")
        shown = f"{r['blocks_removed']} blocks removed" if r.get("blocks_removed") is not None else \
            "—" if kept is None else f"{100 * float(kept):.1f}%"
        rows.append([str(i), cell(r.get("kind")), shown,
                     _ms(pred), _ms(meas) + (" (noisy)" if r.get("noisy") else ""), error,
                     "—" if ok is None else ("yes" if ok else "no"),
                     "—" if r.get(key) is None else f"{100 * float(r[key]):.2f}%"])
    exports = (report.get("search") or {}).get("exports")
    lines = ["## Search rounds: predicted vs measured latency", ""]
    lines.append("Each round exported a candidate and timed it on the target; *predicted ms* is what the latency "
                 "model expected before measuring (— where no prediction was made), *error* is "
                 "(predicted − measured) / measured." if not predicted_run else
                 "No round was measured: this run's latencies are PREDICTED from the shipped profile.")
    if exports is not None:
        lines[-1] += f" {exports} export(s) in all."
    kinds = {r.get("kind") for r in rounds}
    if "preconfirm" in kinds:
        lines[-1] += (" *preconfirm* is the longer confirming measurement of a candidate taken before fine-tuning "
                      "it (a candidate that misses there is never fine-tuned); *confirm* measures the recovered "
                      "model that ships.")
    if "preconfirm-recheck" in kinds:
        lines[-1] += (" *preconfirm-recheck* measures a candidate once more when its preconfirm missed the budget "
                      "although the search had measured it within; it decides.")
    if "depth-recheck" in kinds:
        lines[-1] += (" *depth-recheck* measures a block count once more when its *depth* round missed the search "
                      "target by at most 10%; the mean of the two readings decided.")
    if "search-upward" in kinds:
        lines[-1] += (" *search-upward* is a wider candidate searched once after a candidate measured far under "
                      "the search target; it replaces that candidate only if measured within the budget.")
    if "qat" in kinds:
        lines[-1] += (" *qat* measures the quantization-aware fine-tuned INT8 artifact (`--qat-epochs`), the same way "
                      "as the final confirmation; it ships only if within the budget and at least as accurate as "
                      "the post-training-quantized one.")
    if "recheck" in kinds:
        lines[-1] += (" *recheck* is one more measurement of the recovered model, taken when its confirmation "
                      "missed the budget although its architecture had confirmed; it decides, and it is the "
                      "figure reported.")
    lines.append("")
    lines += table(["round", "kind", "channels kept", "predicted ms", measured_col, "error", "within budget",
                    metric], rows)
    return lines + [""]


def channel_widths(report: dict[str, Any]) -> list[str]:
    """Per-group channel widths before and after pruning, and what is frozen."""
    groups = report.get("groups") or []
    lines: list[str] = []
    if groups:
        rows = []
        for g in groups:
            before, after = g.get("width_before"), g.get("width_after")
            kept = f"{100 * after / before:.0f}%" if isinstance(before, int) and isinstance(after, int) and before \
                else "—"
            rows.append([f"`{cell(g.get('name'))}`", cell(before), cell(after), kept])
        total_b = sum(g.get("width_before") or 0 for g in groups)
        total_a = sum(g.get("width_after") or 0 for g in groups)
        if total_b:
            rows.append(["**all groups**", f"{total_b:,}", f"{total_a:,}", f"{100 * total_a / total_b:.0f}%"])
        lines += ["## Channel widths per layer group", ""]
        lines += table(["group", "width before", "width after", "kept"], rows) + [""]
    frozen = report.get("frozen_groups") or []
    if frozen:
        lines += ["Frozen (not pruned): " + "; ".join(
            f"`{g.get('name', '?')}` ({g.get('reason', 'no reason given')})" for g in frozen), ""]
    return lines


def artifact_validation(report: dict[str, Any]) -> list[str]:
    """One row per exported artifact: numerical parity, accuracy, latency, pass/fail (whatever is there)."""
    artifacts = [a for a in report.get("artifacts") or [] if isinstance(a, dict)]
    if not artifacts:
        return []
    columns = [c for c in _ARTIFACT_COLUMNS if any(c in a for a in artifacts)]
    # sizes and zeros have their own section (edgeprune.report.size_report)
    columns += sorted({k for a in artifacts for k in a} - set(columns) - {"size", "weight_zeros"})
    # a metric no artifact has (a detector's top-1, a classifier's mAP) is not a column
    columns = [c for c in columns if c in ("format", "file", "passed") or any(a.get(c) is not None for a in artifacts)]
    rows = [[cell(a.get(c), c) for c in columns] for a in artifacts]
    failed = [a for a in artifacts if a.get("passed") is False]
    lines = ["## Validation of every exported artifact", ""]
    lines += table([c.replace("_", " ") for c in columns], rows) + [""]
    if failed:
        lines += [f"**{len(failed)} artifact(s) failed validation.**", ""]
    return lines


def runtime_choice(report: dict[str, Any]) -> list[str]:
    """``--runtime auto``: each runtime x precision the original was tried in, and why the winner won."""
    choice = report.get("runtime_choice")
    if not isinstance(choice, dict):
        return []
    lines = ["## Runtime", "", f"**{choice.get('runtime')}**: {choice.get('reason')}.", ""]
    trials = [t for t in choice.get("trials") or [] if isinstance(t, dict)]
    if trials:
        rows = []
        for t in trials:
            interval = t.get("interval") or [None, None]
            ratio = "" if t.get("ratio") is None else f"{t['ratio']:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"
            rows.append([str(t.get("title")), str(t.get("precision")), ratio, _ms(t.get("median_ms")),
                         cell(t.get("parity")), "" if t.get("agreement") is None else f"{100 * t['agreement']:.1f}%",
                         str(t.get("status"))])
        lines += [f"Each file timed against {choice.get('reference')} in alternating rounds on this machine "
                  "(ratio = its latency / the reference's, with the 95% interval); parity is the relative max "
                  "difference from PyTorch, agreement the INT8 file's share of the original's answers.", ""]
        lines += table(["runtime", "precision", "latency ratio", "median", "parity", "agreement", "status"], rows)
        lines += [""]
    return lines


def per_layer(report: dict[str, Any], plots: Sequence[str] = ()) -> list[str]:
    """The slowest layers before and after pruning, labelled measured (profiler) or predicted (table)."""
    data = report.get("per_layer_latency")
    layers = (data or {}).get("layers") or []
    if not layers:
        return []
    source = str(data.get("source", "unknown source"))
    kind = "measured" if source.startswith("measured") else "PREDICTED, not measured"
    lines = ["## Per-layer latency", "", f"Source: **{source}** ({kind})."]
    if data.get("note"):
        lines[-1] += f" {str(data['note']).capitalize()}."
    lines.append("")
    if "layer_latency.png" in plots:
        lines += ["![per-layer latency before and after pruning](layer_latency.png)", ""]
    rows = []
    for l in layers[:PER_LAYER_ROWS]:
        name = l.get("module") or l.get("name")
        op = f" ({l['op_type']})" if l.get("op_type") else ""
        after = "removed/fused" if l.get("after_ms") is None else _ms(l.get("after_ms"))
        rows.append([f"`{cell(name)}`{op}", _ms(l.get("before_ms")), after])
    unit = data.get("unit", "ms")
    lines += table(["layer", f"before ({unit})", f"after ({unit})"], rows)
    if len(layers) > PER_LAYER_ROWS:
        lines.append(f"\n{len(layers) - PER_LAYER_ROWS} more layer(s) in report.json (`per_layer_latency`).")
    totals = (data.get("total_before_ms"), data.get("total_after_ms"))
    if None not in totals:
        lines.append(f"\nSum over all layers: {_ms(totals[0])} → {_ms(totals[1])} {unit}.")
    return lines + [""]


def stage_times(report: dict[str, Any]) -> list[str]:
    """Wall-clock seconds per pipeline stage, with each stage's share."""
    timings = {k: v for k, v in (report.get("timings_s") or {}).items() if isinstance(v, (int, float))}
    if not timings:
        return []
    total = sum(timings.values())
    rows = [[k, f"{v:.1f}", f"{100 * v / total:.0f}%" if total > 0 else "—"] for k, v in timings.items()]
    rows.append(["**total**", f"{total:.1f}", "100%"])
    return ["## Time per stage", ""] + table(["stage", "seconds", "share"], rows) + [""]


def files(report: dict[str, Any], plots: Sequence[str] = ()) -> list[str]:
    """The files of the result."""
    listed = dict(report.get("files") or {})
    for name in plots:
        listed.setdefault(name, name)
    if not listed:
        return []
    return ["## Files", ""] + [f"- `{name}`: {path}" for name, path in listed.items()] + [""]


def environment(report: dict[str, Any]) -> list[str]:
    """Machine and package versions of the run."""
    env = report.get("environment") or {}
    machine, versions = env.get("machine") or {}, env.get("versions") or {}
    if not machine and not versions:
        return []
    lines = ["## Environment", ""]
    if machine:
        lines.append(f"- machine: {machine.get('cpu', 'unknown CPU')}, {machine.get('logical_cores', '?')} logical "
                     f"cores, governor {machine.get('cpu_governor') or 'unknown'}, {machine.get('os', 'unknown OS')}")
    measured_on = env.get("measured_on") or {}
    if measured_on.get("machine") and measured_on.get("source") == "measured-agent":
        lines.append(f"- latencies measured on: {cell(measured_on['machine'])}")
    shares = measured_on.get("devices") or {}
    if len(shares) > 1:
        lines.append(f"- measurements per device ({len(shares)} identical devices): "
                     + ", ".join(f"{url} {count}" for url, count in shares.items()))
    if versions:
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return lines + [""]


def _latency_source(report: dict[str, Any]) -> str:
    return str(((report.get("final") or {}).get("latency") or {}).get("source", "measured-local"))


def layer_precision(report: dict[str, Any]) -> list[str]:
    """The precision of every compute layer of the shipped artifact, as read from the file."""
    info = report.get("layer_precision") or {}
    layers = info.get("layers") or []
    if not layers:
        return []
    summary = ", ".join(f"{count} {precision}" for precision, count in (info.get("summary") or {}).items())
    rows = [[f"`{cell(layer.get('name'))}`", cell(layer.get("op_type")), cell(layer.get("weights")),
             cell(layer.get("activations")), cell(layer.get("precision"))] for layer in layers]
    return ["## Precision per layer", "", f"{len(layers)} compute layers: {summary} ({info.get('source', '')}).", "",
            "<details><summary>every layer</summary>", "",
            *table(["layer", "op", "weights", "activations", "runs at"], rows), "", "</details>", ""]
