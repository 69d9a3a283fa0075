"""ONNX Runtime meets the backend contract (the reference backend)."""

from __future__ import annotations

from contract import BackendContract, Exported

from edgeprune.runtimes.onnxruntime.backend import OnnxRuntimeBackend
from edgeprune.target import load_target


class TestOnnxRuntime(BackendContract):
    backend = OnnxRuntimeBackend()
    target = load_target("cpu")
    suffixes = (".onnx",)
    atol = 1e-4  # measured max |diff| ~1e-6 on the tiny models

    def test_exported_file_passes_the_onnx_checker_and_names_its_io(self, exported: Exported) -> None:
        import onnx

        model = onnx.load(str(exported.artifact.path))
        onnx.checker.check_model(model)
        assert [i.name for i in model.graph.input] == [exported.artifact.input_name]
