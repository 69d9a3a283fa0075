"""ncnn meets the backend contract: pnnx's conversion, fp32 kernels, per-layer times from each layer run alone."""

from __future__ import annotations

import importlib.util

import pytest
from contract import BackendContract

from edgeprune.runtimes import backend_of
from edgeprune.target import load_target

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ncnn") is None or importlib.util.find_spec("pnnx") is None,
    reason="the ncnn runtime needs the 'ncnn' and 'pnnx' packages (pip install 'edgeprune[ncnn]')",
)


class TestNcnn(BackendContract):
    backend = backend_of("ncnn")
    target = load_target("cpu-ncnn")
    suffixes = (".ncnn.param", ".ncnn.bin")
    atol = 1e-4  # measured max |diff| ~5e-8 on a tiny CNN and mobilenet_v2
