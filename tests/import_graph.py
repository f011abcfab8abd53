"""raymtl's import graph, from the source (every import, at module top or inside a function):
`python -m tests.import_graph` prints its cycles and the imports made inside functions.

A cycle hidden behind a function-level import still couples the two modules; the tests keep the
graph acyclic (tests/test_imports.py).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "raymtl"


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module `name` names (or the module it is an attribute of)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(module imported, line, inside a function) for each raymtl import in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function |= {id(n) for n in ast.walk(node) if n is not node}
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] == "raymtl":
                target = _resolve(name, known)
                if target:
                    out.append((target, node.lineno, id(node) in in_function))
    return out


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    known = modules(root)
    return {m: {t for t, _, _ in imports(p, known) if t != m} for m, p in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(g) + 100))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return sorted(found)


def function_level_imports(root: Path = PACKAGE) -> list[str]:
    known = modules(root)
    return [
        f"{p.relative_to(root.parent)}:{line} {target}"
        for m, p in known.items()
        for target, line, inside in imports(p, known)
        if inside
    ]


if __name__ == "__main__":
    found = cycles(graph())
    for c in found:
        print("cycle:", " <-> ".join(c))
    lazy = function_level_imports()
    print(f"{len(found)} cycle(s); {len(lazy)} raymtl import(s) inside functions")
    sys.exit(1 if found else 0)
