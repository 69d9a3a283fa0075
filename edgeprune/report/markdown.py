"""Render a fit report (the ``report.json`` dictionary) as Markdown for people."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "n/a (no labels)" if value is None else f"{100 * value:.2f}%"


def _ms(stats: dict[str, Any]) -> str:
    return f"{stats['median_ms']:.3f} ms (p90 {stats['p90_ms']:.3f}, CV {100 * stats['cv']:.1f}%, {stats['runs']} runs)"


def render_markdown(report: dict[str, Any]) -> str:
    """A readable summary: outcome, latency, accuracy, size, widths, search rounds, environment."""
    target, base, final = report["target"], report["baseline"], report["final"]
    lat_note = (
        f"{final['latency']['source'].replace('-', ' ')} with {target['runtime']} {final['latency']['runtime_version']} on "
        f"{final['latency']['machine']}, {target['threads']} thread(s), {target['precision']}"
    )
    lines = [
        f"# edgeprune report: {report['model']['spec']} on target `{target['name']}`",
        "",
        f"**Budget {report['budget_ms']:.3f} ms — met.** The exported model runs in "
        f"**{final['latency']['median_ms']:.3f} ms** (median), {report['speedup_measured']:.2f}x faster than the "
        f"original's {base['latency']['median_ms']:.3f} ms. Latencies are {lat_note}.",
        "",
        "| | original | pruned |",
        "|---|---|---|",
        f"| latency (measured) | {_ms(base['latency'])} | {_ms(final['latency'])} |",
        f"| top-1 accuracy | {_pct(base['top1'])} | {_pct(final['top1'])} |",
        f"| MACs | {base['macs']:,} | {final['macs']:,} ({report['mac_reduction']:.2f}x fewer) |",
        f"| parameters | {base['params']:,} | {final['params']:,} |",
        "",
        f"Accuracy: {report['evaluation']['images']} images of `{report['evaluation']['dataset']}`, computed by "
        f"running each exported artifact ({report['artifact']['format']}) in {target['runtime']}. Top-1 agreement of "
        f"pruned with original: {_pct(report['evaluation']['agreement_with_original'])}. Output parity of the artifact "
        "with the "
        f"pruned PyTorch model: max abs diff {report['parity']['max_abs_diff']:.2e}.",
        "",
        "## Method",
        "",
        f"Importance `{report['method']['importance']}`, allocation `{report['method']['allocation']}` "
        f"(channel alignment {target['channel_alignment']}, search aimed {100 * report['method']['search_headroom']:.0f}% "
        "under the budget). "
        f"Batch-norm statistics re-estimated: {'yes' if report['calibration']['bn_recalibrated'] else 'no'} "
        f"({report['calibration']['images']} calibration images from `{report['calibration']['source']}`). "
        f"Fine-tuning: {report['finetune']['epochs']} epoch(s) on {report['finetune']['images']} images "
        f"({report['finetune']['seconds']:.1f} s).",
        "",
        "| round | kind | channels kept | predicted ms | measured ms | within budget |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(report["search"]["rounds"], 1):
        ok = "yes" if r["meets_budget"] else "no"
        predicted = f"{r['predicted_ms']:.3f}" if r.get("predicted_ms") is not None else "—"
        lines.append(f"| {i} | {r['kind']} | {100 * r['channels_kept']:.1f}% | {predicted} | {r['median_ms']:.3f} | {ok} |")
    lines += ["", "## Channel widths", "", "| group | before | after |", "|---|---|---|"]
    for g in report["groups"]:
        lines.append(f"| {g['name']} | {g['width_before']} | {g['width_after']} |")
    if report["frozen_groups"]:
        lines += ["", "Frozen (not pruned): " + "; ".join(f"`{g['name']}` ({g['reason']})" for g in report["frozen_groups"])]
    lines += ["", "## Files", ""] + [f"- `{name}`: {path}" for name, path in report["files"].items()]
    env = report["environment"]
    lines += [
        "",
        "## Environment",
        "",
        f"- machine: {env['machine']['cpu']}, {env['machine']['logical_cores']} logical cores, "
        f"governor {env['machine']['cpu_governor'] or 'unknown'}, {env['machine']['os']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        "- time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in report["timings_s"].items()),
        "",
    ]
    return "\n".join(lines)
