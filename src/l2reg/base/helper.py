"""A helper process for the one-core work a command would otherwise wait on.

A command spends its first seconds importing JAX, and its last ones drawing
the report's figures with matplotlib, each on one core. The command line
starts one helper process at its start (:func:`started`) that imports, at
the same time as this process imports JAX, what the command will hand it:
scikit-learn for the folds (``imports``), then matplotlib and the figure
code (``then``, once the folds are made). The
run hands it work through :func:`submit` and :func:`call`, with pickled
arguments and results: the same functions on the same inputs, so the same
results as without it (tests/test_helper.py). Without a helper running,
they run the function here.

No helper is started where it cannot gain: anywhere but the command line
(the library never starts one), on fewer than two cores, or where the
modules it would import are imported already (a test runner, a notebook);
``L2REG_HELPER=0`` turns it off. It is spawned, not forked (this process
may hold threads), ignoring SIGINT: Ctrl-C is this process's to handle
(:mod:`l2reg.base.interrupts`), and leaving :func:`started` ends the helper
at once. A helper that dies is replaced by running its work here.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

log = logging.getLogger(__name__)

ENV = "L2REG_HELPER"
_OFF = ("0", "off", "false", "no")
_executor: ProcessPoolExecutor | None = None
_then: tuple = ()  # imports still to queue, after the first call


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def wanted(modules: Sequence[str]) -> bool:
    """Whether a helper would gain: it is not turned off, there are two cores, and ``modules`` are some to
    import, none of them imported yet."""
    if not modules or os.environ.get(ENV, "1").strip().lower() in _OFF or _cores() < 2:
        return False
    return not any(name in sys.modules for name in modules)


def _import_all(names: Sequence[str]) -> None:
    for name in names:
        importlib.import_module(name)


def _start(imports: Sequence[str]) -> None:
    """The helper's initializer (born ignoring Ctrl-C, :func:`started`): it ends with its command, whatever
    ends the command (a kill, a second Ctrl-C), and holds none of the command's output pipes, so nothing
    waiting on them waits for it; then ``imports``."""
    parent = multiprocessing.parent_process()
    if parent is not None:  # a pool's worker outlives a killed parent otherwise (it holds its queue's both ends)
        threading.Thread(target=_exit_with, args=(parent.sentinel,), name="l2reg-helper-parent", daemon=True).start()
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    os.close(quiet)
    _import_all(imports)


def _exit_with(sentinel) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(0)


def _ready() -> int:
    return os.getpid()


@contextmanager
def started(imports: Sequence[str] = (), then: Sequence[str] = ()):
    """Within the block, a helper process (when :func:`wanted`) that imports ``imports`` at once and ``then``
    once its first call is answered (at once without ``imports``): a call never waits for what it does not use.

    Yields whether a helper runs. On leaving, the helper is ended at once,
    whatever it is doing (the block's result never depends on it).
    """
    global _executor, _then
    if _executor is not None or not wanted((*imports, *then)):
        yield False
        return
    # The child is born ignoring SIGINT (an ignored signal stays ignored across exec, and Python keeps it so):
    # a terminal's Ctrl-C reaches the whole process group, and it is ours to handle. Only the main thread may
    # set a handler; a Ctrl-C in these few milliseconds is lost.
    main = threading.current_thread() is threading.main_thread()
    ours = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        before = set(multiprocessing.active_children())
        executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                                       initargs=(tuple(imports),))
        executor.submit(_ready)  # spawns the process now, so that it imports while we do
        children = set(multiprocessing.active_children()) - before
    finally:
        if main:
            signal.signal(signal.SIGINT, ours)
    _executor, _then = executor, tuple(then)
    if not imports:
        _import_then()
    try:
        yield True
    finally:
        _executor, _then = None, ()
        executor.shutdown(wait=False, cancel_futures=True)
        for child in children:
            child.terminate()
            child.join(5)


def _import_then() -> None:
    """Queue the ``then`` imports (once): after the first call, which needs only ``imports``."""
    global _then
    if _then and _executor is not None:
        _executor.submit(_import_all, _then)
        _then = ()


class Pending:
    """A call under way in the helper, or done here; :meth:`result` gives its value (or raises its error)."""

    def __init__(self, fn: Callable, args: tuple, future: Future | None):
        self._fn, self._args, self._future = fn, args, future
        if future is None:
            self._value = fn(*args)

    def result(self):
        if self._future is None:
            return self._value
        try:
            value = self._future.result()
            _import_then()
            return value
        except BrokenProcessPool:  # the helper died (killed, out of memory): the same work, here
            log.info("the helper process stopped; running %s here", getattr(self._fn, "__name__", self._fn))
            return self._fn(*self._args)


def running() -> bool:
    return _executor is not None


def submit(fn: Callable, *args) -> Pending:
    """``fn(*args)`` in the helper (returns at once) or, without one, here (returns when done).
    ``fn`` must be a module-level function; arguments and result are pickled."""
    if _executor is None:
        return Pending(fn, args, None)
    try:
        pickle.dumps((fn, args))  # what cannot travel (a model's closure, say) runs here
    except Exception:  # noqa: BLE001  (pickle raises whatever the object's reduction raises)
        return Pending(fn, args, None)
    try:
        return Pending(fn, args, _executor.submit(fn, *args))
    except BrokenProcessPool:
        return Pending(fn, args, None)


def call(fn: Callable, *args):
    """``fn(*args)``, in the helper when one runs."""
    return submit(fn, *args).result()
