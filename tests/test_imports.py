"""The package's import graph has no cycle, counting imports inside functions too (a cycle
hidden behind a function-level import still couples the two modules)."""

from __future__ import annotations

from tests import import_graph


def test_no_import_cycles():
    assert import_graph.cycles(import_graph.graph()) == []


def test_the_checker_finds_a_cycle_hidden_inside_a_function(tmp_path):
    pkg = tmp_path / "raymtl"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from raymtl.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from raymtl import a\n")
    (pkg / "c.py").write_text("import raymtl.a\n")
    assert import_graph.cycles(import_graph.graph(pkg)) == [["raymtl.a", "raymtl.b"]]
    assert import_graph.function_level_imports(pkg) == ["raymtl/b.py:2 raymtl.a"]
