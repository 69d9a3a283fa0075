"""The package's import structure: no cycles, nothing imports upward, and the agent and CLI load without torch.

Every ``import`` in ``edgeprune/`` counts: at module level, inside functions (lazy) and under
``TYPE_CHECKING``. The layers (docs/architecture.md) are, from the top: the facade (``edgeprune/__init__``),
``cli``, ``fit``, the engines, ``agent``, the base packages, and the small root modules. A module may import
from its own layer or below; packages of one layer may import each other as long as the packages form no
cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "edgeprune"

#: layer of each top-level package (``root`` = the modules directly in edgeprune/)
LAYERS = {
    "root": 0,
    "runtimes": 1, "models": 1, "data": 1, "quantize": 1,
    "agent": 2,
    "latency": 3, "prune": 3, "train": 3, "export": 3, "validate": 3, "report": 3, "tasks": 3,
    "fit": 4,
    "cli": 5,
    "facade": 6,
}

#: third-party packages the torch-free side (the agent, the CLI's entry point) must not import at load time
HEAVY = ("torch", "torchvision", "torch_pruning", "onnx", "onnxscript", "matplotlib", "sklearn", "safetensors",
         "litert_torch", "PIL")

#: modules that must load where only a runtime is installed (a device running ``edgeprune agent``)
TORCH_FREE_ROOTS = ("edgeprune", "edgeprune.cli.main", "edgeprune.agent.server", "edgeprune.agent.worker",
                    "edgeprune.agent.client", "edgeprune.runtimes")


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to an edgeprune module or a third-party top-level name."""

    source: str
    target: str
    line: int
    at_load: bool  # module level and not under TYPE_CHECKING: runs when the module is imported


def _module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


MODULES = _module_files()


def _resolve(name: str) -> str:
    """The longest edgeprune module that ``name`` (a module, or a module's attribute) names."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str) -> Iterator[Import]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]

    def walk(node: ast.AST, at_load: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            child_at_load = at_load and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and _is_type_checking(child):
                child_at_load = False
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(module, _resolve(alias.name), child.lineno, at_load)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    yield Import(module, _resolve(f"{base}.{alias.name}"), child.lineno, at_load)
            yield from walk(child, child_at_load)

    yield from walk(tree, True)


IMPORTS = [imp for module in sorted(MODULES) for imp in _imports(module)]
INTERNAL = [imp for imp in IMPORTS if imp.target in MODULES and imp.target != imp.source]


#: modules inside a package that sit at the root layer: the runtime facts table lives in the runtime wing (where a
#: new runtime's row is written) but imports nothing from edgeprune, and ``target`` (root) reads it
ROOT_LEVEL = ("edgeprune.runtimes.table",)


def unit_of(module: str) -> str:
    """The package a module belongs to for layering: ``fit``, ``agent`` ..., ``root`` or ``facade``."""
    parts = module.split(".")
    if module in ("edgeprune", "edgeprune.__main__"):
        return "facade"
    if module in ROOT_LEVEL:
        return "root"
    if len(parts) == 2 and MODULES[module].name != "__init__.py":
        return "root"
    return parts[1]


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_parser_sees_the_package() -> None:
    assert {"edgeprune.fit.pipeline", "edgeprune.agent.server", "edgeprune.cli.main"} <= set(MODULES)
    assert any(i.source == "edgeprune.fit.run" and i.target == "edgeprune.fit.depth" for i in INTERNAL)
    lazy = [i for i in INTERNAL if not i.at_load]
    assert lazy, "function-level and TYPE_CHECKING imports must be seen too"


def test_every_package_has_a_layer() -> None:
    unplaced = sorted({unit_of(m) for m in MODULES} - set(LAYERS))
    assert not unplaced, f"place these packages in LAYERS and docs/architecture.md: {unplaced}"


def test_no_import_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for imp in INTERNAL:
        graph.setdefault(imp.source, set()).add(imp.target)
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for imp in INTERNAL:
        a, b = unit_of(imp.source), unit_of(imp.target)
        if a != b and "root" not in (a, b):
            graph.setdefault(a, set()).add(b)
    cycle = _find_cycle(graph)
    assert cycle is None, "packages import each other in a cycle: " + " -> ".join(cycle or [])


def test_nothing_imports_from_a_higher_layer() -> None:
    upward = [f"{i.source}:{i.line} imports {i.target} ({unit_of(i.source)} is below {unit_of(i.target)})"
              for i in INTERNAL if LAYERS[unit_of(i.target)] > LAYERS[unit_of(i.source)]]
    assert not upward, "\n".join(upward)


def _load_closure(roots: tuple[str, ...]) -> dict[str, str]:
    """Every module loaded by importing ``roots`` (with the packages above each), mapped to who loads it."""
    at_load: dict[str, list[Import]] = {}
    for imp in IMPORTS:
        if imp.at_load:
            at_load.setdefault(imp.source, []).append(imp)
    seen: dict[str, str] = {}
    todo = [(root, "(root)") for root in roots]
    while todo:
        module, via = todo.pop()
        if module in seen:
            continue
        seen[module] = via
        parents = [".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1)]
        todo.extend((p, module) for p in parents if p in MODULES)
        todo.extend((i.target, f"{module}:{i.line}") for i in at_load.get(module, []) if i.target in MODULES)
    return seen


@pytest.mark.parametrize("root", TORCH_FREE_ROOTS)
def test_the_agent_side_loads_no_framework(root: str) -> None:
    loaded = _load_closure((root,))
    heavy = [f"{i.source}:{i.line} imports {i.target} (loaded via {loaded[i.source]})" for i in IMPORTS
             if i.at_load and i.source in loaded and i.target.split(".")[0] in HEAVY]
    assert not heavy, f"importing {root} would load a deep-learning framework:\n" + "\n".join(heavy)


def test_the_closure_check_can_fail() -> None:
    """The torch-free check follows imports: the pipeline, which needs torch, is caught."""
    loaded = _load_closure(("edgeprune.fit.pipeline",))
    assert any(i.at_load and i.source in loaded and i.target.split(".")[0] == "torch" for i in IMPORTS)


def test_a_cycle_is_found() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}}) is None
