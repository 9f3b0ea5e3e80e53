"""A costly module fixture's value made once per test session, by whichever xdist worker asks first.

With ``pytest -n 2`` every worker that runs a test of a module builds that
module's fixtures itself: a costly one (tests/test_report_pages.py's runs and
pages) is then built twice at once on the 2 cores. :func:`once` builds it in
the first worker that asks, under a lock in the session's shared temporary
folder (pytest-xdist's documented pattern), and pickles it there; the other
workers wait for it and load the pickle. Without xdist it just builds it.
"""

import fcntl
import os
import pickle
from collections.abc import Callable
from pathlib import Path


def once(tmp_path_factory, name: str, make: Callable[[Path], object]) -> object:
    """``make(folder)`` once per session (``folder``: a new folder for the files the value names)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return make(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent / f"once-{name}"  # the same for every worker of the session
    root.mkdir(exist_ok=True)
    value_file = root / "value.pickle"
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released as the file closes
        if value_file.exists():
            return pickle.loads(value_file.read_bytes())
        value = make(root / "files")
        (root / "value.tmp").write_bytes(pickle.dumps(value))
        os.replace(root / "value.tmp", value_file)
        return value
