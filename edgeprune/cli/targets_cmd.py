"""``edgeprune targets``: list the built-in targets and whether their runtime is installed here."""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.table import Table

from edgeprune.cli.common import console
from edgeprune.runtimes.table import facts_of
from edgeprune.target import all_targets

_SOURCE_TEXT = {
    "measured-local": "measured on this machine",
    "measured-agent": "measured on the device through an agent",
    "predicted-profile": "predicted (shipped profile)",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``targets`` verb."""
    p = sub.add_parser("targets", help="list targets and whether their runtime is installed")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print one row per target."""
    table = Table(title="edgeprune targets")
    for column in ("target", "runtime", "device", "threads", "precisions", "align", "latencies", "installed"):
        table.add_column(column)
    for t in all_targets():
        # escaped: rich would read '[openvino]' as a markup tag and drop it
        installed = "yes" if t.runtime_installed() else escape(f"no: pip install 'edgeprune[{facts_of(t.runtime).extra}]'")
        runtime = t.runtime if len(t.runtimes) < 2 else f"{t.runtime} (auto: {', '.join(t.runtimes)})"
        table.add_row(t.name, runtime, t.device, str(t.threads), ", ".join(t.precisions), str(t.channel_alignment),
                      _SOURCE_TEXT[t.latency_source], installed)
    console.print(table)
    if any(t.latency_source == "predicted-profile" for t in all_targets()):
        console.print("Predicted targets: run 'edgeprune agent' on the device and pass --device URL to measure instead.")
    if any(len(t.runtimes) > 1 for t in all_targets()):
        console.print("auto: a fit measures each runtime listed and prunes in the fastest (fit --runtime NAME pins "
                      "one); any target can ask for it with fit --runtime auto.")
    return 0
