"""``edgeprune report OUT_DIR``: re-render report.md and the plots from a saved report.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeprune.cli.common import console
from edgeprune.report.fit_result import budget_words


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``report`` verb."""
    p = sub.add_parser("report", help="re-render report.md and the plots from OUT_DIR/report.json")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="output directory of a fit run")
    p.add_argument("--json", action="store_true", help="print report.json to stdout instead of a summary")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Re-render the files, then print a short summary (or the report as JSON)."""
    from edgeprune.report.render import load_report, render_report_files

    report = load_report(args.out_dir)
    written = render_report_files(args.out_dir, report)
    if args.json:
        console.print_json(json.dumps(report))
        return 0
    final = report["final"]["latency"]
    kind = "PREDICTED" if final.get("source") == "predicted-profile" else "measured"
    top1 = report["final"].get("top1")
    console.print(f"[bold]edgeprune report[/] {args.out_dir}: {report.get('model', {}).get('spec', '?')} on target "
                  f"{report['target'].get('name', '?')}, {report['baseline']['latency']['median_ms']:.3f} → "
                  f"{final['median_ms']:.3f} ms ({kind}), {budget_words(report)}, top-1 after "
                  f"{'n/a' if top1 is None else f'{100 * top1:.2f}%'}", highlight=False)
    console.print("  re-rendered: " + ", ".join(written), highlight=False)
    return 0
