"""The layers of the package (docs/architecture.md): import-linter's contracts in pyproject.toml hold, and break
when a module imports against the direction or closes a circle (function-local imports included)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    """A copy of the package and its contracts, to break on purpose."""
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(ROOT / "src" / "l2reg", root / "src" / "l2reg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_contracts_hold():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 kept, 0 broken" in r.stdout


@pytest.mark.parametrize("module, line, broken", [
    # an upward import inside a function: the engine reaching for presentation
    ("core/engine.py", "def _upward():\n    from ..present import report  # noqa: F401\n", "One import direction"),
    # a front importing a presentation module at the top
    ("fronts/training.py", "from ..present import words  # noqa: F401,E402\n", "One import direction"),
    # a circle between two fronts (cv is below sweeping)
    ("fronts/cv.py", "def _circle():\n    from . import sweeping  # noqa: F401\n", "No circles"),
    # presentation reaching for a front (allowed by the order alone: results are data)
    ("present/save.py", "def _front():\n    from ..fronts import training  # noqa: F401\n", "Results are data"),
])
def test_an_import_against_the_rule_breaks_it(package_copy, module, line, broken):
    path = package_copy / "src" / "l2reg" / module
    original = path.read_text()
    try:
        path.write_text(original + "\n\n" + line)
        r = _lint(package_copy)
    finally:
        path.write_text(original)
    assert r.returncode != 0
    assert "BROKEN" in r.stdout and broken in r.stdout, r.stdout
