"""A small run on one core for the time of its command only (l2reg.base.cores)."""

import os

import pytest

from l2reg.base import cores
from l2reg.cli import main

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this system")


@pytest.mark.parametrize(("K", "env", "pins"), [(1, None, True), (cores.BELOW - 1, None, True),
                                                (cores.BELOW, None, False), (1, "0", False)])
def test_pinned_within_the_block_and_given_back(monkeypatch, K, env, pins):
    if env is None:
        monkeypatch.delenv(cores.ENV, raising=False)
    else:
        monkeypatch.setenv(cores.ENV, env)
    before = os.sched_getaffinity(0)
    pins = pins and len(before) > 1
    with cores.one_core_for(K) as pinned:
        assert pinned is pins
        assert len(os.sched_getaffinity(0)) == (1 if pins else len(before))
    assert os.sched_getaffinity(0) == before


def test_a_command_run_in_this_process_leaves_its_cores_as_they_were(tmp_path, monkeypatch):
    """It used to pin the caller (a test runner's worker: the rest of the suite on one core)."""
    monkeypatch.delenv(cores.ENV, raising=False)
    before = os.sched_getaffinity(0)
    assert main(["train", "--epochs", "1", "--train-size", "60", "--lmbda", "0.5", "-q",
                 "--out", str(tmp_path / "run")]) in (0, None)
    assert os.sched_getaffinity(0) == before
