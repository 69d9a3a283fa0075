"""A CPU fit does not print torch's "No CUDA runtime is found" (issue 37): the CLI's logging set-up quiets the
logger of torch's extension tools, which NNCF and OpenVINO's PyTorch frontend import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

IMPORT = "import torch.utils.cpp_extension"


def _cuda_toolkit_without_gpu() -> bool:
    import torch

    return (shutil.which("nvcc") is not None or bool(os.environ.get("CUDA_HOME"))) and not torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_toolkit_without_gpu(), reason="torch warns only where a CUDA toolkit has no GPU")
def test_the_cli_logging_keeps_torchs_cuda_warning_off_a_cpu_fit() -> None:
    plain = subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, timeout=120)
    assert "No CUDA runtime is found" in plain.stderr  # the warning this test is about, without the set-up
    quiet = subprocess.run([sys.executable, "-c", "from edgeprune.cli.common import setup_logging; "
                            f"setup_logging(verbose=False, quiet=False); {IMPORT}"],
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "No CUDA runtime" not in quiet.stderr, quiet.stderr
