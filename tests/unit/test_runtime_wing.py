"""The runtime wing's rule: what a runtime means lives in its own folder and its row of the facts table.

Outside ``edgeprune/runtimes/<name>/`` no code compares a value with a runtime's name or its artifact format's name
as a string (``runtime == "openvino"``, ``fmt in ("onnx", "tflite")``), and no table is keyed by them
(``{"litert": ...}``): such code is what made a new runtime pass the backend contract and then fail at the end of a
fit (issue 38). It asks the facts table (:mod:`edgeprune.runtimes.table`) or the runtime's backend instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

from edgeprune.runtimes import RUNTIME_FACTS, backend_of

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "edgeprune"
WING = PACKAGE_DIR / "runtimes"

#: the strings that name a runtime or a runtime's own format
RUNTIME_WORDS = frozenset({f.name for f in RUNTIME_FACTS} | {f.format for f in RUNTIME_FACTS})


def _own_folder(path: Path) -> bool:
    """A runtime's own folder (``runtimes/<name>/``) may name itself; the table is where names are written."""
    rel = path.relative_to(WING) if path.is_relative_to(WING) else None
    return rel is not None and (len(rel.parts) > 1 or rel.name == "table.py")


def _words(node: ast.AST) -> list[str]:
    """Runtime words among a node's string constants (a tuple or set of them counts too)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if node.value in RUNTIME_WORDS else []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [w for element in node.elts for w in _words(element)]
    return []


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(PACKAGE_DIR.parent) if path.is_relative_to(PACKAGE_DIR.parent) else path
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                found += [f"{where}:{node.lineno} compares with {w!r}"
                          for w in _words(operand)]
        elif isinstance(node, ast.Dict):
            found += [f"{where}:{node.lineno} keys a table by {w!r}"
                      for key in node.keys if key is not None for w in _words(key)]
    return found


def test_no_code_outside_a_runtime_folder_compares_runtime_names() -> None:
    offences = [o for path in sorted(PACKAGE_DIR.rglob("*.py")) if not _own_folder(path) for o in _offences(path)]
    assert not offences, "ask the facts table or the runtime's backend instead:\n" + "\n".join(offences)


def test_the_rule_sees_what_it_forbids(tmp_path: Path) -> None:
    """The check itself finds a comparison, a membership test and a keyed table (else it could never fail)."""
    sample = tmp_path / "sample.py"
    sample.write_text('a = fmt == "tflite"\nb = runtime in ("onnxruntime", "x")\nc = {"openvino": 1}\n')
    assert len(_offences(sample)) == 3
    assert not _own_folder(PACKAGE_DIR / "fit" / "run.py") and _own_folder(WING / "litert" / "backend.py")


def test_every_row_has_a_folder_whose_backend_claims_it() -> None:
    """One row, one folder: each row's folder exports a backend of that name and format, with every capability
    its row claims implemented (a claim without code would fail at the end of a fit)."""
    from edgeprune.runtimes.base import Backend

    for facts in RUNTIME_FACTS:
        backend = backend_of(facts.name)
        assert (backend.name, backend.artifact_format) == (facts.name, facts.format)
        assert (WING / facts.name / "__init__.py").is_file()
        kind = type(backend)
        assert kind.export is not Backend.export and kind.load is not Backend.load, facts.name
        if facts.int8:
            assert kind.describe_int8 is not Backend.describe_int8, facts.name
            assert kind.is_quantized is not Backend.is_quantized, facts.name
            assert (kind.export_int8 is not Backend.export_int8
                    or kind.quantize_file is not Backend.quantize_file), facts.name
        if facts.qat:
            assert kind.qat_onnx_mode and kind.artifact_from_qat_onnx is not Backend.artifact_from_qat_onnx
        assert kind.layer_precisions is not Backend.layer_precisions, facts.name
        assert kind.weight_tensors is not Backend.weight_tensors, facts.name
        assert kind.check_upload is not Backend.check_upload, facts.name


def test_every_runtime_has_a_builtin_target_and_extras() -> None:
    """A target file per runtime (its ``default_target``), and the extras its row names exist in pyproject."""
    import sys

    from edgeprune.target import load_target

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    extras = tomllib.loads((PACKAGE_DIR.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for facts in RUNTIME_FACTS:
        assert load_target(facts.default_target).runtime == facts.name
        assert facts.extra in extras, facts
        assert facts.agent_extra is None or facts.agent_extra in extras, facts
