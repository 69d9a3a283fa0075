"""``edgeprune bench``: time model files against the first one, in pairs, on this machine's runtime."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from edgeprune.cli.common import bounded_number, console
from edgeprune.errors import OversubscribedError
from edgeprune.target import load_target


def _threads(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts such as 1,2,4, got '{text}'") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive thread counts such as 1,2,4, got '{text}'")
    return values


_seconds = bounded_number(float, 0.1, 600.0, "seconds from 0.1 to 600")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``bench`` verb."""
    p = sub.add_parser("bench", help="time model files against the first one, paired, per thread count",
                       description="Time ARTIFACT (.onnx, .xml, .tflite; edgeprune's or not) and each OTHER against "
                                   "it in alternating rounds with the target's runtime, and print the median, p90 "
                                   "and the ratio to the first with its 90% interval.")
    p.add_argument("artifacts", type=Path, nargs="+", metavar="ARTIFACT",
                   help="model files; the first is the reference")
    p.add_argument("--target", help="target name or TOML file (default: the first artifact's format's CPU target)")
    p.add_argument("--threads", type=_threads, help="thread counts to time with, e.g. 1,2,4 (default: the target's)")
    p.add_argument("--seconds", type=_seconds, default=2.0, help="about how long each pair is timed (default 2)")
    p.add_argument("--kernels", type=int, default=3, metavar="N",
                   help="list each artifact's N slowest kernels where the runtime profiles them (0: none; default 3; "
                        "not with --device)")
    p.add_argument("--device", metavar="URL", help="time on the device through 'edgeprune agent' at URL")
    p.add_argument("--device-token", help="the agent's token (default: $EDGEPRUNE_AGENT_TOKEN)")
    p.add_argument("--plot", type=Path, metavar="PNG", help="also draw the latencies to this PNG file")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Time, then print the table (or JSON) and draw the plot if asked."""
    from edgeprune.validate.bench import bench_artifacts
    from edgeprune.validate.runners import default_target

    target = load_target(args.target) if args.target else default_target(args.artifacts[0])
    if args.device:
        from edgeprune.agent.client import AgentClient
        from edgeprune.validate.on_device import bench_on_device

        client = AgentClient(args.device, args.device_token)
        rows = [r.to_dict() for r in bench_on_device(args.artifacts, target, client, args.threads, args.seconds)]
    else:
        rows = [r.to_dict() for r in bench_artifacts(args.artifacts, target, args.threads, args.seconds,
                                                       max(0, args.kernels))]
    if args.plot:
        from edgeprune.report.bench_plot import plot_bench

        plot_bench(rows, args.plot)
    if args.json:
        console.print_json(json.dumps({"target": target.name, "measured_on": rows[0]["measured_on"], "rows": rows}))
        return 0
    where = rows[0]["measured_on"]
    table = Table(title=f"edgeprune bench on {target.name} ({rows[0]['runtime']} {rows[0]['runtime_version']}, "
                        f"{rows[0]['precision']}; measured {where}, paired with the first artifact)")
    for column in ("artifact", "threads", "median ms", "p90 ms", "ratio to first [90% interval]", "rounds",
                   "runs left out", "slowest kernels"):
        table.add_column(column)
    biased = []
    for r in rows:
        paired = r["paired"] or {}
        ratio = "reference" if r["paired"] is None else \
            f"{r['ratio']:.3f} [{r['ratio_low']:.3f}, {r['ratio_high']:.3f}]"
        if paired.get("oversubscribed"):
            ratio += " biased"
            biased.append(Path(r["artifact"]).name)
        kernels = ", ".join(f"{k['op_type']} {k['ms']:.3f}" for k in r["top_kernels"] or []) or "—"
        left_out = f"{paired['disturbed_share']:.0%}" if "disturbed_share" in paired else "—"
        table.add_row(Path(r["artifact"]).name, str(r["threads"]), f"{r['median_ms']:.3f}", f"{r['p90_ms']:.3f}",
                      ratio, str(r["rounds"] or "—"), left_out, kernels)
    console.print(table)
    console.print("runs left out: timed runs during which a thread waited for a CPU (time-slicing favours the "
                  "shorter model, so they are not in the medians)", highlight=False)
    if args.plot:
        console.print(f"plot: {args.plot}", highlight=False)
    if biased:
        raise OversubscribedError(f"the CPU was oversubscribed while {', '.join(biased)} was timed: too few runs were "
                                  "undisturbed, so its ratio is biased toward the shorter model; stop other work "
                                  "on the machine (or time with fewer --threads) and run bench again")
    return 0
