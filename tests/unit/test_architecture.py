"""The house rules, read from the source (docs/ARCHITECTURE.md): no import circle between
modules (imports inside functions count), interfaces and integrations reach the core through its
public API, no function longer than 120 lines, no file longer than 450, and the code cites only
documents in this repository."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "mmretrieve"
MAX_FUNCTION_LINES = 120
MAX_FILE_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every mmretrieve module this one imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{alias.name}" for alias in node.names]
            targets = [t if t in modules else origin for t in targets]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_checker_sees_a_circle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_between_modules() -> None:
    graph = _graph()
    assert len(graph) > 50 and any(graph.values())
    assert _circles(graph) == []


@pytest.mark.parametrize("layer", ["interfaces", "integrations"])
def test_interfaces_reach_the_core_through_its_public_api(layer: str) -> None:
    graph = _graph()
    banned = ("mmretrieve.documents", "mmretrieve.encoders.base")
    reaching = {
        name: sorted(t for t in targets if t == banned[1] or t.startswith(banned[0]))
        for name, targets in graph.items()
        if name.startswith(f"mmretrieve.{layer}")
    }
    assert reaching and {name: t for name, t in reaching.items() if t} == {}


def test_no_function_longer_than_120_lines() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} {lines}")
    assert long == []


def test_no_file_longer_than_450_lines() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            long.append(f"{path.relative_to(PACKAGE)} {lines}")
    assert long == []


def test_wikipedia_ingestion_is_its_own_package() -> None:
    assert not list((PACKAGE / "sources").glob("wiki_*.py"))
    assert (PACKAGE / "wiki" / "__init__.py").is_file()


def test_the_code_cites_only_documents_in_this_repository() -> None:
    assert (PACKAGE.parents[1] / "docs" / "ARCHITECTURE.md").is_file()
    citing = [
        str(p.relative_to(PACKAGE))
        for p in sorted(PACKAGE.rglob("*"))
        if p.is_file()
        and p.suffix in {".py", ".html", ".js", ".css"}
        and "DESIGN" in p.read_text(encoding="utf-8")
    ]
    assert citing == []
