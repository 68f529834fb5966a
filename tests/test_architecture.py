"""Where things live: no import cycles, no oversized module without its reason, no test module that
imports another (docs/architecture.md, "Layout rules").

These read the source tree with :mod:`ast`; nothing is imported or run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = ROOT / "bridge"
TESTS = ROOT / "tests"
#: A module longer than this says at the top of its docstring why it is not split (the phrase below).
MAX_LINES = 600
SIZE_NOTE = "Why one module"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    """Every ``bridge``/``tests`` module that ``path`` imports, TYPE_CHECKING imports included: an
    annotation-only cycle is still two modules that cannot be understood one without the other."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module
            for alias in node.names:  # ``from bridge.hub import hub`` imports the submodule
                yield f"{module}.{alias.name}"


def _graph(root: Path) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: dict[str, set[str]] = {}
    for module, deps in graph.items():
        out.setdefault(package(module), set()).update(
            package(d) for d in deps if package(d) != package(module)
        )
    return out


def test_no_import_cycle_between_bridge_packages() -> None:
    assert _cycles(_packages(_graph(BRIDGE))) == []


def test_no_import_cycle_between_bridge_modules() -> None:
    assert _cycles(_graph(BRIDGE)) == []


def test_no_test_module_imports_another() -> None:
    """Tests share code only through ``tests/support`` and ``conftest.py`` fixtures."""
    offenders = []
    for path in TESTS.rglob("*.py"):
        for module in _imports(path):
            last = module.rsplit(".", 1)[-1]
            if (
                module.startswith("tests.")
                and not module.startswith("tests.support")
                and (
                    last.startswith("test_")
                    or last == "conftest"
                    or last in {"helpers", "hubproc", "pgcluster"}
                )
            ):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert sorted(set(offenders)) == []


def test_long_modules_say_why() -> None:
    long = []
    for path in BRIDGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_LINES and SIZE_NOTE not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert long == []
