"""Every function in lamm/ fits on a screen or two: at most MAX_LINES lines (read with `ast`,
decorators excluded, the docstring included), the demo data generators as much as the rest."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80


def long_functions(package: Path, limit: int) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{relative}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_the_checker_counts_a_function_from_def_to_its_last_line(tmp_path):
    package = tmp_path / "lamm"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(4))
    (package / "a.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert long_functions(package, 4) == ["lamm/a.py:5 long (5 lines)"]
    assert long_functions(package, 5) == []


def test_no_function_in_lamm_is_longer_than_the_limit():
    assert long_functions(ROOT / "lamm", MAX_LINES) == []
