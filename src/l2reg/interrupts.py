"""Ctrl-C that never loses work: a flag, checked where stopping is safe.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main
thread happens to be, inside XLA's compiler or a garbage-collection callback
included, which can leave a half-written state or crash the process. Instead,
:func:`install` makes Ctrl-C set a flag; the engine checks it after every
epoch (and the CLI between stages) and stops cleanly with
:class:`~l2reg.errors.Interrupted`. A second Ctrl-C stops at once (exit 130).
This module imports nothing heavy, so the CLI installs it first thing.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager

_requested = threading.Event()
_installed = False


def _handler(signum, frame) -> None:
    if _requested.is_set():  # a second Ctrl-C: stop now, whatever is running
        if not _installed:  # a library caller (Jupyter, say): the usual KeyboardInterrupt
            raise KeyboardInterrupt
        sys.stderr.write("\ninterrupted again: stopped at once.\n")
        sys.stderr.flush()
        os._exit(130)
    _requested.set()
    sys.stderr.write("\nstopping at the next safe point (Ctrl-C again to stop at once)\n")
    sys.stderr.flush()


def install() -> None:
    """Make Ctrl-C request a clean stop (main thread only; elsewhere a no-op)."""
    global _installed
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)
        _installed = True


def requested() -> bool:
    return _requested.is_set()


def reset() -> None:
    _requested.clear()


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
