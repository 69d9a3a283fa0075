"""Fixtures for the validate tests."""

from __future__ import annotations

import pytest
from slim_outputs import SlimOutputs, build_slim_outputs


@pytest.fixture(scope="session")
def slim_outputs(tmp_path_factory: pytest.TempPathFactory) -> SlimOutputs:
    """Output folders and ONNX exports of one slim model with two weight draws (built once per session)."""
    return build_slim_outputs(tmp_path_factory.mktemp("validate"))
