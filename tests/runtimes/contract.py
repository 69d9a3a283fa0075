"""The contract every runtime backend meets, as a template test class.

``BackendContract`` is not collected by itself (no ``Test`` prefix); each backend's test module subclasses it
and sets ``backend``, ``target`` and the per-backend attributes below. Exported artifacts are built once per
subclass (class-scoped fixtures), since conversion dominates the run time (LiteRT: seconds per model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from model_helpers import randomise_bn
from torch import nn

from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.runtimes import get_backend
from edgeprune.runtimes.base import ARTIFACT_FORMATS, Artifact
from edgeprune.target import Target
from edgeprune.timing import TimingSpec

#: short timing for tests: enough runs for a stable median on sub-millisecond models, one retry when noisy
TEST_SPEC = TimingSpec(warmup_runs=5, min_runs=30, min_seconds=0.1, retries=1)
#: profiling runs are not retried when noisy, so take more of them (each is well under a millisecond)
PROFILE_SPEC = TimingSpec(warmup_runs=10, min_runs=100)
#: a shared CI machine can stall a whole profiling pass (one scheduler slice is several ms): allow retries
PROFILE_ATTEMPTS = 3


class TinyInvertedResidual(nn.Module):
    """stem conv -> MobileNetV2 block (1x1 expand, 3x3 depthwise with groups=channels, 1x1 project, residual)
    -> pool -> linear."""

    def __init__(self, width: int = 16, expand: int = 4, num_classes: int = 4) -> None:
        super().__init__()
        hidden = width * expand
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6())
        self.expand = nn.Sequential(nn.Conv2d(width, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6())
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()
        )
        self.project = nn.Sequential(nn.Conv2d(hidden, width, 1, bias=False), nn.BatchNorm2d(width))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.project(self.depthwise(self.expand(x)))
        return self.head(x.mean((2, 3)))




def _residual() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return randomise_bn(CifarResNet(8), 1).eval(), torch.randn(1, 3, 32, 32)


def _inverted_residual() -> tuple[nn.Module, torch.Tensor]:
    # 48x48 (~7 M MACs, ~0.2 ms): at 24x24 OpenVINO's fixed per-call overhead in Python (~50 us) was more
    # than half of the median, which put the profile-vs-median check (factor 3) at a ratio of ~2.5
    torch.manual_seed(0)
    return randomise_bn(TinyInvertedResidual(), 2).eval(), torch.randn(1, 3, 48, 48)


MODELS: dict[str, Callable[[], tuple[nn.Module, torch.Tensor]]] = {
    "cifar-resnet8": _residual,
    "inverted-residual": _inverted_residual,
}


@dataclass
class Exported:
    """A model, its example input, the exported artifact and a loaded session."""

    model: nn.Module
    example: torch.Tensor
    artifact: Artifact
    session: Any

    def feed(self, x: torch.Tensor | None = None) -> dict[str, np.ndarray]:
        return {self.artifact.input_name: (self.example if x is None else x).numpy()}


class BackendContract:
    """What every backend must do: export, load, run at parity with PyTorch, time, and profile (or say it can't)."""

    backend: ClassVar[Any]
    target: ClassVar[Target]
    #: suffixes of the files an export writes (the first is the artifact's own path)
    suffixes: ClassVar[tuple[str, ...]]
    #: max |runtime - PyTorch| on the tiny models' logits
    atol: ClassVar[float] = 1e-4
    #: whether profile_layers returns timings (else it must raise NotImplementedError)
    has_layer_profiler: ClassVar[bool] = True

    @pytest.fixture(scope="class", params=sorted(MODELS))
    def exported(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
        model, example = MODELS[request.param]()
        out = tmp_path_factory.mktemp(f"{self.backend.name}-{request.param}") / "model"
        artifact = self.backend.export(model, example, out, self.target)
        return Exported(model, example, artifact, self.backend.load(artifact, self.target))

    def test_backend_is_registered_and_installed(self) -> None:
        assert isinstance(get_backend(self.target), type(self.backend))
        assert self.backend.available()
        assert isinstance(self.backend.version(), str) and self.backend.version()
        assert self.backend.artifact_format in ARTIFACT_FORMATS

    def test_export_writes_artifact_files_with_the_right_suffix(self, exported: Exported) -> None:
        artifact = exported.artifact
        assert artifact.format == self.backend.artifact_format
        facts = self.backend.facts
        assert facts.suffixes == self.suffixes and facts.owns(artifact.path)
        for path in facts.files(artifact.path):
            assert path.is_file() and path.stat().st_size > 0, path
        assert artifact.input_shape == tuple(exported.example.shape)
        assert artifact.input_name

    def test_run_matches_pytorch(self, exported: Exported) -> None:
        for seed in range(3):
            x = torch.randn(*exported.example.shape, generator=torch.Generator().manual_seed(seed))
            with torch.no_grad():
                expected = exported.model(x).numpy()
            outputs = exported.session.run(exported.feed(x))
            assert len(outputs) == 1
            assert outputs[0].shape == expected.shape
            diff = float(np.abs(outputs[0] - expected).max())
            assert diff <= self.atol, f"max |diff| {diff:.2e} > atol {self.atol:.0e}"

    def test_time_returns_sane_stats(self, exported: Exported) -> None:
        stats = exported.session.time(exported.feed(), TEST_SPEC)
        assert stats.runs >= TEST_SPEC.min_runs
        assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms
        assert stats.cv >= 0

    def test_profile_layers_attributes_time_or_is_declared_absent(self, exported: Exported) -> None:
        assert self.backend.facts.profiler == self.has_layer_profiler  # the facts table says what the code does
        if not self.has_layer_profiler:
            with pytest.raises(NotImplementedError):
                exported.session.profile_layers(exported.feed(), TEST_SPEC)
            return
        attempts = []
        for _ in range(PROFILE_ATTEMPTS):
            timings = exported.session.profile_layers(exported.feed(), PROFILE_SPEC)
            assert timings
            assert all(t.name and t.op_type and t.ms >= 0 for t in timings)
            total = sum(t.ms for t in timings)
            median = exported.session.time(exported.feed(), TEST_SPEC).median_ms
            attempts.append(f"layers sum {total:.3f} ms vs median {median:.3f} ms")
            # profilers inflate small kernels and leave out call overhead: attribute, don't equate
            if median / 3 <= total <= median * 3:
                return
        pytest.fail("profile does not account for the latency: " + "; ".join(attempts))
