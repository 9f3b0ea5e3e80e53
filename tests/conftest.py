import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# The NumPy oracle lives beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

# Every test checkpoints after every epoch (the interrupt and kill tests count on it);
# tests/test_train.py checks the default, throttled behaviour itself.
os.environ.setdefault("L2REG_CHECKPOINT_SECONDS", "0")
# One compilation cache for the whole session, its subprocesses included, never the user's own.
if "L2REG_COMPILE_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="l2reg-test-jax-")
    os.environ["L2REG_COMPILE_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """The ``slow`` marker on the tests that tests/slow.py names (``pytest -m "not slow"``: the quick check)."""
    import pytest
    from slow import is_slow

    for item in items:
        if is_slow(item.path.name, item.name):
            item.add_marker(pytest.mark.slow)
