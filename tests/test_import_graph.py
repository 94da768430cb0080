"""The package's import graph has no cycle: every `import lamm...` statement in lamm/, at module
level or inside a function, read with `ast` (a lazy import inside a function is still a cycle a
reader has to keep in mind)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph(package: Path) -> dict[str, set[str]]:
    modules = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("lamm")
            ):
                for (
                    alias
                ) in node.names:  # `from lamm.data import store` imports the module lamm.data.store
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(
                    alias.name for alias in node.names if alias.name.startswith("lamm")
                )
        graph[name] = {target for target in graph[name] if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_lazy_two_module_cycle(tmp_path):
    package = tmp_path / "lamm"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from lamm.b import f\n")
    (package / "b.py").write_text("def f():\n    from lamm.a import g\n")
    (package / "c.py").write_text("import lamm.a\n")
    assert cycles(import_graph(package)) == [["lamm.a", "lamm.b"]]


def test_the_package_import_graph_has_no_cycle():
    assert cycles(import_graph(ROOT / "lamm")) == []


def test_benchmarks_live_in_lamm_bench_and_nothing_the_pipeline_runs_imports_them():
    import subprocess
    import sys

    graph = import_graph(ROOT / "lamm")
    users = sorted(
        name
        for name, targets in graph.items()
        if any(t == "lamm.bench" or t.startswith("lamm.bench.") for t in targets)
        and not name.startswith(("lamm.bench", "lamm.commands.bench"))
    )
    assert users == [], f"modules outside the benchmarks that import them: {users}"
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, lamm.data, lamm.models, lamm.training, lamm.analysis; "
            "print(sorted(m for m in sys.modules if m.startswith('lamm.bench')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert loaded.stdout.strip() == "[]"
