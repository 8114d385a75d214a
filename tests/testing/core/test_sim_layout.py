"""The simulators' layout: one package each; the shared parts name none of them."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import bulkport.testing
from bulkport.testing.core.simulator import names

TESTING = Path(bulkport.testing.__file__).parent
NAME = re.compile(r"\b(" + "|".join(names()) + r")\b")


def _strings(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module, its docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_the_shared_parts_name_no_simulator() -> None:
    shared = [TESTING / "__init__.py", *sorted((TESTING / "core").glob("*.py"))]
    found = [f"{path.relative_to(TESTING)}:{line}: {text!r}" for path in shared
             for line, text in _strings(path) if NAME.search(text)]
    assert found == []


def test_every_simulator_has_an_app_and_a_seed() -> None:
    for name in names():
        assert (TESTING / name / "app.py").is_file() and (TESTING / name / "seed.py").is_file()


def test_importing_the_package_loads_no_simulator_until_a_name_is_used() -> None:
    code = ("import sys, bulkport.testing as t; before = sorted(m for m in sys.modules "
            "if m.startswith('bulkport.testing.')); t.OdsStore; "
            "print(before, 'bulkport.testing.ckan' in sys.modules, "
            "'bulkport.testing.ods.store' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["[]", "False", "True"]
    assert set(bulkport.testing.__all__) <= set(dir(bulkport.testing))
