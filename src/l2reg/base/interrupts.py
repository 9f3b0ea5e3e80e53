"""Ctrl-C that never loses work: a flag, checked where stopping is safe.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main
thread happens to be, inside XLA's compiler or a garbage-collection callback
included, which can leave a half-written state or crash the process. Instead,
:func:`install` (the command line's first act) makes Ctrl-C set a flag, and
the run stops cleanly at the next safe point with
:class:`~l2reg.errors.Interrupted`: between its phases (:func:`phase`: the
options checked, the data loaded, before compiling, between a sweep's
stages) and after every epoch (the engine). A second Ctrl-C stops at once
(exit 130). This module imports nothing heavy.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

from ..errors import Interrupted

_requested = threading.Event()
_installed = False
#: Test hook: ``L2REG_PAUSE_AT=<phase>`` makes :func:`phase` announce that phase on stderr
#: and wait there (up to a minute) for Ctrl-C, so a test can interrupt exactly there.
PAUSE_ENV = "L2REG_PAUSE_AT"


def _handler(signum, frame) -> None:
    if _requested.is_set():  # a second Ctrl-C: stop now, whatever is running
        if not _installed:  # a library caller (Jupyter, say): the usual KeyboardInterrupt
            raise KeyboardInterrupt
        sys.stderr.write("\ninterrupted again: stopped at once.\n")
        sys.stderr.flush()
        os._exit(130)
    _requested.set()


def install() -> None:
    """Make Ctrl-C request a clean stop (main thread only; elsewhere a no-op)."""
    global _installed
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)
        _installed = True


def requested() -> bool:
    return _requested.is_set()


def pause_point(name: str) -> None:
    """The test hook alone: with ``L2REG_PAUSE_AT=name``, announce ``name`` and wait for Ctrl-C."""
    if os.environ.get(PAUSE_ENV) == name:
        sys.stderr.write(f"[l2reg: at {name}]\n")
        sys.stderr.flush()
        deadline = time.monotonic() + 60
        while not _requested.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)


def phase(name: str) -> None:
    """A safe point between two phases of a run: stop here if Ctrl-C was pressed."""
    pause_point(name)
    if _requested.is_set():
        raise Interrupted(f"stopped at '{name}'.", epoch=0)


@contextmanager
def graceful():
    """Within the block, Ctrl-C only sets the flag (if nobody installed the handler yet)."""
    if _installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
