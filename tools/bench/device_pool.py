"""Device-pool benchmark: how long profiling a model takes on one agent against a pool of agents.

    python tools/bench/device_pool.py                    # cifar-resnet56, 1 vs 2 agents, then the docs
    python tools/bench/device_pool.py --quick --results /tmp/pool.json --doc /tmp/benchmarks.md   # a smoke run
    python tools/bench/device_pool.py --render-only      # rewrite the docs section from the saved results

Starts one ``edgeprune agent`` per core in ``--cores`` on loopback, each pinned to its own core with
``taskset`` (so each is one device with one core), then runs ``edgeprune profile`` (ONNX Runtime, 1 thread)
of ``--model`` into a fresh latency-table folder: once through the first agent alone (``--device URL``) and
once through all of them (``--device URL1,URL2``), ``--repeats`` times, alternating which goes first. Each run measures every
kernel probe and calibration sample anew. The client (exports, the table) runs in this process, on
``--client-cores`` if given. Results: docs/figures/device-pool.json and the section "Profiling on a pool of
devices" of docs/benchmarks.md. Run it on a quiet machine with at least as many cores as agents (plus one
for the client, ideally): a busy core makes its agent a slower device and the pool's figure worse.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from docs_section import write_section  # noqa: E402
from provenance import provenance  # noqa: E402

from edgeprune.agent.client import AgentClient  # noqa: E402
from edgeprune.errors import DeviceUnavailableError  # noqa: E402
from edgeprune.latency.profile_model import ProfileConfig, profile_model  # noqa: E402

log = logging.getLogger("device_pool")
RESULTS = REPO / "docs" / "figures" / "device-pool.json"
SECTION = "## Profiling on a pool of devices"
#: the smoke setting: few widths per layer, two calibration samples
QUICK = {"max_points": 2, "calibration_samples": 2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def agents(cores: list[int], token: str) -> Iterator[list[str]]:
    """One ``edgeprune agent`` per core, each pinned to its core with taskset; yields their URLs."""
    taskset = shutil.which("taskset")
    if taskset is None:
        raise SystemExit("the device-pool benchmark pins each agent to its core with taskset (util-linux)")
    env = {**os.environ, "EDGEPRUNE_AGENT_TOKEN": token, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    processes, urls = [], []
    try:
        for core in cores:
            port = _free_port()
            processes.append(subprocess.Popen(
                [taskset, "-c", str(core), sys.executable, "-m", "edgeprune", "agent", "--port", str(port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes):
            deadline = time.monotonic() + 180
            while True:
                try:
                    AgentClient(url, token, timeout_s=60).info()
                    break
                except DeviceUnavailableError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the agent at {url} did not start") from None
                    time.sleep(0.5)
        log.info("agents up: %s", ", ".join(f"{u} on core {c}" for u, c in zip(urls, cores)))
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def profile_once(model: str, urls: list[str], token: str, work: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Profile ``model`` through ``urls`` into a fresh table folder; the run's wall time and who measured what."""
    tables = Path(tempfile.mkdtemp(prefix="tables-", dir=work))
    try:
        config = ProfileConfig(model=model, target="cpu", table_dir=tables, device=",".join(urls),
                               device_token=token, **settings)
        started = time.perf_counter()
        _, summary = profile_model(config)
        wall_s = time.perf_counter() - started
    finally:
        shutil.rmtree(tables, ignore_errors=True)
    row = {"devices": len(urls), "wall_s": wall_s, "probes": summary.probes_measured,
           "calibration_samples": len(summary.calibration.samples),
           "shares": list(summary.device_shares.values())}
    log.info("%d device(s): %.1f s, %d probes, shares %s", len(urls), wall_s, row["probes"], row["shares"])
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both settings, ``--repeats`` times, alternating; the saved results."""
    if args.client_cores:
        os.sched_setaffinity(0, set(args.client_cores))
    settings = dict(QUICK) if args.quick else {}
    if args.max_points is not None:
        settings["max_points"] = args.max_points
    if args.calibration_samples is not None:
        settings["calibration_samples"] = args.calibration_samples
    token = secrets.token_urlsafe(24)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    with agents(args.cores, token) as urls:
        for repeat in range(args.repeats):
            for count in (1, len(urls)) if repeat % 2 == 0 else (len(urls), 1):  # alternating which goes first
                rows.append({"repeat": repeat, **profile_once(args.model, urls[:count], token, args.work, settings)})
    return {"model": args.model, "target": "cpu", "agent_cores": args.cores, "client_cores": args.client_cores,
            "settings": settings, "quick": args.quick, "rows": rows, "provenance": provenance()}


def render(saved: dict[str, Any], doc: Path) -> None:
    """The docs section: wall time per device count (median over repeats) and each agent's share."""
    rows, prov = saved["rows"], saved["provenance"]
    counts = sorted({r["devices"] for r in rows})
    median = {n: sorted(r["wall_s"] for r in rows if r["devices"] == n) for n in counts}
    median_s = {n: statistics.median(v) for n, v in median.items()}
    one = counts[0]

    def paired_speedup(n: int) -> float:  # per repeat: one device's time / n devices' time, median over repeats
        ratios = [next(r["wall_s"] for r in rows if r["devices"] == one and r["repeat"] == k) / r["wall_s"]
                  for r in rows if r["devices"] == n for k in [r["repeat"]]]
        return statistics.median(ratios)

    machine = prov.get("machine", {})
    settings = saved.get("settings") or {}
    asked = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in settings.items()) or "profile's defaults"
    client = f"cores {', '.join(map(str, saved['client_cores']))}" if saved.get("client_cores") else "any core"
    lines = [
        SECTION,
        "",
        f"`python tools/bench/device_pool.py{' --quick' if saved.get('quick') else ''}` (commit {prov.get('commit')}, "
        f"{prov.get('created_utc', '?')[:10]}; {machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} cores). "
        f"`edgeprune profile --model {saved['model']} --target cpu` (ONNX Runtime, 1 thread) into an empty "
        "latency-table folder, through one `edgeprune agent` and through a pool of them (`--device URL1,URL2`) on "
        f"loopback, each agent pinned to its own core (cores {', '.join(map(str, saved['agent_cores']))}); the "
        f"client (exports, the table) on {client}. Settings: {asked}.",
        "",
        "| devices | runs | wall time (median) | speedup (median of per-repeat ratios) | kernel probes | calibration samples | measurements per device (last run) |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in counts:
        last = [r for r in rows if r["devices"] == n][-1]
        lines.append(f"| {n} | {len(median[n])} | {median_s[n]:.1f} s | {paired_speedup(n):.2f}x | "
                     f"{last['probes']} | {last['calibration_samples']} | {' / '.join(map(str, last['shares']))} |")
    lines += ["", "Each probe and calibration sample goes to the next free agent; a calibration sample is timed "
              "against the whole model on one agent (the reference uploaded to each agent once). The client's "
              "exports run while the agents measure. Where the client has no core of its own (a 2-core machine "
              "running two agents), its exports of each probe compete with the agents for the same cores, which "
              "bounds the pool's gain here; a pool of real devices measures on their own CPUs.", ""]
    write_section(doc, SECTION, lines)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("edgeprune").setLevel(logging.WARNING)  # one line per probe otherwise
    parser = argparse.ArgumentParser(description="profile on one agent vs a pool of agents, each on its own core")
    parser.add_argument("--model", default="cifar-resnet56")
    parser.add_argument("--cores", type=lambda t: [int(c) for c in t.split(",")], default=[0, 1],
                        help="one agent per core (default 0,1)")
    parser.add_argument("--client-cores", type=lambda t: [int(c) for c in t.split(",")], default=None,
                        help="pin this process (exports, the table) to these cores (default: not pinned)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK}")
    parser.add_argument("--max-points", type=int, help="most widths probed per layer side (default: profile's)")
    parser.add_argument("--calibration-samples", type=int, help="calibration samples (default: profile's)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeprune-device-pool")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    if args.render_only:
        saved = json.loads(args.results.read_text(encoding="utf-8"))
    else:
        saved = run(args)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(saved, indent=1), encoding="utf-8")
    render(saved, args.doc)


if __name__ == "__main__":
    main()
