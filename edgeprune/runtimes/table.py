"""The runtime facts table: what each runtime edgeprune supports is, in one row.

Every package outside ``edgeprune/runtimes/<name>/`` learns about runtimes from this table (names, titles,
artifact formats and their files, the pip extras that install them, what they can do) or from the runtime's own
folder through :func:`edgeprune.runtimes.get_runtime`; none compares a runtime's name with a string
(``tests/unit/test_runtime_wing.py`` enforces it). Adding a runtime is one folder, one row here, a target file
and an extra in ``pyproject.toml`` (docs/architecture.md, "Adding a runtime").

This module imports nothing heavy: the agent on a device reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RuntimeFacts:
    """One runtime, as the rest of edgeprune sees it.

    Attributes:
        name: the runtime's name in targets and on the command line (``"onnxruntime"``).
        title: how messages and reports call it (``"ONNX Runtime"``).
        format: the name of the artifact format it runs (``--export`` names, ``Artifact.format``).
        suffixes: the suffixes of one artifact's files, the main file's first (``(".xml", ".bin")``).
        format_aliases: other spellings of the format accepted on the command line.
        module: the Python module whose presence means the runtime is installed.
        converter_modules: further modules needed to *write* the format on the workstation.
        extra: the pip extra that installs it on the workstation.
        dist: its pip distribution name (for version reports).
        agent_extra: the pip extra that installs it with the agent on a device without torch (None: there is no
            torch-free way to run it; the agent needs the workstation extra).
        agent_formats: the artifact formats the agent loads with it (its own first).
        default_target: the built-in target that runs the format on this machine's CPU.
        int8: exports INT8 with the runtime's own maintained quantizer.
        mixed: INT8 with chosen layers left in float (mixed precision).
        qat: quantization-aware fine-tuning exports to it.
        profiler: its own per-layer profiler feeds the latency table (else kernels are probed one by one).
        sparse: the name of the sparse-weight inference path edgeprune writes files for (``"XNNPACK"``); empty
            where there is none.
        reads_onnx: loads ONNX files directly (latency probes are written as ONNX, which is fast).
        precision_hint: runs a float model at the target's precision hint (fp16/bf16) rather than always fp32.
    """

    name: str
    title: str
    format: str
    suffixes: tuple[str, ...]
    module: str
    extra: str
    dist: str
    default_target: str
    agent_extra: str | None = None
    agent_formats: tuple[str, ...] = ()
    format_aliases: tuple[str, ...] = ()
    converter_modules: tuple[str, ...] = ()
    int8: bool = False
    mixed: bool = False
    qat: bool = False
    profiler: bool = False
    sparse: str = ""
    reads_onnx: bool = False
    precision_hint: bool = False

    @property
    def suffix(self) -> str:
        """The main file's suffix."""
        return self.suffixes[0]

    @property
    def package(self) -> str:
        """The module of the runtime's own folder."""
        return f"edgeprune.runtimes.{self.name}"

    def owns(self, path: Path) -> bool:
        """Whether ``path`` names this format's main file (by its whole suffix: ``model.ncnn.param``)."""
        return Path(path).name.endswith(self.suffix)

    def main_file(self, stem: Path) -> Path:
        """The main file of an artifact written at ``stem`` (``out/model`` → ``out/model.xml``); a path that
        already names a main file is kept."""
        stem = Path(stem)
        return stem if self.owns(stem) else stem.with_name(stem.name + self.suffix)

    def files(self, main: Path) -> list[Path]:
        """Every file of the artifact whose main file is ``main``, main first (``model.xml``, ``model.bin``)."""
        main = Path(main)
        base = main.name[: -len(self.suffix)] if self.owns(main) else main.stem
        return [main.with_name(base + suffix) for suffix in self.suffixes]

    @property
    def multi_file(self) -> bool:
        """Whether one artifact is several files (uploaded to the agent as a zip of ``model<suffix>`` members)."""
        return len(self.suffixes) > 1


#: every runtime edgeprune supports, in the order lists and tables show them
RUNTIME_FACTS: tuple[RuntimeFacts, ...] = (
    RuntimeFacts(name="onnxruntime", title="ONNX Runtime", format="onnx", suffixes=(".onnx",),
                 format_aliases=("ort",), module="onnxruntime", extra="workstation", dist="onnxruntime",
                 agent_extra="agent-onnxruntime", agent_formats=("onnx",), default_target="cpu",
                 int8=True, mixed=True, qat=True, profiler=True, reads_onnx=True),
    RuntimeFacts(name="openvino", title="OpenVINO", format="openvino", suffixes=(".xml", ".bin"),
                 format_aliases=("ov", "ir", "openvino-ir"), module="openvino", extra="openvino", dist="openvino",
                 agent_extra="agent-openvino", agent_formats=("openvino", "onnx"), default_target="cpu-openvino",
                 int8=True, mixed=True, qat=True, profiler=True, reads_onnx=True, precision_hint=True),
    RuntimeFacts(name="litert", title="LiteRT", format="tflite", suffixes=(".tflite",), format_aliases=("litert",),
                 module="ai_edge_litert", converter_modules=("litert_torch",), extra="tflite", dist="ai-edge-litert",
                 agent_extra="agent-tflite", agent_formats=("tflite",), default_target="cpu-tflite",
                 int8=True, sparse="XNNPACK"),
    RuntimeFacts(name="ncnn", title="ncnn", format="ncnn", suffixes=(".ncnn.param", ".ncnn.bin"),
                 module="ncnn", converter_modules=("pnnx",), extra="ncnn", dist="ncnn", agent_extra="agent-ncnn",
                 agent_formats=("ncnn",), default_target="cpu-ncnn", profiler=True),
    RuntimeFacts(name="executorch", title="ExecuTorch", format="pte", suffixes=(".pte",), module="executorch",
                 extra="executorch", dist="executorch", agent_formats=("pte",), default_target="cpu-executorch",
                 int8=True, profiler=True),
)

_BY_NAME = {facts.name: facts for facts in RUNTIME_FACTS}
_BY_FORMAT = {facts.format: facts for facts in RUNTIME_FACTS}

#: the runtimes' names
RUNTIME_NAMES: tuple[str, ...] = tuple(_BY_NAME)
#: the artifact formats, one per runtime, in the table's order
ARTIFACT_FORMATS: tuple[str, ...] = tuple(_BY_FORMAT)


def facts_of(runtime: str) -> RuntimeFacts:
    """The row of ``runtime``; KeyError for a name not in the table (callers check names first)."""
    return _BY_NAME[runtime]


def facts_of_format(fmt: str) -> RuntimeFacts:
    """The row of the runtime whose own format is ``fmt``."""
    return _BY_FORMAT[fmt]


def known_runtime(name: str) -> bool:
    """Whether ``name`` is a runtime in the table."""
    return name in _BY_NAME
