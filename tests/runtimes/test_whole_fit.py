"""The contract's last part: every runtime in the facts table goes through a whole tiny fit on its own target.

The backend contract (``contract.py``) checks export, run, time and profile; a runtime that passes it could still
fail at the end of a fit (the artifact table, the layer-precision reader, the size report: issue 38). Here each row of
:data:`~edgeprune.runtimes.table.RUNTIME_FACTS` is fitted on its ``default_target`` as a user would (the CLI, the
demo model), at INT8 where its row says it quantizes: the fit must ship every file of the runtime's artifact,
measure it in that runtime, read its layers' precision and its weights back from the file, validate it, and print
and write all of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_in_process import run_cli_in_process

from edgeprune.runtimes import RUNTIME_FACTS, RuntimeFacts, backend_of

#: the quick tier's whole fit (15 minutes for the whole tier on 2 cores leaves room for one): LiteRT's at INT8, its
#: fully integer files. ONNX Runtime's is every other e2e test's; the full tier fits every runtime, at INT8 where it
#: quantizes (ncnn's two-file artifact is also measured through the agent in the quick tier, test_agent_loopback)
QUICK = {"litert": "int8"}


def _rows() -> list[object]:
    rows = [pytest.param(f, QUICK[f.name], id=f"{f.name}-{QUICK[f.name]}") for f in RUNTIME_FACTS if f.name in QUICK]
    rows += [pytest.param(f, "int8" if f.int8 else "fp32", id=f"{f.name}-{'int8' if f.int8 else 'fp32'}",
                          marks=pytest.mark.full)
             for f in RUNTIME_FACTS if QUICK.get(f.name) != ("int8" if f.int8 else "fp32")]
    return rows


@pytest.mark.parametrize(("facts", "precision"), _rows())
def test_a_whole_fit_ships_validates_and_reports_in_each_runtime(facts: RuntimeFacts, precision: str,
                                                                  tmp_path: Path) -> None:
    if not backend_of(facts.name).available():
        pytest.skip(f"{facts.title} is not installed (pip install 'edgeprune[{facts.extra}]')")
    out = tmp_path / facts.name
    proc = run_cli_in_process("fit", "--target", facts.default_target, "--budget", "70%", "--precision", precision,
                              "--allocation", "uniform", "--max-rounds", "3", "--eval-images", "64",
                              "--calib-images", "64", "--min-agreement", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    main = out / f"model{facts.suffix}"
    assert all(path.is_file() for path in facts.files(main)), sorted(p.name for p in out.iterdir())
    assert all(path.is_file() for path in facts.files(out / f"original{facts.suffix}"))
    assert report["artifact"]["format"] == facts.format and report["target"]["runtime"] == facts.name
    assert report["final"]["latency"]["backend"] == facts.name and report["final"]["latency"]["measured"]
    layers = report["layer_precision"]["summary"]
    assert layers.get(precision, 0) >= 3, layers  # read back from the shipped file by the runtime's own reader
    [shipped] = [a for a in report["artifacts"] if a["format"] == facts.format]
    assert shipped["passed"] and shipped["weight_zeros"]["params"] > 0, shipped
    assert f"model{facts.suffix}" in proc.stdout and "passed" in proc.stdout
    assert "Traceback" not in proc.stderr
