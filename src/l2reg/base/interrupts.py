"""Ctrl-C that never loses work: a flag, checked where stopping is safe.

Python's default SIGINT handler raises ``KeyboardInterrupt`` wherever the main
thread happens to be, inside XLA's compiler or a garbage-collection callback
included, which can leave a half-written state or crash the process. Instead,
:func:`install` (the command line's first act) makes Ctrl-C set a flag, and
the run stops cleanly at the next safe point with
:class:`~l2reg.errors.Interrupted`: between its phases (:func:`phase`: the
options checked, the data loaded, before compiling, between a sweep's
stages, before the report is drawn and before the result's JSON is
written) and after every epoch (the engine). The first Ctrl-C is
acknowledged at once, even while the main thread is busy in compiled code
(a thread reads the signal from :func:`signal.set_wakeup_fd`), and a
second one stops at once (exit 130). This module imports nothing heavy.
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
#: What the first Ctrl-C prints, at once.
ACKNOWLEDGED = "Ctrl-C: stopping at the next safe point (press Ctrl-C again to stop at once)…"
STOPPED_AT_ONCE = "interrupted again: stopped at once."
#: Test hook: ``L2REG_PAUSE_AT=<phase>`` makes :func:`phase` announce that phase on stderr
#: and wait there (up to a minute) for Ctrl-C, so a test can interrupt exactly there.
PAUSE_ENV = "L2REG_PAUSE_AT"


_said = threading.Lock()  # held once the acknowledgement is out; the stop says itself under it too
_stopping = threading.Lock()


def _acknowledge() -> None:
    if _said.acquire(blocking=False):
        sys.stderr.write(f"\n{ACKNOWLEDGED}\n")
        sys.stderr.flush()


def _stop_at_once() -> None:
    """The second Ctrl-C, from the handler or the watcher, whichever comes first: said once, exit 130."""
    _acknowledge()
    with _stopping:
        sys.stderr.write(f"\n{STOPPED_AT_ONCE}\n")
        sys.stderr.flush()
        os._exit(130)


def _handler(signum, frame) -> None:
    if _requested.is_set():  # a second Ctrl-C: stop now, whatever is running
        if not _installed:  # a library caller (Jupyter, say): the usual KeyboardInterrupt
            raise KeyboardInterrupt
        _stop_at_once()
    _requested.set()
    if _installed:
        _acknowledge()


def _watch(fd: int) -> None:
    """The watcher thread: each SIGINT arrives here as a byte at once, whatever the main thread is doing."""
    seen = 0
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        seen += data.count(signal.SIGINT)
        if seen == 1:
            _acknowledge()
        elif seen > 1:
            _stop_at_once()


def install() -> None:
    """Make Ctrl-C request a clean stop, acknowledged at once (main thread only; elsewhere a no-op)."""
    global _installed
    if threading.current_thread() is not threading.main_thread() or _installed:
        return
    signal.signal(signal.SIGINT, _handler)
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read,), name="l2reg-ctrl-c", daemon=True).start()
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
