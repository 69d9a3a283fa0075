"""Every benchmark that writes a result file records the commit, machine and versions (tools/bench/provenance.py)."""

from __future__ import annotations

import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench"
WRITES = re.compile(r"write_json_atomic\(|\.write_text\(json\.dumps\(|json\.dump\(")


def test_every_result_writer_records_its_provenance() -> None:
    writers = [p for p in sorted(BENCH.glob("*.py")) if WRITES.search(p.read_text(encoding="utf-8"))]
    assert len(writers) >= 5  # the scan finds the result writers
    missing = [p.name for p in writers if "provenance()" not in p.read_text(encoding="utf-8")]
    assert not missing, f"these benchmarks write results without provenance(): {missing}"


def test_provenance_names_the_commit_and_the_runtimes() -> None:
    import sys

    sys.path.insert(0, str(BENCH))
    from provenance import provenance

    record = provenance()
    assert re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?|unknown.*", record["commit"])
    assert record["machine"]["cpu"] and "onnxruntime" in record["versions"]
