"""OpenVINO's usage telemetry stays off unless the user opted in (edgeprune.runtimes.openvino.telemetry, issue 36).

Each case imports OpenVINO in a fresh interpreter whose home folder holds the given consent file (or none), with
the telemetry backend's ``send`` replaced by a recorder, so nothing leaves the machine and the test sees what
would have been sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
import openvino_telemetry.backend.backend_ga4 as ga4
sent = []
ga4.GA4Backend.send = lambda self, *a, **k: sent.append(1)
if sys.argv[1] == "edgeprune":
    from edgeprune.runtimes.openvino.telemetry import keep_openvino_telemetry_off
    assert keep_openvino_telemetry_off()
import openvino
import openvino_telemetry.main as main
print(json.dumps({"consent": bool(main.Telemetry().consent), "sent": len(sent)}))
"""


def _import_openvino(home: Path, who: str) -> dict[str, object]:
    pytest.importorskip("openvino_telemetry")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env["HOME"] = str(home)
    done = subprocess.run([sys.executable, "-c", PROBE, who], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_user_never_asked_sends_nothing(tmp_path: Path) -> None:
    assert _import_openvino(tmp_path, "edgeprune") == {"consent": False, "sent": 0}


def test_without_edgeprune_openvino_counts_never_asked_as_consent(tmp_path: Path) -> None:
    """Why the rule exists: OpenVINO alone sends on import when no consent file exists (if a later OpenVINO
    asks first, this fails and the rule can go)."""
    seen = _import_openvino(tmp_path, "plain")
    assert seen["consent"] is True and seen["sent"] >= 1, seen


@pytest.mark.parametrize(("choice", "consent"), [("1", True), ("0", False)])
def test_a_users_explicit_choice_is_kept(tmp_path: Path, choice: str, consent: bool) -> None:
    (tmp_path / "intel").mkdir()
    (tmp_path / "intel" / "openvino_telemetry").write_text(choice)
    assert _import_openvino(tmp_path, "edgeprune")["consent"] is consent
