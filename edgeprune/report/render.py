"""Write the human-facing files of a fit report (report.md and its PNG plots) from report.json's content.

Used at the end of ``fit`` and by ``edgeprune report OUT_DIR``, which re-renders them from a saved
report.json. Every file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from edgeprune.errors import InputError
from edgeprune.io_atomic import write_text_atomic
from edgeprune.report.fit_result import REPORT_SCHEMA
from edgeprune.report.markdown import render_markdown
from edgeprune.report.plots import write_plots

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
#: keys render_markdown cannot do without
_REQUIRED = ("target", "baseline", "final", "budget_ms")


def check_report(report: Any, origin: str = "report") -> dict[str, Any]:
    """Raise :class:`InputError` (one line) unless ``report`` is a fit report this version can render."""
    if not isinstance(report, dict):
        raise InputError(f"{origin} is not a fit report (expected a JSON object, got {type(report).__name__})")
    schema = report.get("schema")
    if schema != REPORT_SCHEMA:
        raise InputError(f"{origin} has schema '{schema}', which this edgeprune cannot render "
                         f"(it renders '{REPORT_SCHEMA}')")
    missing = [k for k in _REQUIRED if k not in report]
    for side in ("baseline", "final"):
        entry = report.get(side)
        if side not in missing and not (isinstance(entry, dict) and isinstance(entry.get("latency"), dict)
                                        and isinstance(entry["latency"].get("median_ms"), (int, float))):
            missing.append(f"{side}.latency.median_ms")
    if missing:
        raise InputError(f"{origin} is incomplete: missing {', '.join(missing)}")
    return report


def load_report(out_dir: Path) -> dict[str, Any]:
    """Read and check ``out_dir/report.json``; :class:`InputError` with one line if it is missing or invalid."""
    path = Path(out_dir) / REPORT_JSON
    if not path.is_file():
        where = f"directory {out_dir} does not exist" if not Path(out_dir).exists() else f"no {REPORT_JSON} in {out_dir}"
        raise InputError(f"cannot re-render: {where} (run 'edgeprune fit --out {out_dir}' first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return check_report(data, str(path))


def render_report_files(out_dir: Path, report: dict[str, Any]) -> list[str]:
    """Write the plots and report.md for ``report`` into ``out_dir``; returns the file names written.

    Plots come first so that report.md embeds exactly the ones written (``accuracy_vs_latency.png`` always
    when matplotlib is installed, ``layer_latency.png`` when the report has ``per_layer_latency``).
    report.json itself is not written here.

    >>> render_report_files(Path("out"), result.report)        # doctest: +SKIP
    ['accuracy_vs_latency.png', 'layer_latency.png', 'report.md']
    """
    out_dir = Path(out_dir)
    check_report(report)
    plots = write_plots(out_dir, report)
    write_text_atomic(out_dir / REPORT_MD, render_markdown(report, plots))
    written = [*plots, REPORT_MD]
    mode = 0o666 & ~_umask()  # atomic writes create private files; results are not private
    for name in written:
        os.chmod(out_dir / name, mode)
    log.debug("rendered %s and %d plot(s) in %s", REPORT_MD, len(plots), out_dir)
    return written


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
