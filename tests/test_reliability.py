"""Runs that survive interruption and divergence, and lose nothing (issue 7)."""

import importlib
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2reg.base import checkpoint

from l2reg.data import Dataset, load_dataset
from l2reg.errors import DataError

T = importlib.import_module("l2reg.fronts.training")

# Long enough on digits that a kill lands mid-run (each epoch also evaluates).
RUN = ["train", "--train-size", "300", "--epochs", "150", "--lmbda", "0,1", "--seeds", "0,1", "-q"]


def _cli(*args):
    return [sys.executable, "-c", "import sys; from l2reg.cli import main; sys.exit(main())", *args]


def _params(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _wait_for_epoch(ckpt_path, proc, at_least=3, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if ckpt_path.exists():
            try:
                if checkpoint.read_meta(ckpt_path)["epoch"] >= at_least:
                    return
            except DataError:
                pass
        if proc.poll() is not None:
            pytest.fail(f"run ended before epoch {at_least}: {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(_cli(*RUN, "--out", str(out)), check=True, capture_output=True)
    return out


def _stop_at(out, proc, sig, at_least):
    """Send ``sig`` once the checkpoint holds epoch ``at_least``; check what is left; return its epoch and stderr."""
    _wait_for_epoch(out / checkpoint.FILENAME, proc, at_least=at_least)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode == {signal.SIGKILL: -9, signal.SIGINT: 130}[sig], err
    done = checkpoint.read_meta(out / checkpoint.FILENAME)["epoch"]
    assert at_least <= done < 150
    assert not (out / "metrics.json").exists()
    # Only the checkpoint (and, after SIGKILL, maybe the temporary file of a write it cut short).
    assert [p.name for p in out.iterdir() if not p.name.endswith(".tmp")] == [checkpoint.FILENAME]
    return done, err


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, reference):
    """One run killed twice: SIGKILL mid-run, then its resume stopped by SIGINT (exit 130 and the resume
    command) at least 3 epochs later, then resumed to the end: the uninterrupted result, bit for bit."""
    out = tmp_path / "run"
    proc = subprocess.Popen(_cli(*RUN, "--out", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, _ = _stop_at(out, proc, signal.SIGKILL, 3)
    proc = subprocess.Popen(_cli("train", "--resume", str(out), "-q"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _, err = _stop_at(out, proc, signal.SIGINT, killed + 3)
    assert f"from epoch {killed} of 150." in err, err  # it went on from the killed run's checkpoint
    assert f"l2reg train --resume {out}" in err and "Traceback" not in err
    subprocess.run(_cli("train", "--resume", str(out), "-q"), check=True, capture_output=True)
    assert not list(out.glob(".*.tmp"))
    got, want = _params(out / "params.npz"), _params(reference / "params.npz")
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    a = json.loads((out / "metrics.json").read_text())["runs"]
    b = json.loads((reference / "metrics.json").read_text())["runs"]
    assert [r["evaluation_accuracy"] for r in a] == [r["evaluation_accuracy"] for r in b]


def test_resume_of_another_config_is_refused(tmp_path, capsys):
    from l2reg.cli import main

    out = tmp_path / "run"
    assert main(["train", "--train-size", "100", "--epochs", "2", "-q", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--batch-size", "5", "-q"]) == 2
    err = capsys.readouterr().err
    assert "option batch_size differs (checkpoint has 10, this run has 5)" in err


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    from l2reg.cli import main

    assert main(["train", "--resume", str(tmp_path), "-q"]) == 2
    assert "no checkpoint there" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small():
    d = load_dataset("digits")
    return Dataset("digits-200", d.X_train[:200], d.y_train[:200], d.X_val, d.y_val, d.X_test, d.y_test, 10)


def test_diverging_configuration_is_frozen_and_others_go_on(small):
    # ηλ/n = 0.5·2000/200 = 5: the decay factor (1 − ηλ/n) = −4 makes |w| explode.
    r = T.train(small, epochs=4, eta=0.5, lmbda=[0.0, 1.0, 2000.0], seed=[0, 1])
    for run in r.runs:
        assert run["diverged"] == (run["lmbda"] == 2000.0)
        if run["diverged"]:
            assert 1 <= run["diverged_epoch"] <= 4
            frozen = run["weight_sq_norm"][run["diverged_epoch"] - 1 :]
            assert all(v == frozen[0] or (np.isnan(v) and np.isnan(frozen[0])) for v in frozen)
    alone = T.train(small, epochs=4, eta=0.5, lmbda=[0.0, 1.0], seed=[0, 1])
    healthy = [run for run in r.runs if not run["diverged"]]
    for a, b in zip(healthy, alone.runs):
        assert (a["lmbda"], a["seed"]) == (b["lmbda"], b["seed"])
        np.testing.assert_allclose(a["evaluation_accuracy"], b["evaluation_accuracy"], rtol=1e-6)
        np.testing.assert_allclose(a["training_cost"], b["training_cost"], rtol=1e-5)


def test_results_are_deterministic_for_a_fixed_seed(small):
    a = T.train(small, epochs=3, lmbda=[0.0, 2.0], seed=[5])
    b = T.train(small, epochs=3, lmbda=[0.0, 2.0], seed=[5])
    for pa, pb in zip(a.params, b.params):
        for la, lb in zip(pa, pb):
            np.testing.assert_array_equal(la["w"], lb["w"])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lmbdas=st.lists(st.floats(0.0, 50.0), min_size=2, max_size=4, unique=True), seed=st.integers(0, 3))
def test_convex_case_larger_lambda_never_gives_larger_weights(small, lmbdas, seed):
    """No hidden layer (softmax regression): Σw² at the end decreases with λ."""
    lmbdas = sorted(lmbdas)
    r = T.train(small, sizes=[64, 10], cost="log-likelihood", epochs=15, eta=0.2, lmbda=lmbdas, seed=seed,
                monitor=())
    norms = [run["weight_sq_norm"][-1] for run in r.runs]
    assert all(b <= a * (1 + 1e-4) for a, b in zip(norms, norms[1:])), (lmbdas, norms)
