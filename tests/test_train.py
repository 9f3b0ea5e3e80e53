"""The trainer: exact updates, vectorized runs equal single runs, the API."""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oracle
from l2reg.core import engine, network
from stacks import fit_stack

from l2reg.data import Dataset, load_dataset
from l2reg.errors import ConfigError, ConfigTypeError
from l2reg.core.network import NetworkSpec
from l2reg.options import MONITORS
from l2reg.present.save import save  # noqa: E402

T = importlib.import_module("l2reg.fronts.training")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _small(digits, n=200):
    return Dataset("digits-small", digits.X_train[:n], digits.y_train[:n], digits.X_val, digits.y_val,
                   digits.X_test, digits.y_test, 10)


def _fit(X, y, lmbda, *, seeds=(0,), eta=0.5, epochs=2, m=10, penalty="l2", spec=None, params0=None, monitor=()):
    spec = spec or NetworkSpec((X.shape[1], 8, 10))
    lmbda = np.asarray(lmbda, float)
    return fit_stack(
        spec, X, y, groups=[np.arange(len(X))] * len(seeds), group_seeds=list(seeds),
        lmbda=np.tile(lmbda, len(seeds)), eta=np.full(len(lmbda) * len(seeds), eta), epochs=epochs,
        batch_size=m, penalty=penalty, monitor=monitor, params0=params0,
    )


def test_one_step_equals_hand_computed_update():
    """A 1-1-1 sigmoid network, one batch of two examples, gradients by hand."""
    spec = NetworkSpec((1, 1, 1))
    w1, b1, w2, b2 = 0.8, -0.3, -1.5, 0.4
    params0 = network.stack([[{"w": jnp.array([[w1]]), "b": jnp.array([b1])},
                              {"w": jnp.array([[w2]]), "b": jnp.array([b2])}]])
    X = np.array([[0.5], [2.0]], np.float32)
    y = np.array([0, 0], np.int32)  # one output unit, target 1 for both
    eta, lmbda, n, m = 0.7, 0.9, 2, 2
    s = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    gw1 = gb1 = gw2 = gb2 = 0.0
    for x in X[:, 0]:
        a1 = s(w1 * x + b1)
        a2 = s(w2 * a1 + b2)
        d2 = a2 - 1.0  # ∂C/∂z2 for cross-entropy with a sigmoid output
        d1 = d2 * w2 * a1 * (1 - a1)
        gw2, gb2, gw1, gb1 = gw2 + d2 * a1, gb2 + d2, gw1 + d1 * x, gb1 + d1
    want = {
        "w1": (1 - eta * lmbda / n) * w1 - eta / m * gw1, "b1": b1 - eta / m * gb1,
        "w2": (1 - eta * lmbda / n) * w2 - eta / m * gw2, "b2": b2 - eta / m * gb2,
    }
    r = _fit(X, y, [lmbda], eta=eta, epochs=1, m=2, spec=spec, params0=params0)
    p = r.params
    got = {"w1": p[0]["w"][0, 0, 0], "b1": p[0]["b"][0, 0], "w2": p[1]["w"][0, 0, 0], "b2": p[1]["b"][0, 0]}
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-6), k


@pytest.mark.parametrize("n,m,lmbda", [(60, 10, 0.0), (60, 10, 5.0), (57, 10, 1.0), (40, 40, 2.0)])
def test_epochs_match_network2_style_numpy_loop(digits, n, m, lmbda):
    """Several epochs over the engine's own mini-batches (partial last batch too) equal the NumPy oracle."""
    X, y = digits.X_train[:n], digits.y_train[:n]
    spec = NetworkSpec((64, 8, 10))
    eta, epochs, seed = 0.5, 3, 4
    r = _fit(X, y, [lmbda], seeds=(seed,), eta=eta, epochs=epochs, m=m, spec=spec)
    p0 = network.init_params(spec, jax.random.fold_in(jax.random.PRNGKey(seed), 0))
    ws = [np.asarray(l["w"], np.float64) for l in p0]
    bs = [np.asarray(l["b"], np.float64) for l in p0]
    key = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed), 1)])
    for e in range(epochs):
        idx, valid = engine.shuffle(key, e, jnp.arange(n)[None], jnp.ones((1, n), bool), m)
        batches = [np.asarray(i[0])[np.asarray(v[0])] for i, v in zip(idx, valid)]
        assert sorted(np.concatenate(batches)) == list(range(n))
        ws, bs = oracle.sgd_epoch(ws, bs, X, y, batches, eta, lmbda, n, 10)
    for layer in range(2):
        np.testing.assert_allclose(r.params[layer]["w"][:, 0], ws[layer], rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(r.params[layer]["b"][0], bs[layer], rtol=2e-4, atol=2e-5)


def test_vectorized_lambdas_equal_separate_runs(digits):
    X, y = digits.X_train[:300], digits.y_train[:300]
    lmbdas = [0.0, 0.1, 1.0, 5.0]
    monitor = ("training_cost", "training_accuracy")
    stacked = _fit(X, y, lmbdas, epochs=3, monitor=monitor)
    for k, lmbda in enumerate(lmbdas):
        single = _fit(X, y, [lmbda], epochs=3, monitor=monitor)
        for a, b in zip(stacked.params, single.params):
            np.testing.assert_allclose(a["w"][:, k], b["w"][:, 0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(a["b"][k], b["b"][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stacked.history["training_cost"][:, k], single.history["training_cost"][:, 0], rtol=1e-5)


def test_vectorized_seeds_equal_separate_runs(digits):
    X, y = digits.X_train[:200], digits.y_train[:200]
    stacked = _fit(X, y, [0.0, 2.0], seeds=(3, 8), epochs=2)
    for g, seed in enumerate((3, 8)):
        single = _fit(X, y, [0.0, 2.0], seeds=(seed,), epochs=2)
        for a, b in zip(stacked.params, single.params):
            np.testing.assert_allclose(a["w"][:, 2 * g : 2 * g + 2], b["w"], rtol=1e-5, atol=1e-6)


def test_lambda_zero_and_no_penalty_are_identical(digits):
    X, y = digits.X_train[:200], digits.y_train[:200]
    a = _fit(X, y, [0.0], epochs=3)
    b = _fit(X, y, [0.0], epochs=3, penalty="none")
    for la, lb in zip(a.params, b.params):
        np.testing.assert_array_equal(la["w"], lb["w"])
        np.testing.assert_array_equal(la["b"], lb["b"])


def test_larger_lambda_gives_smaller_weights(digits):
    r = T.train(_small(digits), epochs=5, lmbda=[0.0, 1.0, 10.0], monitor=())
    norms = [run["weight_sq_norm"][-1] for run in r.runs]
    assert norms[0] > norms[1] > norms[2]


def test_train_api_runs_and_saves(digits, tmp_path):
    r = T.train(_small(digits), epochs=3, lmbda=[0.0, 0.5], seed=[0, 1])
    assert [(run["lmbda"], run["seed"]) for run in r.runs] == [(0.0, 0), (0.5, 0), (0.0, 1), (0.5, 1)]
    for run in r.runs:
        for key in MONITORS + ("weight_sq_norm",):
            assert len(run[key]) == 3
        assert all(0 <= a <= 1 for a in run["evaluation_accuracy"])
    assert r.train_seconds > 0
    save(r, tmp_path)
    meta = json.loads((tmp_path / "metrics.json").read_text())
    assert set(meta) >= {"config", "runs", "train_seconds"}
    assert meta["config"]["lmbda"] == [0.0, 0.5] and meta["runs"][1]["lmbda"] == 0.5
    with np.load(tmp_path / "params.npz", allow_pickle=False) as z:
        assert z["w0"].shape == (4, 64, 30) and z["b1"].shape == (4, 10)
        np.testing.assert_array_equal(z["w1"][3], r.params[3][1]["w"])
        assert list(z["lmbda"]) == [0.0, 0.5, 0.0, 0.5]


def test_training_cost_includes_the_penalty(digits):
    r = T.train(_small(digits), epochs=2, lmbda=[0.0, 3.0], monitor=("training_cost",))
    # Same initial weights and batches; the penalty makes the λ > 0 cost larger despite smaller weights here.
    w2 = r.runs[1]["weight_sq_norm"][-1]
    c0_plus_pen = r.runs[1]["training_cost"][-1]
    assert c0_plus_pen > 3.0 / (2 * 200) * w2


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"lmbda": -1.0}, ConfigError, "lmbda must be a finite number >= 0; got -1.0."),
        ({"lmbda": float("nan")}, ConfigError, "lmbda must be a finite number >= 0; got nan."),
        ({"lmbda": []}, ConfigError, "lmbda must not be empty."),
        ({"lmbda": "5"}, ConfigTypeError, "lmbda must be a number or a list of numbers"),
        ({"eta": 0.0}, ConfigError, "eta must be a finite number > 0; got 0.0."),
        ({"eta": float("inf")}, ConfigError, "eta must be a finite number > 0"),
        ({"batch_size": 0}, ConfigError, "batch_size must be an integer >= 1; got 0."),
        ({"batch_size": 201}, ConfigError, "batch_size must be an integer between 1 and 200; got 201."),
        ({"batch_size": 2.5}, ConfigTypeError, "batch_size must be an integer"),
        ({"epochs": 0}, ConfigError, "epochs must be an integer >= 1; got 0."),
        ({"sizes": [784, 30, 10]}, ConfigError, "sizes 784,30,10 do not fit the data"),
        ({"sizes": "64,30,3"}, ConfigError, "the last 10 (classes)"),
        ({"sizes": "64,x,10"}, ConfigError, "sizes must be a comma-separated list of integers"),
        ({"init": "huge"}, ConfigError, "init must be one of default, large; got 'huge'."),
        ({"cost": "hinge"}, ConfigError, "cost must be one of"),
        ({"activation": "gelu"}, ConfigError, "activation must be one of"),
        ({"penalty": "l3"}, ConfigError, "penalty must be one of"),
        ({"seed": -1}, ConfigError, "seed must be an integer >= 0"),
    ],
)
def test_bad_options_raise_clear_errors(digits, kwargs, error, message):
    with pytest.raises(error) as info:
        T.train(_small(digits), **{"epochs": 1, **kwargs})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_dataset_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'"):
        T.train("cifar", epochs=1)


def test_checkpoints_are_throttled_but_the_first_last_and_interrupted_epochs_are_saved(monkeypatch, tmp_path):
    """Short epochs would spend longer writing checkpoints than training: by default a checkpoint is
    written after the first epoch, then at most every few seconds, and always after the last one."""
    from l2reg.base import checkpoint as ckpt_module

    saved = []
    real = ckpt_module.save
    monkeypatch.setattr(ckpt_module, "save", lambda path, state, meta: saved.append(meta["epoch"]) or
                        real(path, state, meta))
    monkeypatch.setenv(ckpt_module.CHECKPOINT_ENV, "1000")
    T.train(epochs=6, train_size=100, lmbda=1.0, monitor=(), checkpoint_dir=tmp_path)
    assert saved == [1, 6]
    monkeypatch.setenv(ckpt_module.CHECKPOINT_ENV, "0")
    saved.clear()
    T.train(epochs=3, train_size=100, lmbda=1.0, monitor=(), checkpoint_dir=tmp_path / "b")
    assert saved == [1, 2, 3]
