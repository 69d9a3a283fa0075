"""The structural part of the model-zoo suite (issue 19) over every torchvision classification family and timm's
edge families (issue 37), in CI.

Per family, its first member at 64 px (native size where the architecture fixes it), random weights: the
original exports and runs in ONNX Runtime with parity, edgeprune's channel groups, the latency probes its kernels
would get (smallest and largest widths, each run once), a uniform cut, surgery, and the slim model exports and runs
with parity. No latency search. A family edgeprune cannot handle must be *refused*
with its own one-line error; anything else (an internal error, an invalid artifact, a parity miss) fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "bench"))

import zoo  # noqa: E402

#: the families the quick tier checks: plain residual and concatenation joins (a channel shuffle's freeze is
#: tests/unit/test_graph_rearranging.py's); every family runs in `make test-full`
QUICK_FAMILIES = ("ResNet", "SqueezeNet")


def _cases() -> list:
    """torchvision's families, then timm's edge families (the [timm] extra; all in `make test-full`: the quick
    tier meets timm's constructs in tests/unit/test_graph_sliced_concat.py and test_timm_models.py)."""
    cases = [pytest.param(f, zoo.FAMILIES[f][0], marks=() if f in QUICK_FAMILIES else pytest.mark.full, id=f)
             for f in zoo.FAMILIES]
    cases += [pytest.param(f, zoo.TIMM_FAMILIES[f][0], id=f"timm-{f}", marks=(pytest.mark.timm, pytest.mark.full))
              for f in zoo.TIMM_FAMILIES]
    return cases


@pytest.mark.parametrize(("family", "model"), _cases())
def test_every_family_ships_a_valid_slim_model_or_is_refused_cleanly(family: str, model: str, tmp_path: Path,
                                                                    request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("timm"):
        pytest.importorskip("timm", reason="the [timm] extra (timm) is not installed")
    row = zoo.check_model(family, model, 64, work=tmp_path)
    assert row.status in ("ok", "refused"), f"{row.model} failed at {row.stage}: {row.detail}"
    if row.status == "ok":
        assert row.macs_after < row.macs_before, "a uniform cut to 70% must remove MACs"
        assert row.parity_slim is not None and row.parity_slim <= zoo.PARITY_RTOL
    else:
        assert row.detail and "\n" not in row.detail and "internal error" not in row.detail
