"""The dependency rule of docs/architecture.rst, read from the source: core imports no Flask,
ext imports no tooling, and no modules import each other in a circle (imports inside
functions and under TYPE_CHECKING count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flask_spark"


def module_name(path: Path) -> str:
    parts = ["flask_spark", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, as absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def within(imported: set[str]) -> set[str]:
    """The package's own modules among ``imported`` (``from . import x`` names a module)."""
    return {name for name in imported if name in GRAPH}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("flask_spark.core")))
def test_core_never_imports_flask_or_the_layers_above(module: str) -> None:
    above = ("flask_spark.ext", "flask_spark.sandbox", "flask_spark.testing")
    bad = sorted(
        n for n in GRAPH[module] if n.split(".")[0] in ("flask", "werkzeug") or n.startswith(above)
    )
    assert bad == []


TOOLING = ("flask_spark.sandbox", "flask_spark.testing")


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not m.startswith(TOOLING)))
def test_the_runtime_never_imports_the_tooling(module: str) -> None:
    assert sorted(n for n in GRAPH[module] if n.startswith(TOOLING)) == []


def test_no_import_circles() -> None:
    edges = {m: within(imported) - {m} for m, imported in GRAPH.items()}
    # a package's __init__ re-exporting its own submodules is not a circle of its modules
    for module, targets in edges.items():
        edges[module] = {t for t in targets if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (circle := visit(target)):
                return circle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state:
            circle = visit(module)
            assert circle is None, " -> ".join(circle or [])
