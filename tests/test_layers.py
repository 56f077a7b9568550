"""The package's structure: imports only point down the stack of layers, and never in a circle.

Every import counts, at module level, inside functions and under ``TYPE_CHECKING`` alike: a
function-level import is still a dependency, only a later one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mapreduce_logs"

LAYERS = [
    ["errors", "settings"],
    ["model"],
    ["ingest"],
    ["execute"],
    ["detect"],
    ["reduce"],
    ["report"],
    ["pipeline"],
    ["watch"],
    ["cli"],
    ["__init__", "__main__"],
]
"""Lowest first: a module may import from its own layer or any below it, never above."""

MAX_MODULE_LINES = 700
MAX_CLASS_LINES = 350


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its file."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    if name == "__init__":
        here = []
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else list(here)
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "mapreduce_logs":
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                candidate = ".".join([*target, alias.name])
                found.add(candidate if candidate in known else ".".join(target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mapreduce_logs":
                    found.add(".".join(alias.name.split(".")[1:]))
    return {m for m in found if m in known and m != name}


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add its folder to LAYERS")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_every_module_is_in_a_layer() -> None:
    for module in _modules():
        _layer(module)


def test_imports_point_down() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The parser above finds relative, absolute and function-level imports (else the other
    tests could pass by seeing nothing)."""
    graph = _graph()
    assert "model.partial" in graph["reduce.reducer"]
    assert "ingest.split" in graph["execute.base"]
    assert any(t.startswith("watch") for t in graph["cli.watch"])


@pytest.mark.parametrize("module", sorted(_modules()))
def test_modules_and_classes_are_small(module: str) -> None:
    path = _modules()[module]
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path.name}: {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{module}.{node.name}: {size} lines"
