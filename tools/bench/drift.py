"""Drift benchmark: fits while another job loads the machine on and off, their verdicts checked afterwards.

    python tools/bench/drift.py                      # every case (about 30 min on 2 cores), then the docs
    python tools/bench/drift.py --cases r56-rel60    # one case (results merge with earlier ones)
    python tools/bench/drift.py --render-only        # rewrite the docs section from the saved results
    python tools/bench/drift.py --cases r56-int8-rel30-x3 r56-rel50-x3-onoff   # the oversubscribed cases

Each case runs ``edgeprune fit`` (ONNX Runtime, 1 thread, LASSO, no fine-tune) as a user would, while a load
generator busies the other core for ``period`` seconds, idles for ``period`` seconds, and so on. The
oversubscribed cases (issue 35) run ``busy`` such generators at once, more busy processes than cores, steady
(period 0) or on and off: there pairing alone does not hold, because a longer run is preempted more often. Then the
load stops and, on the quiet machine, an independent paired timing (tests/paired_timing.py: ONNX Runtime
called directly, A, B, A, B ... in rounds of 40 runs) of the shipped ``model.onnx`` against the original's
export checks what the fit said:

* **false "budget met"**: the fit shipped, but the independent ratio's 90% interval lies wholly above the
  budget (relative budgets: the share; absolute budgets: the budget over the original's quiet median);
* **give-up**: the fit ended "not met reliably" on a budget that a shipped run of the same model reached;
* **speedup error**: |reported speedup / independent speedup - 1|;
* **pairing cost**: seconds spent timing the original beside the candidates, against the fit's wall time.

Absolute budgets are set at the start of the case from the original's quiet median (independent timing),
so they ask for about the stated share; the fit runs under the load and anchors on the original's median
over its run. Needs ../shared/data (the pretrained weights and images). Results:
docs/figures/drift.json and the section "Drift: verdicts under changing load" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from docs_section import write_section  # noqa: E402
from paired_timing import independent_rounds  # noqa: E402  (written apart from edgeprune's pairing)
from provenance import git_commit, provenance  # noqa: E402

from edgeprune.environment import machine_info, package_versions  # noqa: E402
from edgeprune.runtimes.onnx_export import export_onnx  # noqa: E402
from edgeprune.train.default_weights import load_model  # noqa: E402

log = logging.getLogger("drift")
SHARED = REPO.parent / "shared" / "data"
R56 = ("cifar-resnet56", SHARED / "models/cifar10/akamaster_resnet/resnet56-4bfd9763.th",
       SHARED / "cifar10/cifar10_test_lossless_first1017.npz")
MNV2 = ("torchvision:mobilenet_v2", SHARED / "models/imagenet/mobilenet_v2-b0353104.pth",
        SHARED / "samples/imagenet_foolbox")
SECTION = "## Drift: verdicts under changing load"
#: what the table does not say by itself (kept with the script, so a rerun keeps it)
NOTES = """How to read it. *Drift seen by fit* is the largest change of the original's median over the run against
its first reading. The *limit* of an absolute budget moves with the quiet machine's own drift between the moment
its budget was set and the check; the fit judged it on the original's median over its run. One run per case,
five cases: the goals are met on this sample, not proven for every load. (The `+dirty` of this run's commit is
its own results file, removed before the run so that it starts afresh; no code differed from 8e044a2.)

History. A first run at a839e97 (before the confirmation was timed until its interval was within ±2.5%, with a
test job also sharing the machine) shipped r56-rel60 at a reported ratio of 0.487 [0.291, 0.548] that the
independent timing put at 0.574: a 17.9% speedup error from a 20-round confirmation whose reference rounds
alternated between 1.9 and 4.0 ms; the verdict (met) was right, the figure was not. A second run at 58c0324
(that fix in, before the width search gave back its last step's slack) met every goal too: largest speedup
error 2.7%, and r56-rel60 shipped at 0.534 of the original against a 0.600 limit; with the slack given back it
ships at 0.584 (table above), keeping more channels for the same budget.

The oversubscribed rows (issue 35; three load processes on two cores, the fit's own thread a fourth) ran on
another machine and day than the first five. Under that load up to 62% of a measurement's timed runs waited for a
CPU and were left out; on the runs that did not wait, the reported ratios are within 1.1% of the quiet check, and
the INT8 fit at 37% shipped 0.369 against a 0.370 limit, which the quiet check put at 0.365: met, and close under
the budget. At 30% the same fit stopped with exit 2 ("cannot be met"): on this AMD EPYC CPU (no VNNI) INT8 at the
narrowest widths the search allows measured 0.807 ms against a 0.708 ms budget, so no model was shipped and no
verdict was false; that floor was measured under the load and not re-checked on the quiet machine. Raw medians on
the same machine and load read the unpruned INT8 ResNet-56 at 0.10-0.16 of its fp32 original where undisturbed
runs read 0.38-0.40 (session 25's script, README "How edgeprune measures")."""
RESULTS = REPO / "docs" / "figures" / "drift.json"
#: rounds of the independent check (each round times both files for 40 runs)
CHECK_ROUNDS = 30


@dataclass(frozen=True)
class Case:
    """One fit under load: model, budget (a share; absolute when ``absolute``) and the load's period (s)."""

    name: str
    model: tuple[str, Path, Path]
    share: float
    absolute: bool
    period_s: float  # 0: busy all the time
    busy: int = 1  # load processes at once (more than the cores: oversubscribed)
    precision: str = "fp32"


CASES = (
    Case("r56-rel60", R56, 0.60, False, 4.0),
    Case("r56-rel50", R56, 0.50, False, 15.0),
    Case("r56-abs60", R56, 0.60, True, 30.0),
    Case("mnv2-rel70", MNV2, 0.70, False, 10.0),
    Case("mnv2-abs75", MNV2, 0.75, True, 60.0),
    # oversubscribed (issue 35): three busy processes on two cores; a budget INT8 alone does not reach
    Case("r56-int8-rel30-x3", R56, 0.30, False, 0.0, busy=3, precision="auto"),
    # the same at 37%: on the AMD EPYC VM of 2026-12-07, 30% was out of reach (INT8 at the narrowest widths measured
    # 0.807 ms against 0.708), while INT8 alone reads about 39% of the float original there (VNNI CPUs: far less)
    Case("r56-int8-rel37-x3", R56, 0.37, False, 0.0, busy=3, precision="auto"),
    Case("r56-rel50-x3-onoff", R56, 0.50, False, 10.0, busy=3),
)

LOAD_CODE = """
import sys, time
period = float(sys.argv[1])
while period <= 0:
    sum(i * i for i in range(10000))
while True:
    end = time.perf_counter() + period
    while time.perf_counter() < end:
        sum(i * i for i in range(10000))
    time.sleep(period)
"""


def _load_text(case: Case) -> str:
    return "steady" if case.period_s <= 0 else f"{case.period_s:.0f} s on / {case.period_s:.0f} s off"


def bootstrap_interval(ratios: list[float], seed: int = 0) -> tuple[float, float]:
    """90% percentile-bootstrap interval of the median of ``ratios``."""
    values = np.asarray(ratios)
    picks = np.random.default_rng(seed).integers(0, values.size, size=(2000, values.size))
    medians = np.median(values[picks], axis=1)
    return float(np.quantile(medians, 0.05)), float(np.quantile(medians, 0.95))


def original_onnx(case: Case, work: Path) -> Path:
    """The original model's ONNX export, as the fit exports it (opset, folding), for the independent check."""
    spec, weights, _ = case.model
    bundle = load_model(spec, weights)
    shape = bundle.preprocessing.input_shape if bundle.preprocessing else (3, 224, 224)
    path = work / "original.onnx"
    export_onnx(bundle.model.eval(), torch.zeros(1, *shape), path)
    return path


def quiet_median_ms(path: Path) -> float:
    """The file's median latency on the quiet machine (ms), timed against itself for the same schedule."""
    readings = independent_rounds(path, path, rounds=10)
    return 1000.0 * statistics.median(r for pair in readings for r in pair)


def run_case(case: Case, out_root: Path) -> dict[str, Any]:
    """Run one fit under the on/off load, then check its artifact on the quiet machine."""
    spec, weights, data = case.model
    work = out_root / case.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    original = original_onnx(case, work)
    budget_ms = None
    if case.absolute:
        budget_ms = round(case.share * quiet_median_ms(original), 3)
        budget = f"{budget_ms}ms"
    else:
        budget = f"{100 * case.share:.0f}%"
    command = [str(Path(sys.executable).with_name("edgeprune")), "fit", "--model", spec, "--weights", str(weights),
               "--data", str(data), "--importance", "lasso", "--target", "cpu", "--budget", budget,
               "--precision", case.precision, "--out", str(work / "out"), "--force",
               "--min-agreement", "0"]  # no fine-tune: the latency verdict is benchmarked, not the accuracy
    log.info("%s: %s (%d load process(es), %s)", case.name, " ".join(command), case.busy, _load_text(case))
    loads = [subprocess.Popen([sys.executable, "-c", LOAD_CODE, str(case.period_s)]) for _ in range(case.busy)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        for load in loads:
            load.kill()
            load.wait(timeout=30)
    wall_s = time.perf_counter() - start
    (work / "fit.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    row: dict[str, Any] = {**asdict(case), "model": spec, "budget": budget, "exit_code": done.returncode,
                           "fit_wall_s": wall_s, "message": (done.stderr.strip().splitlines() or [""])[-1],
                           "commit": git_commit(), "date": time.strftime("%Y-%m-%d")}
    row.pop("period_s")
    row["load_period_s"] = case.period_s
    report_path = work / "out" / "report.json"
    if done.returncode != 0 or not report_path.exists():
        row["outcome"] = ("not met reliably" if "not met reliably" in done.stderr else
                          "stopped: CPU oversubscribed" if done.returncode == 5 else "failed")
        log.info("%s: %s: %s", case.name, row["outcome"], row["message"])
        return row
    report = json.loads(report_path.read_text())
    time.sleep(5.0)  # the load is off; let the other core settle
    readings = independent_rounds(original, work / "out" / "model.onnx", rounds=CHECK_ROUNDS)
    ratios = [c / r for r, c in readings]
    ratio = statistics.median(ratios)
    low, high = bootstrap_interval(ratios)
    original_ms = 1000.0 * statistics.median(r for r, _ in readings)
    limit = budget_ms / original_ms if case.absolute else case.share
    reference_s = sum(r["paired"].get("reference_s", 0.0) for r in report["search"]["rounds"] if "paired" in r)
    candidate_s = sum(r["paired"].get("candidate_s", 0.0) for r in report["search"]["rounds"] if "paired" in r)
    reported_ratio = 1.0 / report["speedup_measured"]
    row.update({
        "outcome": "shipped",
        "reported_ratio": reported_ratio,
        "reported_interval": [1.0 / report["speedup_interval"][1], 1.0 / report["speedup_interval"][0]],
        "reported_final_ms": report["final"]["latency"].get("median_ms"),
        "independent_ratio": ratio, "independent_interval": [low, high],
        "independent_original_ms": original_ms, "limit_ratio": limit,
        "false_met": low > limit,
        "speedup_error": (1.0 / reported_ratio) / (1.0 / ratio) - 1.0,
        "drift_max_change": report.get("measurement", {}).get("max_change"),
        "drift_detected": report.get("measurement", {}).get("drift_detected"),
        "measured_rounds": sum(1 for r in report["search"]["rounds"] if r.get("measured")),
        "reference_timing_s": reference_s, "candidate_timing_s": candidate_s,
        "disturbed_share_max": report.get("measurement", {}).get("disturbed_share_max"),
        "final_disturbed_share": (report.get("speedup_disturbed") or {}).get("runs_left_out_share"),
    })
    log.info("%s: shipped at a reported ratio %.3f; independent %.3f [%.3f, %.3f] against a limit of %.3f%s; "
             "speedup error %+.1f%%; %.0f s timing the original of %.0f s", case.name, reported_ratio, ratio, low,
             high, limit, " FALSE MET" if row["false_met"] else "", 100 * row["speedup_error"], reference_s, wall_s)
    return row


def give_ups_on_reachable(rows: list[dict[str, Any]]) -> list[str]:
    """Cases that gave up although a shipped run of the same model reached a ratio at or under their limit."""
    names = []
    for row in rows:
        if row["outcome"] != "not met reliably":
            continue
        reached = [r["independent_ratio"] for r in rows if r["model"] == row["model"] and r["outcome"] == "shipped"]
        if any(x <= row["share"] for x in reached):
            names.append(row["name"])
    return names


def runs_sentence(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """Where and when the rows were run: cases run at another time, on another machine, say which (a row without
    its own ``run`` was run with ``meta``)."""
    def where(run: dict[str, Any]) -> str:
        return (f"on {run['cpu']} ({run['cores']} logical cores, shared VM), edgeprune at {run['commit']}, "
                f"onnxruntime {run['onnxruntime']}, torch {run['torch']}, run {run['date']}")
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(where(r.get("run") or meta), []).append(r["name"])
    if len(groups) == 1:
        return next(iter(groups)) + "."
    return "; ".join(f"{', '.join(names)} {text}" for text, names in groups.items()) + \
        " (timings of different machines are not compared: each row is its own fit and its own check)."


def write_markdown(rows: list[dict[str, Any]], meta: dict[str, Any], doc: Path) -> None:
    """Replace (or append) the section in docs/benchmarks.md."""
    shipped = [r for r in rows if r["outcome"] == "shipped"]
    false_met = [r["name"] for r in shipped if r["false_met"]]
    give_ups = give_ups_on_reachable(rows)
    errors = [abs(r["speedup_error"]) for r in shipped]
    ref_s = sum(r["reference_timing_s"] for r in shipped)
    cand_s = sum(r["candidate_timing_s"] for r in shipped)
    wall_s = sum(r["fit_wall_s"] for r in shipped)
    lines = [
        SECTION, "",
        f"`python tools/bench/drift.py`, {runs_sentence(rows, meta)} Each case "
        "runs `edgeprune fit --importance lasso --target cpu` (ONNX Runtime, 1 thread, no fine-tune) while a load "
        "generator busies the other core for the stated period and idles for as long, over and over (`3 x`: three "
        "generators at once, more busy processes than cores, where time-slicing would bias raw medians toward the "
        "shorter model; `steady`: never idle; `--precision auto`: INT8 and pruning). Then, with the "
        "load stopped, an independent paired timing (`tests/paired_timing.py`: ONNX Runtime called directly, "
        f"{CHECK_ROUNDS} alternating rounds of 40 runs) times the shipped `model.onnx` against the original's export. "
        "Absolute budgets were set from the original's quiet median at the start of the case; their limit ratio is "
        "the budget over the original's quiet median in the check.",
        "",
        "| case | model | budget | load processes x on/off | outcome | reported ratio [90%] | independent ratio [90%] | limit | "
        "speedup error | drift seen by fit | measured rounds | original timed / fit wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        period = float(r["load_period_s"])
        load = f"{r.get('busy', 1)} x " + ("steady" if period <= 0 else f"{period:.0f} s")
        head = f"| {r['name']} | {r['model']} | {r['budget']} | {load} | "
        if r["outcome"] != "shipped":
            first = r["message"].removeprefix("edgeprune: error: ").split(": the")[0].split(". ")[0][:100]
            lines.append(head + f"{r['outcome']}: {first} | | | | | | | {r['fit_wall_s']:.0f} s |")
            continue
        drift = f"{100 * r['drift_max_change']:+.0f}%" if r["drift_max_change"] is not None else "n/a"
        lines.append(
            head + ("**false met** " if r["false_met"] else "met ")
            + f"| {r['reported_ratio']:.3f} [{r['reported_interval'][0]:.3f}, {r['reported_interval'][1]:.3f}] "
            f"| {r['independent_ratio']:.3f} [{r['independent_interval'][0]:.3f}, {r['independent_interval'][1]:.3f}] "
            f"| {r['limit_ratio']:.3f} | {100 * r['speedup_error']:+.1f}% | {drift} | {r['measured_rounds']} "
            f"| {r['reference_timing_s']:.0f} s / {r['fit_wall_s']:.0f} s |")
    worst = max(errors) if errors else float("nan")
    lines += [
        "",
        f"* False \"budget met\" verdicts: **{len(false_met)}** of {len(shipped)} shipped (goal 0)"
        + (f": {', '.join(false_met)}." if false_met else "."),
        f"* Give-ups on budgets a shipped run reached: **{len(give_ups)}** (goal 0)"
        + (f": {', '.join(give_ups)}." if give_ups else "."),
        f"* Reported vs independent speedup: largest error **{100 * worst:.1f}%**, median "
        f"{100 * float(np.median(errors)) if errors else float('nan'):.1f}% (goal ≤ 5%).",
        "* Runs left out as disturbed (a thread of the fit waited for a CPU), largest share in one measurement: "
        + (", ".join(f"{r['name']} {100 * r['disturbed_share_max']:.0f}%" for r in shipped
                     if r.get("disturbed_share_max") is not None) or "not recorded (runs before issue 35)") + ".",
        f"* What pairing costs: {ref_s:.0f} s of the {wall_s:.0f} s the shipped fits took went to timing the "
        f"original beside the candidates ({100 * ref_s / wall_s if wall_s else 0:.0f}%), against {cand_s:.0f} s "
        "timing the candidates themselves.",
        "",
        NOTES,
        "",
    ]
    write_section(doc, SECTION, lines)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(description="fits under on/off load, checked by an independent paired timing")
    parser.add_argument("--cases", nargs="*", default=[c.name for c in CASES])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeprune-drift")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    unknown = set(args.cases) - {c.name for c in CASES}
    if unknown:
        raise SystemExit(f"unknown cases: {', '.join(sorted(unknown))}")
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": [], "meta": {}}
    if not args.render_only:
        if not SHARED.is_dir():
            raise SystemExit(f"the drift benchmark needs the pretrained weights and images in {SHARED}")
        machine, versions = machine_info(), package_versions()
        saved["meta"] = {"cpu": machine["cpu"], "cores": machine["logical_cores"], "commit": git_commit(),
                         "provenance": provenance(),
                         "onnxruntime": versions.get("onnxruntime"), "torch": versions.get("torch"),
                         "date": time.strftime("%Y-%m-%d")}
        rows = {r["name"]: r for r in saved["rows"]}
        for case in (c for c in CASES if c.name in args.cases):
            rows[case.name] = {**run_case(case, args.work), "run": {k: v for k, v in saved["meta"].items()
                                                                    if k != "provenance"}}
            saved["rows"] = [rows[c.name] for c in CASES if c.name in rows]
            RESULTS.write_text(json.dumps(saved, indent=1))
    write_markdown(saved["rows"], saved["meta"], REPO / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
