"""tests/slow.py names real tests: a renamed or removed slow test must not silently fall into the quick subset."""

import ast
from pathlib import Path

import pytest
from slow import SLOW

HERE = Path(__file__).parent


def _test_names(module: str) -> set:
    tree = ast.parse((HERE / module).read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


@pytest.mark.parametrize("module", sorted(SLOW))
def test_every_slow_entry_names_a_test_of_its_module(module):
    assert (HERE / module).is_file(), f"tests/slow.py names {module}, which does not exist"
    names = _test_names(module)
    for entry in SLOW[module]:
        base = entry.split("[")[0].rstrip("*")
        assert entry == "*" or base in names, f"tests/slow.py: {module} has no test {base}"
