"""The command line's helper process (l2reg.base.helper): the same folds and figures as without it, ended on
leaving, replaced by in-place work if it dies, and out of the way of Ctrl-C."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import l2reg
from l2reg.base import helper
from l2reg.fronts.cv import make_folds
from l2reg.present import pages


@pytest.fixture
def forced(monkeypatch):
    """A helper even in this test process, which has scikit-learn and matplotlib imported already."""
    monkeypatch.setattr(helper, "wanted", lambda modules: True)


@pytest.fixture(scope="module")
def small_sweep():
    return l2reg.sweep("digits", lmbda=[0.0, 1.0, 10.0], folds=2, epochs=2, train_size=120)


def _same_folds(a, b):
    assert len(a) == len(b)
    for (tr_a, va_a), (tr_b, va_b) in zip(a, b):
        np.testing.assert_array_equal(tr_a, tr_b)
        np.testing.assert_array_equal(va_a, va_b)


def _pid(_):
    return os.getpid()


def test_without_a_helper_calls_run_here():
    assert not helper.running()
    assert helper.call(_pid, None) == os.getpid()
    assert helper.submit(_pid, None).result() == os.getpid()


@pytest.mark.parametrize("classification", [True, False])
def test_folds_and_figures_from_the_helper_equal_those_made_here(forced, small_sweep, classification):
    y = np.tile(np.arange(4), 25)
    here_folds = make_folds(y, 4, 7, classification)
    here_html = pages.figure_sections(small_sweep) if classification else None
    with helper.started(("sklearn.model_selection",), ("matplotlib.pyplot",)) as on:
        assert on and helper.running()
        assert helper.call(_pid, None) != os.getpid()  # it really ran elsewhere
        _same_folds(make_folds(y, 4, 7, classification), here_folds)
        if classification:
            drawing = pages.Drawing(small_sweep, pages.sweep_figures(small_sweep))
            assert 0 < drawing.here < len(drawing.figures)  # both processes draw
            assert drawing.sections() == here_html  # the same PNGs, in page order
    assert not helper.running()


def test_leaving_ends_the_helper_at_once_even_while_it_imports(forced):
    before = set(multiprocessing.active_children())
    t = time.perf_counter()
    with helper.started(("sklearn.model_selection",), ("matplotlib.pyplot",)):
        mine = set(multiprocessing.active_children()) - before
        assert mine
    assert time.perf_counter() - t < 10
    assert not any(p.is_alive() for p in mine)


def test_a_helper_that_dies_is_replaced_by_work_here(forced):
    with helper.started(("sklearn.model_selection",)):
        worker = helper.call(_pid, None)
        os.kill(worker, signal.SIGKILL)
        time.sleep(0.5)
        assert helper.call(_pid, None) == os.getpid()
        _same_folds(make_folds(np.arange(20) % 2, 2, 0, True), helper.call(make_folds, np.arange(20) % 2, 2, 0, True))


@pytest.mark.parametrize(("env", "modules", "expected"), [
    ({}, ("not_a_module_l2reg",), True),
    ({"L2REG_HELPER": "0"}, ("not_a_module_l2reg",), False),
    ({}, ("numpy",), False),  # imported already: nothing to gain
    ({}, (), False),  # nothing to import: nothing to gain
])
def test_wanted_only_where_it_gains(monkeypatch, env, modules, expected):
    monkeypatch.delenv("L2REG_HELPER", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(helper, "_cores", lambda: 2)
    assert helper.wanted(modules) is expected
    monkeypatch.setattr(helper, "_cores", lambda: 1)
    assert helper.wanted(modules) is False


def test_ctrl_c_to_the_whole_group_stops_the_command_and_its_helper(tmp_path):
    """A terminal's Ctrl-C reaches every process of the group: the command stops with its one line and
    exit 130, the helper says nothing and is gone."""
    env = dict(os.environ, L2REG_PAUSE_AT="report")
    env.pop("L2REG_HELPER", None)
    proc = subprocess.Popen([sys.executable, "-m", "l2reg._entry", "sweep", "--train-size", "120", "--epochs", "2",
                             "--lmbda", "0,1", "--folds", "2", "--out", str(tmp_path / "run"), "-q"],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stderr.readline()
    while line and "[l2reg: at report]" not in line:
        line = proc.stderr.readline()
    helpers = [p for p in _children(proc.pid) if "multiprocessing.spawn" in _cmdline(p)]
    assert helpers, "the command started no helper"
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "Resume with: l2reg sweep --resume" in err
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{p}") for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{p}") for p in helpers)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ")
    except OSError:
        return ""


def test_a_killed_command_takes_its_helper_with_it(tmp_path):
    """SIGKILL leaves no `finally` to run: the helper sees its parent go, and nothing waiting on the
    command's output waits for the helper."""
    env = dict(os.environ, L2REG_PAUSE_AT="report")
    env.pop("L2REG_HELPER", None)
    proc = subprocess.Popen([sys.executable, "-m", "l2reg._entry", "sweep", "--train-size", "120", "--epochs", "2",
                             "--lmbda", "0,1", "--folds", "2", "--out", str(tmp_path / "run"), "-q"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    while line and "[l2reg: at report]" not in line:
        line = proc.stderr.readline()
    helpers = [p for p in _children(proc.pid) if "multiprocessing" in _cmdline(p)]
    assert helpers
    proc.kill()
    proc.communicate(timeout=60)  # returns: no helper holds the pipes
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{p}") for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{p}") for p in helpers)


def test_what_cannot_be_pickled_runs_here(forced):
    local = lambda: os.getpid()  # noqa: E731  (a lambda cannot be pickled)
    with helper.started(("sklearn.model_selection",)):
        assert helper.call(_call, local) == os.getpid()


def _call(f):
    return f()
