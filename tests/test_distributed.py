"""Sweeps on Ray (issue 12): the same result as in process, through worker and driver deaths, with a real local Ray.

One session-wide ``ray.init(num_cpus=2)`` serves most tests; one test starts
a cluster as a user would (``ray start --head``) and runs the CLI against it.
Every Ray server listens on 127.0.0.1 only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
with node IP 127.0.0.1 is Ray's switch for that). The workers and this
process share l2reg's compilation cache in a folder of the session, so that
each shape compiles once.

The oracle is the in-process sweep (:func:`l2reg.sweep`): the same chosen λ,
and CV means and standard errors equal within float32 tolerance (TOL), not
bit for bit, since in process all folds train in one stack. Runs of the same
block layout on Ray are bit-for-bit equal, so a killed worker or driver must
change nothing at all.
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import l2reg
from l2reg.cli import main
from l2reg.errors import ConfigError
from l2reg.present.save import save, sweep_document

# Ray is imported only once the session's cluster is set up: it reads its settings (LOCAL_ONLY) on import.
HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed")

#: Ray's switch that makes it bind every server to 127.0.0.1 (node IP 127.0.0.1) on Linux too, and Ray's
#: token authentication (on by default for a new cluster; a process that joins one by address must ask for it).
LOCAL_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
#: float32 tolerance of Ray against in process: every fold trains in a stack of another width there.
TOL = {"rtol": 1e-5, "atol": 1e-6}
SMALL = {"train_size": 150, "epochs": 3, "lmbda": [0.0, 0.1, 1.0, 10.0], "folds": 3, "select": "1se", "seed": 1}
SMALL_ARGV = ["--train-size", "150", "--epochs", "3", "--lmbdas", "0,0.1,1,10", "--folds", "3", "--select", "1se",
              "--seed", "1", "-q"]
BLOCK_SIZE = 2  # 4 pairs × 3 folds: 6 CV blocks, then the refit of the 4-λ path in 2 blocks
CV_BLOCKS = [f"f{g}_p{a}-{a + 1}" for g in range(3) for a in (0, 2)]
REFIT_BLOCKS = ["refit_p0-1", "refit_p2-3"]


def _cache_env(cache_dir) -> dict:
    return {"L2REG_COMPILE_CACHE": str(cache_dir)}  # l2reg's compilation cache, in this session's folder


@pytest.fixture(scope="session")
def jax_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jax-cache")


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory, jax_cache_dir):
    """One local Ray of 2 CPUs for the session (its GCS address); its workers inherit LOCAL_ONLY and the cache."""
    if not HAVE_RAY:
        pytest.skip("Ray is not installed")
    added = dict(LOCAL_ONLY, **_cache_env(jax_cache_dir))
    saved = {k: os.environ.get(k) for k in added}
    os.environ.update(added)  # read by Ray as it imports and starts; inherited by its servers and workers
    try:
        import ray
        from ray import cloudpickle

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 _temp_dir=str(tmp_path_factory.mktemp("ray")))
    finally:
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers run this module's hooks
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module", autouse=True)
def driver_cache(jax_cache_dir):
    """This process compiles into the workers' cache too: the refit and the evaluations have the same shapes."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    values = {"jax_compilation_cache_dir": str(jax_cache_dir), "jax_persistent_cache_min_compile_time_secs": 0.0,
              "jax_persistent_cache_min_entry_size_bytes": -1}
    saved = {name: getattr(jax.config, name) for name in values}
    for name, value in values.items():
        jax.config.update(name, value)
    cc.reset_cache()
    yield
    for name, value in saved.items():
        jax.config.update(name, value)
    cc.reset_cache()


@pytest.fixture(scope="module")
def local_reference():
    return l2reg.sweep(**SMALL)


@pytest.fixture(scope="module")
def ray_reference_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ray-reference")


@pytest.fixture(scope="module")
def ray_reference(ray_address, ray_reference_dir):
    return l2reg.sweep(**SMALL, backend="ray", block_size=BLOCK_SIZE, checkpoint_dir=ray_reference_dir)


def _same_result(got, want, *, tol=TOL):
    """The same chosen pair, and every CV and refit number within ``tol``."""
    assert got.chosen_lmbda == want.chosen_lmbda and got.chosen_eta == want.chosen_eta
    for name in ("cv_accuracy_mean", "cv_accuracy_se", "cv_cost_mean", "cv_cost_se", "test_accuracy",
                 "training_cost", "weight_sq_norm"):
        np.testing.assert_allclose([r[name] for r in got.rows], [r[name] for r in want.rows], **tol, err_msg=name)
    for name, value in want.cv.final.items():
        np.testing.assert_allclose(got.cv.final[name], value, **tol, err_msg=name)


def _log(run_dir) -> list:
    return json.loads((Path(run_dir) / "blocks" / "log.json").read_text())["runs"]


# ---------------------------------------------------------------- the same result as in process


def test_ray_sweep_equals_the_in_process_sweep(local_reference, ray_reference, tmp_path):
    _same_result(ray_reference, local_reference)
    assert ray_reference.cv.history.keys() == local_reference.cv.history.keys()
    for name, h in local_reference.cv.history.items():
        np.testing.assert_allclose(ray_reference.cv.history[name], h, **TOL, err_msg=name)
    save(ray_reference, tmp_path / "ray")
    save(local_reference, tmp_path / "local")
    got, want = (json.loads((tmp_path / d / "sweep.json").read_text()) for d in ("ray", "local"))
    assert got.keys() == want.keys() and got["chosen_lmbda"] == want["chosen_lmbda"]
    assert [r.keys() for r in got["rows"]] == [r.keys() for r in want["rows"]]
    html = (tmp_path / "ray" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "1se" in html


def test_every_block_is_saved_logged_and_resumable(ray_reference, ray_reference_dir):
    from l2reg.base import checkpoint
    from l2reg.fronts.distributed import BlockStore

    run_dir = ray_reference_dir
    meta = checkpoint.read_meta(run_dir / "checkpoint-cv.npz")  # what `l2reg sweep --resume` reads
    assert meta["backend"] == "ray" and meta["config"]["block_size"] == BLOCK_SIZE and meta["blocks"] == CV_BLOCKS
    runs = _log(run_dir)
    assert [(r["stage"], r["loaded"], sorted(x["name"] for x in r["ran"])) for r in runs] == [
        ("cv", [], sorted(CV_BLOCKS)), ("refit", [], REFIT_BLOCKS)]
    doc = BlockStore(run_dir).load("f1_p2-3", {"folds": [1], "pairs": [2, 3]})  # fold 1, pairs 2 and 3
    for name, value in doc["result"]["final"].items():
        np.testing.assert_array_equal(value, ray_reference.cv.final[name][2:4, 1:2], err_msg=name)
    assert BlockStore(run_dir).load("f1_p2-3", {"folds": [1], "pairs": [0, 1]}) is None  # another block: rerun


def test_sklearn_cv_on_ray_scores_as_in_process(ray_address):
    from sklearn.datasets import load_digits

    from l2reg.sklearn import L2MLPClassifierCV

    X, y = load_digits(return_X_y=True)
    X, y = X[:150] / 16.0, y[:150]
    params = {"lmbda": [0.0, 1.0, 10.0], "cv": 3, "epochs": 3, "random_state": 0}
    want = L2MLPClassifierCV(**params).fit(X, y)
    got = L2MLPClassifierCV(**params, backend="ray", block_size=2).fit(X, y)
    assert got.lmbda_ == want.lmbda_
    for key in ("mean_test_score", "std_test_score", "se_test_score", "mean_train_score"):
        np.testing.assert_allclose(got.cv_results_[key], want.cv_results_[key], **TOL, err_msg=key)
    np.testing.assert_array_equal(got.predict(X), want.predict(X))  # the same refit, in process


JAX_MODELS_PY = """import jax
import equinox as eqx


def mlp(key):
    return eqx.nn.MLP(64, 10, 8, 1, activation=jax.nn.tanh, key=key)
"""


def test_jax_model_sweep_on_ray_equals_the_in_process_sweep(ray_address, tmp_path):
    """l2reg.jax.sweep with backend="ray": the Equinox factory goes to the workers by name ("file.py:function")
    and each fold trains as its own block; the same choice and rows as in process."""
    pytest.importorskip("equinox")
    from sklearn.datasets import load_digits

    from l2reg.jax import sweep as jax_sweep

    (tmp_path / "jax_models.py").write_text(JAX_MODELS_PY)
    d = load_digits()
    data = ((d.data[:120] / 16).astype(np.float32), d.target[:120])
    kw = dict(lmbda=[0.0, 1.0], eta=0.1, folds=2, epochs=2, batch_size=32, strategy="vmap", seed=2)
    want = jax_sweep(f"{tmp_path}/jax_models.py:mlp", data, **kw)
    got = jax_sweep(f"{tmp_path}/jax_models.py:mlp", data, backend="ray", block_size=1, **kw)
    assert got.config["backend"] == "ray" and got.config["library"] == "equinox"
    assert [r["lmbda"] for r in got.rows] == [r["lmbda"] for r in want.rows] == [0.0, 1.0]
    _same_result(got, want)
    cv = got.stages["cv"]
    assert len(cv["blocks"]) == 4 and {b["strategy"]["chosen"] for b in cv["blocks"]} == {"vmap"}  # 2 folds × 2 λ


TORCH_MODELS_PY = ("import torch\n\ndef mlp():\n    return torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.Tanh(), "
                   "torch.nn.Linear(6, 3))\n")


def test_torch_model_sweep_on_ray_equals_the_in_process_sweep(ray_address, tmp_path):
    """l2reg.torch.sweep in blocks on Ray (one fold × 3 pairs per task): the same choice and scores. The factory
    goes by name (a file and a function), which every worker can load."""
    torch = pytest.importorskip("torch")
    import l2reg.torch as lt

    torch.set_num_threads(1)
    (tmp_path / "models.py").write_text(TORCH_MODELS_PY)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    X_test = rng.normal(size=(40, 8)).astype(np.float32)
    data = (X, X[:, :3].argmax(1).astype(np.int64), X_test, X_test[:, :3].argmax(1).astype(np.int64))
    kw = dict(lmbda=[0.0, 5.0, 50.0], eta=[0.05, 0.2], folds=3, epochs=3, batch_size=16, select="1se", seed=4)
    want = lt.sweep(f"{tmp_path}/models.py:mlp", data, **kw)
    got = lt.sweep(f"{tmp_path}/models.py:mlp", data, backend="ray", block_size=3, **kw)
    assert got.chosen_index == want.chosen_index and len(got.stages["cv"]["blocks"]) == 6  # 3 folds × 2 blocks
    for name in ("validation_accuracy", "validation_cost", "weight_sq_norm"):
        np.testing.assert_allclose(got.cv.final[name], want.cv.final[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.refit_history["test_accuracy"], want.refit_history["test_accuracy"], atol=1e-6)


# ---------------------------------------------------------------- faults


def _stall_once(marker):
    """A worker hook: block f1_p0-1 writes its worker's pid to ``marker`` after epoch 1 and waits to be killed;
    its retry (the marker exists) runs straight through."""

    def hook(name, epoch):
        if name == "f1_p0-1" and epoch == 1 and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            time.sleep(120)

    return hook


def test_a_worker_killed_mid_block_changes_nothing(ray_reference, tmp_path):
    from l2reg.fronts.distributed import RayExecutor
    from l2reg.options import SweepOptions
    from l2reg.fronts.sweeping import sweep_with

    marker = tmp_path / "pid"
    killed = []

    deadline = time.time() + 300

    def kill_when_stalled():
        while not (marker.exists() and marker.read_text()):
            if time.time() > deadline:
                return
            time.sleep(0.05)
        killed.append(int(marker.read_text()))
        os.kill(killed[0], signal.SIGKILL)

    watcher = threading.Thread(target=kill_when_stalled, daemon=True)
    watcher.start()
    opts = SweepOptions.from_flat(dict(SMALL, backend="ray", block_size=BLOCK_SIZE)).checked()
    run_dir = tmp_path / "run"
    progress = []
    executor = RayExecutor(run_dir, config=opts.to_config(), block_size=BLOCK_SIZE,
                           worker_hook=_stall_once(str(marker)), on_block=lambda *a: progress.append(a))
    got = sweep_with(opts, checkpoint_dir=run_dir, executor=executor)
    watcher.join(timeout=1)
    assert killed, "the hook never stalled"
    _same_result(got, ray_reference, tol={"rtol": 0, "atol": 0})  # bit for bit
    ran = {r["name"]: r["pid"] for r in _log(run_dir)[0]["ran"]}
    assert sorted(ran) == sorted(CV_BLOCKS) and ran["f1_p0-1"] != killed[0]  # retried in another worker
    cv, refit = progress[:7], progress[7:]  # (done, total, cluster): 6 CV blocks, then 2 refit blocks
    assert [p[:2] for p in cv] == [(i, 8) for i in range(7)] and [p[:2] for p in refit] == [(6, 8), (7, 8), (8, 8)]
    assert {p[2] for p in progress} == {"1 node, 2 CPUs"}


_DRIVER = """
import sys, time
from l2reg.fronts.distributed import RayExecutor
from l2reg.options import SweepOptions
from l2reg.fronts.sweeping import sweep_with

def hook(name, epoch):
    if epoch is None:
        time.sleep(1.0)  # a slow block, so that the kill lands between the first blocks and the last

run_dir, address = sys.argv[1], sys.argv[2]
opts = SweepOptions.from_flat(dict({small}, backend="ray", address=address, block_size={bs})).checked()
ex = RayExecutor(run_dir, config=opts.to_config(), address=address, block_size={bs}, worker_hook=hook)
sweep_with(opts, checkpoint_dir=run_dir, executor=ex)
"""


def _wait_for_blocks(blocks_dir, proc, at_least, timeout=180):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if len(list(blocks_dir.glob("f*.npz"))) >= at_least:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the driver ended early: {(blocks_dir.parent.parent / 'driver.log').read_text()}")
        time.sleep(0.05)
    raise AssertionError("no finished block in time")


def test_a_killed_driver_resumes_without_rerunning_finished_blocks(ray_address, ray_reference, tmp_path, capsys,
                                                                   jax_cache_dir):
    run_dir = tmp_path / "run"
    script = _DRIVER.format(small=repr(SMALL), bs=BLOCK_SIZE)
    with open(tmp_path / "driver.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", script, str(run_dir), ray_address], stdout=log,
                                stderr=subprocess.STDOUT, env=dict(os.environ, **LOCAL_ONLY, **_cache_env(jax_cache_dir)))
    _wait_for_blocks(run_dir / "blocks", proc, at_least=2)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait(timeout=60)
    before = {p.stem: p.stat().st_mtime_ns for p in (run_dir / "blocks").glob("f*.npz")}
    assert 2 <= len(before) < len(CV_BLOCKS) and not (run_dir / "sweep.json").exists()

    assert main(["sweep", "--resume", str(run_dir), "--keep-checkpoints", "-q"]) == 0, capsys.readouterr().err
    after = {p.stem: p.stat().st_mtime_ns for p in (run_dir / "blocks").glob("f*.npz")}
    assert sorted(after) == sorted(CV_BLOCKS)
    assert all(after[name] == t for name, t in before.items())  # finished blocks were not written again
    resumed = [r for r in _log(run_dir) if r["stage"] == "cv"][-1]
    assert resumed["resume"] and sorted(resumed["loaded"]) == sorted(before)
    assert sorted(r["name"] for r in resumed["ran"]) == sorted(set(CV_BLOCKS) - set(before))
    got = json.loads((run_dir / "sweep.json").read_text())
    want = ray_reference.to_json()
    assert got["chosen_lmbda"] == want["chosen_lmbda"]
    assert got["rows"] == want["rows"]  # bit for bit: the same blocks, whichever process ran them


# ---------------------------------------------------------------- a cluster started as a user would


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def started_cluster(jax_cache_dir):
    """``ray start --head`` on 127.0.0.1 with 2 CPUs; its address. Stopped afterwards by killing what it started
    (its process group): ``ray stop`` would stop every Ray on the machine, this session's own included."""
    if not HAVE_RAY:
        pytest.skip("Ray is not installed")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="l2r-ray-")  # short: Ray's socket paths must fit in 107 characters
    env = dict(os.environ, **LOCAL_ONLY, **_cache_env(jax_cache_dir))
    proc = subprocess.Popen(["ray", "start", "--head", "--num-cpus", "2", "--port", str(port), "--node-ip-address",
                             "127.0.0.1", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        yield f"127.0.0.1:{port}"
    finally:
        _kill_group(proc.pid)
        shutil.rmtree(temp, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        time.sleep(wait)


def test_cli_runs_on_a_cluster_started_with_ray_start(started_cluster, local_reference, tmp_path, jax_cache_dir):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", "import sys; from l2reg.cli import main; sys.exit(main())",
                           "sweep", *SMALL_ARGV, "--backend", "ray", "--address", started_cluster, "--out", str(out),
                           "--keep-checkpoints"],
                          capture_output=True, text=True, env=dict(os.environ, **LOCAL_ONLY, **_cache_env(jax_cache_dir)),
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads((out / "sweep.json").read_text())
    want = sweep_document(local_reference)  # what the folder holds: the JSON and its sentence
    assert got["chosen_lmbda"] == want["chosen_lmbda"] and got.keys() == want.keys()
    for name in ("cv_accuracy_mean", "cv_accuracy_se", "cv_cost_mean"):
        np.testing.assert_allclose([r[name] for r in got["rows"]], [r[name] for r in want["rows"]], **TOL)
    assert got["config"]["backend"] == "ray" and (out / "report.html").is_file()
    runs = _log(out)
    assert runs[0]["cluster"] == "1 node, 2 CPUs" and sorted(r["name"] for r in runs[0]["ran"]) == [
        "f0_p0-3", "f1_p0-3", "f2_p0-3"]  # default block: all of a fold's pairs
    assert [r["name"] for r in runs[1]["ran"]] == ["refit"]  # and the whole λ path


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing written


BAD = [
    (["--backend", "ray", "--address", "127.0.0.1:{closed}"], "no Ray cluster answers at 127.0.0.1:{closed}"),
    (["--backend", "ray", "--address", "nowhere"], "address must be 'auto' or HOST:PORT; got 'nowhere'."),
    (["--backend", "ray", "--block-size", "0"], "block_size must be an integer >= 1; got 0."),
    (["--address", "127.0.0.1:6379"], "address applies to backend 'ray'; got backend 'local'."),
    (["--block-size", "2"], "block_size applies to backend 'ray'; got backend 'local'."),
]


@needs_ray  # the options ask for Ray before anything else
@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_cluster_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch, args, message):
    from l2reg.fronts import distributed

    def never(*a, **k):
        raise AssertionError("ray.init was reached: it would wait minutes for a closed port")

    monkeypatch.setattr(distributed, "connect", never)  # the one way to ray.init
    closed = _free_port()  # nothing listens there once the probe socket is closed
    out = tmp_path / "out"
    argv = ["sweep", *SMALL_ARGV, "--out", str(out), *(a.format(closed=closed) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert message.format(closed=closed) in err
    assert not out.exists()


def test_without_ray_installed_the_error_names_the_extra(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["sweep", *SMALL_ARGV, "--backend", "ray", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == 'error: backend \'ray\' needs Ray: pip install -e ".[ray]" (in your clone of l2reg).'
    from l2reg.sklearn import L2MLPClassifierCV

    with pytest.raises(ConfigError, match=r'pip install -e "\.\[ray\]" \(in your clone of l2reg\)'):
        L2MLPClassifierCV(backend="ray").fit(np.eye(4), [0, 1, 0, 1])


@pytest.mark.parametrize("had_token", [False, True])
def test_first_local_ray_start_says_it_created_the_auth_token(had_token, monkeypatch, tmp_path, caplog):
    """Recent Ray creates ~/.ray/auth_token when it starts a local instance; the run that made it says so (once)."""
    import logging
    import types

    from l2reg.fronts import distributed as D

    monkeypatch.setenv("HOME", str(tmp_path))
    token = tmp_path / ".ray" / "auth_token"
    if had_token:
        token.parent.mkdir()
        token.write_text("old")

    def init(**kwargs):  # what Ray 2.60 does on a first local start
        token.parent.mkdir(exist_ok=True)
        token.write_text("new")

    fake = types.SimpleNamespace(is_initialized=lambda: False, init=init, shutdown=lambda: None)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(D, "_connected", {})
    with caplog.at_level(logging.WARNING, logger=D.__name__):
        D.connect(None)
    notes = [r.getMessage() for r in caplog.records if "auth_token" in r.getMessage()]
    if had_token:
        assert notes == []
    else:
        assert notes == [D.AUTH_TOKEN_NOTE.format(token="~/.ray/auth_token")]
        assert "ray start --head" in notes[0] and "RAY_AUTH_MODE=token" in notes[0]


@pytest.mark.parametrize("params,message", [
    ({"address": "auto"}, "address applies to backend 'ray'; got backend 'local'."),
    ({"backend": "ray", "block_size": 0}, "block_size must be an integer >= 1; got 0."),
    ({"backend": "dask"}, "backend must be one of local, ray; got 'dask'."),
])
def test_sklearn_bad_backend_options_are_one_line(params, message):
    from l2reg.sklearn import L2MLPClassifierCV

    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        L2MLPClassifierCV(**params).fit(np.eye(4), [0, 1, 0, 1])


@pytest.mark.parametrize("pairs,folds,size,per_block", [
    (4, 3, None, [4]),  # default: one block per fold, all its pairs
    (4, 3, 2, [2, 2]),
    (13, 2, 4, [4, 4, 4, 1]),  # the last block takes the rest
    (3, 2, 10, [3]),  # larger than the grid: all of it
])
def test_blocks_cover_every_pair_and_fold_once(pairs, folds, size, per_block):
    from l2reg.fronts.cv import plan_blocks

    blocks = plan_blocks(pairs, folds, size)
    assert [len(b.pairs) for b in blocks] == per_block * folds
    cells = [(p, g) for b in blocks for g in b.folds for p in b.pairs]
    assert sorted(cells) == [(p, g) for p in range(pairs) for g in range(folds)]
    assert len({b.name for b in blocks}) == len(blocks)


def test_pack_round_trips_a_block_result_without_pickle(tmp_path):
    from l2reg.base import store
    from l2reg.fronts.distributed import pack, unpack

    tree = {"final": {"validation_accuracy": np.arange(6, dtype=np.float32).reshape(3, 2)},
            "diverged": np.array([[True, False]]), "params": [[{"w": np.ones((2, 3)), "b": np.zeros(3)}]],
            "train_seconds": 1.5, "nothing": None, "name": "f0_p0-1", "nan": float("nan")}
    store.write_npz(tmp_path / "b.npz", pack(tree))
    with np.load(tmp_path / "b.npz", allow_pickle=False) as z:
        got = unpack(z)
    assert got.keys() == tree.keys() and got["nothing"] is None and got["name"] == "f0_p0-1"
    assert got["train_seconds"] == 1.5 and np.isnan(got["nan"])
    np.testing.assert_array_equal(got["final"]["validation_accuracy"], tree["final"]["validation_accuracy"])
    assert got["diverged"].dtype == bool and got["params"][0][0]["w"].shape == (2, 3)


@pytest.mark.parametrize("address,message", [
    ("nowhere", "address must be 'auto' or HOST:PORT; got 'nowhere'."),
    ("ray://head:10001", "address must be 'auto' or HOST:PORT; got 'ray://head:10001'."),
    ("head:0", "address must be 'auto' or HOST:PORT; got 'head:0'."),
    (6379, "address must be 'auto' or HOST:PORT; got 6379."),
])
def test_bad_addresses_are_one_line(address, message):
    from l2reg.fronts.distributed import parse_address

    with pytest.raises((ConfigError, TypeError), match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        parse_address(address)


@pytest.mark.parametrize("address,want", [("127.0.0.1:6379", ("127.0.0.1", 6379)), ("[::1]:10", ("::1", 10)),
                                          ("head.example:6379", ("head.example", 6379)), ("auto", None)])
def test_addresses_parse(address, want):
    from l2reg.fronts.distributed import parse_address

    assert parse_address(address) == want
