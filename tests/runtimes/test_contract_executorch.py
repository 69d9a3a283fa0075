"""ExecuTorch meets the backend contract: ``.pte`` programs on XNNPACK, per-operator times from its event tracer."""

from __future__ import annotations

import importlib.util

import pytest
from contract import BackendContract

from edgeprune.runtimes import backend_of
from edgeprune.target import load_target

# full tier: its first lowering costs about 10 s, and tests/runtimes/test_executorch.py covers export, parity, timing,
# threads, the profile and INT8 in the quick tier
pytestmark = [pytest.mark.full,
              pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                                 reason="the ExecuTorch runtime needs 'executorch' (pip install 'edgeprune[executorch]')")]


class TestExecuTorch(BackendContract):
    backend = backend_of("executorch")
    target = load_target("cpu-executorch")
    suffixes = (".pte",)
    atol = 1e-4  # measured max |diff| ~1e-7 on a tiny CNN and mobilenet_v2
