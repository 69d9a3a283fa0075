"""report.md's "How latency was measured" section: paired readings, the original's medians over the run, drift."""

from __future__ import annotations

from typing import Any

from edgeprune.paired import CONFIDENCE as PAIRED_CONFIDENCE


def measurement_section(report: dict[str, Any]) -> list[str]:
    """The method in three sentences, the original's medians over time, and any drift (empty if unpaired)."""
    m = report.get("measurement")
    if not m:
        return []
    base = ((report.get("baseline") or {}).get("latency") or {}).get("precision")
    final = ((report.get("final") or {}).get("latency") or {}).get("precision")
    same = "same runtime, threads and precision" if base == final else \
        f"same runtime and threads; the candidates in {final}, the original in {base}"
    lines = ["## How latency was measured", "",
             f"Every candidate was timed against the original's artifact ({same}) in "
             "alternating rounds, and each verdict used the median of the per-round ratios with a bootstrap "
             f"interval ({100 * PAIRED_CONFIDENCE:.0f}%); a ratio whose interval held the budget got more rounds. "
             f"Figures in ms are that ratio times {m.get('anchor', 'the original')}, so a change of the machine's "
             "speed during the run does not move the verdicts.", ""]
    lines += [_disturbed_sentence(report, m), ""]
    medians = m.get("reference_medians") or []
    change = float(m.get("max_change") or 0.0)
    if m.get("drift_detected"):
        lines += [f"**The machine's speed changed during the run:** the original's median moved by "
                  f"{100 * change:+.0f}% (at {float(m.get('max_change_at_s') or 0):.0f} s). The ratios (and the "
                  "speedup) are unaffected; absolute figures in ms are on the anchor named above.", ""]
    else:
        lines += [f"The original's median stayed within {100 * float(m.get('threshold', 0.1)):.0f}% of its first "
                  f"reading all run (largest change {100 * change:+.1f}%).", ""]
    if medians:
        shown = medians if len(medians) <= 12 else medians[:6] + medians[-6:]
        device = any(r.get("device") for r in medians)
        lines += ["| seconds into the run | original's median ms |" + (" CPU clock, temperature |" if device else ""),
                  "|---|---|" + ("---|" if device else "")]
        lines += [f"| {float(r['t_s']):.0f} | {float(r['median_ms']):.3f} |"
                  + (f" {_device(r.get('device') or {})} |" if device else "") for r in shown]
        if len(medians) > len(shown):
            lines.append(f"| … | ({len(medians) - len(shown)} more in report.json) |" + (" |" if device else ""))
        lines.append("")
    return lines


def _disturbed_sentence(report: dict[str, Any], m: dict[str, Any]) -> str:
    """What share of the timed runs was left out because a thread of the process waited for a CPU."""
    final = report.get("speedup_disturbed") or {}
    text = ("Runs during which a thread of the process waited for a CPU (time-slicing: another program had the "
            "core) were left out of every median, because they favour the shorter model: "
            f"{100 * float(m.get('disturbed_share_median') or 0):.0f}% of a measurement's runs in the median "
            f"measurement, {100 * float(m.get('disturbed_share_max') or 0):.0f}% at most")
    if final:
        text += (f", and {100 * float(final.get('runs_left_out_share') or 0):.0f}% of the final pair's runs "
                 f"({int(final.get('rounds_left_out') or 0)} of its rounds left out)")
    return text + "."


def _device(state: dict[str, Any]) -> str:
    """``1500 MHz, 61.2 °C`` from a device state (the fastest clock, the hottest zone); — when none."""
    parts = []
    if state.get("cpu_khz"):
        parts.append(f"{max(state['cpu_khz'].values()) / 1000:.0f} MHz")
    if state.get("temperature_c"):
        parts.append(f"{max(state['temperature_c'].values()):.1f} °C")
    if state.get("vcgencmd_throttled"):
        parts.append(str(state["vcgencmd_throttled"]))
    return ", ".join(parts) or "—"
