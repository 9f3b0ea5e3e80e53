"""The refit's programs compiled while the CV trains (``Blocks.compile_refit``): the refit loads them and
trains to the same numbers."""

import threading
from dataclasses import replace

import numpy as np
from jax import monitoring

import l2reg
from l2reg.core import engine
from l2reg.fronts import orchestration, sweeping

_events: list = []  # (thread, "hit" or "miss") of JAX's persistent compilation cache
_recording = threading.Event()
_KINDS = {"/jax/compilation_cache/cache_hits": "hit", "/jax/compilation_cache/cache_misses": "miss"}
monitoring.register_event_listener(
    lambda event, **_: _events.append((threading.current_thread().name, _KINDS[event]))
    if _recording.is_set() and event in _KINDS else None)

# shapes no other test compiles (the persistent cache is the session's)
RUN = dict(lmbda=[0.0, 0.7, 7.0], folds=3, epochs=3, train_size=131, sizes=[64, 9, 10])


def test_the_refit_loads_what_was_compiled_while_the_cv_trained(monkeypatch):
    calls = []
    real = engine.compile_plan

    def counted(plan, *args, **kw):
        before, me = len(_events), threading.current_thread().name
        real(plan, *args, **kw)
        mine = [kind for thread, kind in _events[before:] if thread == me]  # this thread's lookups only
        calls.append((me, plan.G, mine.count("miss"), mine.count("hit")))

    monkeypatch.setattr(engine, "compile_plan", counted)
    _recording.set()
    try:
        ahead = l2reg.sweep("digits", **RUN)
    finally:
        _recording.clear()
    cv, beside, refit = calls  # the CV's stack (3 folds), the refit's ahead (1 stream), the refit's own
    assert cv[:3] == ("MainThread", 3, 2)  # compiled: its epoch and monitoring
    assert beside[:3] == ("l2reg-beside", 1, 2)  # compiled the refit's, while the CV trained
    assert refit == ("MainThread", 1, 0, 2)  # loaded both, compiled nothing

    monkeypatch.setattr(sweeping, "MLP_BLOCKS", replace(sweeping.MLP_BLOCKS, compile_refit=None))
    plain = l2reg.sweep("digits", **{**RUN, "lmbda": [0.0, 0.7, 7.0]})
    assert ahead.rows == plain.rows
    for a, b in zip(ahead.refit_params, plain.refit_params):
        for la, lb in zip(a, b):
            for k in la:
                np.testing.assert_array_equal(la[k], lb[k])


def test_a_failure_beside_costs_only_the_head_start(monkeypatch):
    def broken(task):
        raise RuntimeError("no")

    monkeypatch.setattr(sweeping, "MLP_BLOCKS", replace(sweeping.MLP_BLOCKS, compile_refit=broken))
    r = l2reg.sweep("digits", **{**RUN, "epochs": 2})
    assert len(r.rows) == 3 and not any(t.name == "l2reg-beside" for t in threading.enumerate())


def test_without_a_beside_function_the_hook_is_the_callers():
    f = object()
    assert orchestration._Beside(None, None).hook(f) is f
