"""Render a fit report (the ``report.json`` dictionary) as Markdown for people.

Only the core of a report is required (``target``, ``baseline``, ``final`` with their ``latency``, and
``budget_ms``); every other section is rendered when present and left out otherwise, so reports written
by older versions still render. Where latencies were predicted rather than measured, the report says
"PREDICTED, not measured" next to every latency figure.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from edgeprune.report import markdown_sections as sections
from edgeprune.report.markdown_measurement import PAIRED_CONFIDENCE, measurement_section
from edgeprune.report.size_report import size_section

#: plot file → alt text, in the order they appear
_PLOTS = {"accuracy_vs_latency.png": "accuracy vs latency", "accuracy_vs_size.png": "accuracy vs compressed size"}


def _pct(value: float | None) -> str:
    return "n/a (no labels)" if value is None else f"{100 * value:.2f}%"


def _ms(stats: dict[str, Any]) -> str:
    """A latency summary; a prediction (no runs) shows only its value."""
    median = stats.get("median_ms")
    if median is None:
        return "—"
    if not stats.get("runs"):
        return f"{median:.3f} ms"
    extra = []
    if stats.get("p90_ms") is not None:
        extra.append(f"p90 {stats['p90_ms']:.3f}")
    if stats.get("cv") is not None:
        extra.append(f"CV {100 * stats['cv']:.1f}%")
    extra.append(f"{stats['runs']} runs")
    noisy = ", **noisy**" if stats.get("noisy") else ""
    return f"{median:.3f} ms ({', '.join(extra)}{noisy})"


def latency_provenance(report: dict[str, Any]) -> str:
    """One sentence saying where the latencies come from: measured here, measured on the device through an
    agent, or PREDICTED from a shipped profile (and then plainly not measured)."""
    target = report.get("target") or {}
    lat = (report.get("final") or {}).get("latency") or {}
    source = lat.get("source", "measured-local")
    runtime = f"{target.get('runtime', lat.get('backend', 'the runtime'))} {lat.get('runtime_version', '')}".strip()
    precision = lat.get("precision", target.get("precision", "?"))
    base_precision = ((report.get("baseline") or {}).get("latency") or {}).get("precision", precision)
    if base_precision != precision:  # an INT8 run: the candidates quantized, the original as the user has it
        precision = f"{precision} (the original in {base_precision})"
    setup = f"{target.get('threads', lat.get('threads', '?'))} thread(s), {precision}"
    machine = lat.get("machine") or "unknown machine"
    if source == "measured-local":
        return (f"**Latencies were measured on the target** (this machine, {machine}) with {runtime}, {setup}: "
                "median of one inference at batch size 1.")
    if source == "measured-agent":
        return (f"**Latencies were measured on the target device through an edgeprune agent** ({machine}) with "
                f"{runtime}, {setup}: median of one inference at batch size 1.")
    if source == "predicted-profile":
        profile = target.get("profile") or "the target's profile"
        return (f"**Latencies are PREDICTED, not measured**: they come from the shipped profile `{profile}` "
                f"({machine}) for {runtime}, {setup}; nothing was timed on the device"
                + (f" (the profile's expected error: {lat['expected_error']})" if lat.get("expected_error") else "")
                + ". Run `edgeprune agent` on the device and pass `--device URL` to measure them.")
    return f"**Latency source: {source}** ({runtime}, {setup}, {machine})."


def _precision_word(report: dict[str, Any]) -> str:
    """" INT8" when the shipped artifact is quantized, else nothing."""
    return " INT8" if ((report.get("final") or {}).get("latency") or {}).get("precision") == "int8" else ""


def _headline(report: dict[str, Any]) -> list[str]:
    target, base, final = report.get("target") or {}, report["baseline"], report["final"]
    predicted = final["latency"].get("source") == "predicted-profile"
    verb = "is predicted to run" if predicted else "runs"
    status = str(report.get("status", "budget met"))
    speedup = report.get("speedup_measured", report.get("speedup_predicted"))
    if speedup is None and final["latency"].get("median_ms"):
        speedup = base["latency"]["median_ms"] / final["latency"]["median_ms"]
    if report["budget_ms"] is None:  # a size-only fit: latency measured and reported, not judged
        verdict, faster = f"**{status[0].upper()}{status[1:]}.**", "the speed of the original's"
    else:
        budget = f"Budget {report['budget_ms']:.3f} ms" + (f" ({report['budget_spec']})"
                                                            if report.get("budget_spec") else "")
        verdict, faster = f"**{budget}: {status}.**", "faster than the original's"
    model = (report.get("model") or {}).get("spec", "model")
    return [
        f"# edgeprune report: {model} on target `{target.get('name', '?')}`",
        "",
        f"{verdict} The exported{_precision_word(report)} model {verb} in "
        f"**{final['latency']['median_ms']:.3f} ms** "
        f"(median), {speedup:.2f}x {faster} {base['latency']['median_ms']:.3f} ms"
        + (f" (paired with the original: {report['speedup_interval'][0]:.2f}–{report['speedup_interval'][1]:.2f}x, "
           f"{100 * PAIRED_CONFIDENCE:.0f}% interval)." if report.get("speedup_interval") else "."),
        "",
        latency_provenance(report),
        "",
    ]


#: the summary table's accuracy rows of each task other than classification: (label, key in ``metrics``)
_TASK_ROWS: dict[str, tuple[tuple[str, str], ...]] = {
    "detection": (("mAP50-95", "map50_95"), ("mAP50", "map50")),
    "segmentation": (("mIoU", "miou"), ("pixel accuracy", "pixel_accuracy")),
}
#: how each task's agreement of the pruned artifact with the original reads ({} is the percentage)
_AGREEMENT_SENTENCES = {
    "classification": "Top-1 agreement of pruned with original: {}.",
    "detection": "Agreement of pruned with original: {} (the mAP50-95 of the pruned model's boxes scored against "
                 "the original's boxes with score >= 0.25 as ground truth; mAP by faster-coco-eval, NMS outside the "
                 "model at IoU 0.7).",
    "segmentation": "Pixel agreement of pruned with original: {} (the share of pixels whose class, the arg-max of "
                    "the output's class logits, is the original's).",
}


def _summary_table(report: dict[str, Any]) -> list[str]:
    base, final = report["baseline"], report["final"]
    predicted = final["latency"].get("source") == "predicted-profile"
    label = "latency (PREDICTED, not measured)" if predicted else "latency (measured)"
    rows = [[label, _ms(base["latency"]), _ms(final["latency"])]]
    task = (report.get("evaluation") or {}).get("task", "classification")
    if task == "classification":
        rows.append(["top-1 accuracy", _pct(base.get("top1")), _pct(final.get("top1"))])
    else:  # a detector's COCO metrics, a segmenter's mIoU: dashes when the data has no boxes or masks
        before, after = base.get("metrics") or {}, final.get("metrics") or {}
        rows += [[label, _pct(before.get(key)), _pct(after.get(key))] for label, key in _TASK_ROWS.get(task, ())]
    if base.get("macs") is not None and final.get("macs") is not None:
        fewer = f" ({report['mac_reduction']:.2f}x fewer)" if report.get("mac_reduction") else ""
        rows.append(["MACs", f"{base['macs']:,}", f"{final['macs']:,}{fewer}"])
    if base.get("params") is not None and final.get("params") is not None:
        rows.append(["parameters", f"{base['params']:,}", f"{final['params']:,}"])
    return sections.table(["", "original", "pruned"], rows) + [""]


def _evaluation(report: dict[str, Any]) -> list[str]:
    ev, target = report.get("evaluation") or {}, report.get("target") or {}
    parts = []
    if ev:
        fmt = (report.get("artifact") or {}).get("format", "artifact")
        parts.append(f"Accuracy: {ev.get('images', '?')} images of `{ev.get('dataset', '?')}`, computed by running "
                     f"each exported artifact ({fmt}) in {ev.get('runtime', target.get('runtime', 'the runtime'))}.")
        if ev.get("note"):
            parts.append(ev["note"][0].upper() + ev["note"][1:] + ".")
        if ev.get("agreement_with_original") is not None:
            parts.append(_AGREEMENT_SENTENCES.get(ev.get("task", "classification"), _AGREEMENT_SENTENCES["detection"])
                         .format(_pct(ev["agreement_with_original"])))
    labels = report.get("label_check") or {}
    if labels.get("labels_from"):
        parts.append(f"Labels: {labels['labels_from']}.")
    if labels.get("suspect"):
        parts.append(f"**Warning:** {labels['message']}.")
    parity = report.get("parity") or {}
    if parity.get("max_abs_diff") is not None:
        parts.append(f"Output parity of the artifact with the {parity.get('reference', 'pruned PyTorch model')}: "
                     f"max abs diff {parity['max_abs_diff']:.2e}.")
    return [" ".join(parts), ""] if parts else []


def _plots(plots: Collection[str]) -> list[str]:
    shown = [f"![{alt}]({name})" for name, alt in _PLOTS.items() if name in plots]
    if not shown:
        return []
    heading = "## Accuracy vs latency" + (" and compressed size" if len(shown) > 1 else "")
    return [heading, ""] + shown + [""]


def _guard_sentence(guard: dict[str, Any] | None) -> str:
    """The uniform-cut guard's comparison (:mod:`edgeprune.fit.loop.guard`), or nothing when it did not run."""
    if not guard:
        return ""
    searched, uniform = guard.get("latency_search") or {}, guard.get("uniform")
    if not uniform:
        return f" Uniform-cut guard: {guard.get('reason', 'not compared')}; the latency search's widths shipped."
    shipped = "one keep ratio for every group" if guard.get("chosen") == "uniform" else "the latency search's widths"
    shipped += f" went on ({guard['reason']})" if guard.get("reason") else " went on"
    return (f" Uniform-cut guard: the latency search's widths ({100 * searched.get('kept_channels', 0):.1f}% of "
            f"channels, {searched.get('measured_ms', 0):.3f} ms, output distortion {searched.get('distortion', 0):.4g}) "
            f"against one keep ratio for every group ({100 * uniform.get('kept_channels', 0):.1f}%, "
            f"{uniform.get('measured_ms', 0):.3f} ms, {uniform.get('distortion', 0):.4g}), both measured within "
            f"{guard.get('ceiling_ms', 0):.3f} ms and compared by output distortion on calibration images as the "
            f"recovery leaves them before fine-tuning: {shipped}.")


def _method(report: dict[str, Any]) -> list[str]:
    method, target = report.get("method") or {}, report.get("target") or {}
    if not method:
        return []
    text = f"Importance `{method.get('importance', '?')}`, allocation `{method.get('allocation', '?')}`"
    details = []
    if target.get("channel_alignment") is not None:
        details.append(f"channel alignment {target['channel_alignment']}")
    if method.get("search_headroom") is not None:
        details.append(f"search aimed {100 * method['search_headroom']:.0f}% under the budget")
    if method.get("latency_model"):
        details.append(f"latency model: {method['latency_model']}")
    text += f" ({', '.join(details)})." if details else "."
    text += _guard_sentence(method.get("uniform_guard"))
    quant = method.get("quantization")
    if quant:
        text += (f" Quantized to {str(quant.get('precision', 'int8')).upper()} by `{quant.get('tool', '?')}` "
                 f"({quant.get('format', '?')}; weights {quant.get('weights', '?')}; activations "
                 f"{quant.get('activations', '?')}, on {quant.get('calibration_images', '?')} calibration images); "
                 "every candidate was measured quantized.")
    qat = method.get("qat")
    if qat:
        text += _qat_sentence(qat)
    choice = method.get("precision_choice")
    if choice:
        text += f" Precision chosen by `--precision auto`: {str(choice.get('precision', '?')).upper()} ({choice.get('reason', '?')})."
    mixed = (choice or {}).get("mixed")
    if mixed:
        sensitive = ", ".join(f"`{e['layer']}` {e['kl_removed_nats']:.3g}" for e in mixed.get("most_sensitive", [])[:5])
        text += (f" Mixed precision: the {mixed.get('layers', '?')} compute layers were each left in float alone "
                 f"on {mixed.get('sensitivity_images', '?')} calibration images; most sensitive (KL removed, nats): "
                 f"{sensitive}. Kept in float: {', '.join(f'`{n}`' for n in mixed.get('float_layers', [])) or 'none'} "
                 f"(agreement on {mixed.get('images', '?')} calibration images {100 * mixed.get('int8_agreement', 0):.1f}% "
                 f"→ {100 * mixed.get('agreement', 0):.1f}%).")
    elif quant and quant.get("float_layers"):
        text += f" Left in float (--keep-float): {', '.join(f'`{n}`' for n in quant['float_layers'])}."
    blocks = method.get("blocks")
    if blocks:
        removed = blocks.get("removed") or []
        text += (f" Depth pruning: {len(removed)} of {blocks.get('removable', '?')} removable residual blocks "
                 f"removed ({', '.join(f'`{n}`' for n in removed) or 'none'}), greedily, least output distortion "
                 "(after batch-norm re-estimation) first.")
    calib, finetune = report.get("calibration") or {}, report.get("finetune") or {}
    if calib:
        text += (f" Calibration (importance scores, reconstruction, block order, batch-norm re-estimation): "
                 f"{calib.get('source', '?')}. Batch-norm statistics re-estimated: "
                 f"{'yes' if calib.get('bn_recalibrated') else 'no'}.")
        recon = calib.get("reconstruction")
        if recon:
            text += (f" Least-squares reconstruction of {recon.get('layers', '?')} layer(s): relative output error "
                     f"{recon.get('mean_error_before', float('nan')):.3f} → {recon.get('mean_error_after', float('nan')):.3f}.")
    if finetune:
        text += _finetune_sentence(finetune)
    return ["## Method", "", text, ""]


def _qat_sentence(qat: dict[str, Any]) -> str:
    """One sentence on ``--qat-epochs``: skipped and why, or what ran and which INT8 artifact shipped."""
    if not qat.get("ran"):
        return f" Quantization-aware fine-tuning: {qat.get('reason', 'skipped')}."

    ptq, trained = qat.get("ptq") or {}, qat.get("qat") or {}

    def score(side: dict[str, Any]) -> str:  # top-1, or without labels the agreement with the original
        if side.get("top1") is None and side.get("agreement_with_original") is not None:
            return f"{_pct(side['agreement_with_original'])} agreement with the original"
        return _pct(side.get("top1"))

    shipped = "the QAT artifact shipped" if qat.get("shipped") == "qat" else str(qat.get("reason", "?"))
    return (f" Quantization-aware fine-tuning (`{qat.get('tool', 'NNCF')}`): {qat.get('epochs', 0)} epoch(s) on "
            f"{qat.get('images', '?')} images ({qat.get('seconds', 0.0):.1f} s, lr {qat.get('lr', '?')}, "
            f"{qat.get('batch_norms_folded', 0)} batch norms folded); top-1 in the runtime: PTQ artifact "
            f"{score(ptq)} ({ptq.get('median_ms', float('nan')):.3f} ms), QAT artifact "
            f"{score(trained)} ({trained.get('median_ms', float('nan')):.3f} ms); {shipped}.")


def _finetune_sentence(finetune: dict[str, Any]) -> str:
    """One sentence on the recovery fine-tune: epochs, images, time, and (when it ran) its recipe."""
    text = (f" Fine-tuning: {finetune.get('epochs', 0)} epoch(s) on {finetune.get('images', 0)} images "
            f"({finetune.get('seconds', 0.0):.1f} s)")
    if not finetune.get("epochs"):
        return text + "."
    recipe = [f"{finetune.get('schedule', '?')} schedule from learning rate {finetune.get('lr', '?')}"]
    if finetune.get("distill"):
        recipe.append(f"distillation from the original (T={finetune.get('distill_temperature')}, "
                      f"alpha={finetune.get('distill_alpha')})")
    hints = finetune.get("feature_hints")
    if hints:
        stages = hints.get("stages")
        indexed = set(hints.get("matched_by_kept_channels") or ())
        where = ", ".join(f"`{s}`" + (" (its kept channels)" if s in indexed else "") for s in stages) if stages \
            else "no stage (no stage's kept channels could be traced)"
        recipe.append(f"feature hints (weight {hints.get('weight')}) at {where}")
    augment = finetune.get("augment", "none")
    recipe.append("no augmentation" if augment == "none" else f"augmentation {augment}")
    where = finetune.get("device")
    if where:
        processes = int(finetune.get("processes") or 1)
        recipe.append(f"trained on {where}" + (" with mixed precision" if finetune.get("mixed_precision") else "")
                      + (f", data-parallel on {processes} processes" if processes > 1 else ""))
    return text + ", " + ", ".join(recipe) + "."


def render_markdown(report: dict[str, Any], plots: Collection[str] = ()) -> str:
    """A readable summary of a fit report.

    Args:
        report: report.json's content.
        plots: file names of plots written beside report.md (``accuracy_vs_latency.png``,
            ``layer_latency.png``); each one named here is embedded by a relative link.

    Sections: outcome and where latencies come from, summary table, evaluation, plots, per-artifact
    validation, method, search rounds (predicted vs measured), per-layer latency, channel widths, precision per
    layer, time per stage, files, environment.

    >>> "PREDICTED" in render_markdown(predicted_report)    # doctest: +SKIP
    True
    """
    lines = _headline(report) + _summary_table(report) + _evaluation(report) + _plots(plots)
    lines += sections.runtime_choice(report)
    lines += sections.artifact_validation(report) + size_section(report) + _method(report)
    lines += measurement_section(report)
    lines += sections.search_rounds(report)
    lines += sections.per_layer(report, tuple(plots)) + sections.channel_widths(report) + sections.layer_precision(report)
    lines += sections.stage_times(report) + sections.files(report, tuple(plots)) + sections.environment(report)
    return "\n".join(lines).rstrip("\n") + "\n"
