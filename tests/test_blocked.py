"""The blocked first-layer update (l2reg.core.blocked) against the per-step epoch (l2reg.core.engine.epoch).

The oracle is the engine's own epoch: the same parameters after a few epochs,
for every condition the per-step path handles (per-model η and λ, a λ per
layer, partial last batches, frozen models, streams of different lengths,
every cost and activation, 1 to 3 weight layers, B from 1 to more than the
number of batches).

Tolerance. In float64 the two paths agree to ~1e-15 (``test_exact_in_float64``):
the blocked update is the same arithmetic in another order. In float32 each
step rounds differently (the GEMMs sum in another order; the decay is
expm1(k·log1p(−ηλ/n)) instead of k multiplications by 1 − ηλ/n), a few ulp
(6e-8·|w|) per step, and these short runs (≤ 39 steps) do not amplify it: 39
steps × 6e-8 × |w| < 1e-5 for |w| < 4, which every run here checks. The
tests use atol = rtol = 1e-5; the largest difference observed is 4e-7.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l2reg.core import blocked, engine, network
from l2reg.errors import ConfigError, ConfigTypeError
from l2reg.core.network import NetworkSpec
from l2reg.core.update import OptimizerSpec, make_hyper, make_optimizer

TOL = 1e-5
EPOCHS = 3
_shuffle = jax.jit(engine.shuffle, static_argnums=4)


def _problem(*, K, G=1, n=(47,), m=10, sizes=(12, 7, 5), cost="cross-entropy", activation="sigmoid",
             regression=False, penalty="l2", lmbda=None, eta=None, frozen=(), penalize_biases=False,
             dtype=jnp.float32, seed=0):
    """A stack of K = G·L models on made-up data; group g trains on its first n[g] examples."""
    L = K // G
    rng = np.random.default_rng(seed)
    n_max = max(n)
    X = jnp.asarray(rng.random((n_max, sizes[0])), dtype)
    Y = jnp.asarray(rng.standard_normal((n_max, sizes[-1])), dtype) if regression else \
        jnp.asarray(rng.integers(0, sizes[-1], n_max), jnp.int32)
    spec = NetworkSpec(tuple(sizes), activation, cost, regression)
    idx = np.zeros((G, n_max), np.int32)
    valid = np.zeros((G, n_max), bool)
    for g in range(G):
        idx[g, : n[g]] = rng.permutation(n_max)[: n[g]]
        valid[g, : n[g]] = True
    params = network.stack([network.init_params(spec, jax.random.PRNGKey(g), "default", dtype) for g in range(G)],
                           repeats=L)
    eta = np.linspace(0.3, 1.5, K) if eta is None else np.asarray(eta, float)
    lmbda = np.linspace(0.0, 4.0, K) if lmbda is None else np.asarray(lmbda, float)
    hyper = make_hyper(eta, lmbda, np.repeat(np.asarray(n, float), L), dtype)
    opt = OptimizerSpec(penalty=penalty, penalize_biases=penalize_biases)
    active = np.ones(K, bool)
    active[list(frozen)] = False
    keys = jnp.stack([jax.random.PRNGKey(100 + g) for g in range(G)])
    return dict(params=params, hyper=hyper, X=X, Y=Y, idx=jnp.asarray(idx), valid=jnp.asarray(valid), keys=keys,
                active=jnp.asarray(active), spec=spec, opt=opt, G=G, L=L, m=m)


def _run_both(p, block, epochs=EPOCHS):
    """Parameters after ``epochs`` epochs of the per-step engine and of the blocked epoch."""
    stepper = engine.Stepper(p["spec"], p["opt"], engine.Layout(p["G"], p["L"]))
    per_step = jax.jit(partial(engine.epoch, stepper=stepper, m=p["m"]))
    fast = jax.jit(partial(blocked.blocked_epoch, spec=p["spec"], opt=p["opt"], L=p["L"], block=block))
    ref = got = p["params"]
    state = make_optimizer(p["opt"], p["hyper"]).init(ref)
    data = (p["X"], p["Y"])
    for e in range(epochs):
        ref, state, _, _ = per_step(ref, state, p["hyper"], *data, p["idx"], p["valid"], p["keys"], e, p["active"])
        batches = _shuffle(p["keys"], e, p["idx"], p["valid"], p["m"])
        got = fast(got, p["hyper"], *data, batches, p["active"])
    return ref, got


def _assert_close(ref, got, tol):
    for layer, (r, g) in enumerate(zip(ref, got)):
        for name in ("w", "b"):
            assert np.abs(np.asarray(r[name])).max() < 4, "the run left the regime the tolerance is argued for"
            np.testing.assert_allclose(np.asarray(g[name]), np.asarray(r[name]), rtol=tol, atol=tol,
                                       err_msg=f"layer {layer + 1} {name}")


CASES = {
    # id: (problem keywords, B); every case has a per-model η (0.3 to 1.5) and λ (0 to 4) unless it says otherwise
    "K1-B1-partial": (dict(K=1, n=(37,)), 1),
    "K4-B3-partial-lmbda0-frozen": (dict(K=4, n=(47,), lmbda=[0, 0, 2, 8], frozen=(1,)), 3),
    "K16-B10": (dict(K=16, n=(130,)), 10),
    "G3-uneven-streams-B4-frozen": (dict(K=6, G=3, n=(60, 43, 21), frozen=(2, 5)), 4),
    "G2-L8-B10-partial": (dict(K=16, G=2, n=(95, 58)), 10),
    "penalty-none-eta-spread-B-above-batches": (dict(K=4, n=(53,), penalty="none", eta=[0.05, 0.5, 2.0, 3.0]), 20),
    "lmbda-per-layer-log-likelihood": (dict(K=4, lmbda=[[0, 0], [5, 0], [0, 5], [2, 9]], cost="log-likelihood"), 3),
    "quadratic-tanh-penalize-biases": (dict(K=4, cost="quadratic", activation="tanh", penalize_biases=True), 3),
    "1-layer-quadratic-regression": (dict(K=4, cost="quadratic", regression=True, sizes=(12, 3),
                                          eta=[0.02, 0.05, 0.1, 0.2]), 3),
    "3-layers-relu-G2": (dict(K=6, G=2, n=(47, 30), sizes=(12, 9, 7, 5), activation="relu",
                              lmbda=[[1, 0, 3]] * 6), 3),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_blocked_equals_per_step(case):
    kw, block = CASES[case]
    p = _problem(**kw)
    ref, got = _run_both(p, block)
    _assert_close(ref, got, TOL)
    frozen = list(kw.get("frozen", ()))
    for layer0, layer in zip(p["params"], got):  # frozen models: every parameter bit for bit, decay included
        for name, axis in (("w", 1), ("b", 0)):
            before, after = (np.take(np.asarray(a[name]), frozen, axis=axis) for a in (layer0, layer))
            np.testing.assert_array_equal(after, before)


def test_exact_in_float64():
    """The algebra is exact: in float64 the two paths agree to float64 rounding."""
    kw, block = CASES["G3-uneven-streams-B4-frozen"]
    with jax.enable_x64(True):
        ref, got = _run_both(_problem(**kw, dtype=jnp.float64), block)
        assert got[0]["w"].dtype == jnp.float64
        _assert_close(ref, got, 1e-12)


def test_stream_without_rows_takes_no_step():
    """A stream whose examples ran out: its models' W1 stays as it was, bit for bit (no decay either)."""
    p = _problem(K=4, G=2, n=(60, 10), lmbda=[3.0] * 4)  # stream 1: one batch, then nothing
    idx, valid = _shuffle(p["keys"], 0, p["idx"], p["valid"], p["m"])
    fast = jax.jit(partial(blocked.blocked_epoch, spec=p["spec"], opt=p["opt"], L=p["L"], block=2))
    after_one = fast(p["params"], p["hyper"], p["X"], p["Y"], (idx, valid.at[1:].set(False)), p["active"])
    after_all = fast(p["params"], p["hyper"], p["X"], p["Y"], (idx, valid), p["active"])
    w_one, w_all = np.asarray(after_one[0]["w"]), np.asarray(after_all[0]["w"])
    np.testing.assert_array_equal(w_all[:, 2:], w_one[:, 2:])
    assert not np.allclose(w_all[:, :2], w_one[:, :2])
    assert not np.allclose(w_one[:, 2:], np.asarray(p["params"][0]["w"])[:, 2:])


@pytest.mark.parametrize("opt, ok", [
    (OptimizerSpec(), True),
    (OptimizerSpec(penalty="none"), True),
    (OptimizerSpec(penalize_biases=True), True),
    (OptimizerSpec(name="momentum"), False),
    (OptimizerSpec(name="adam"), False),
    (OptimizerSpec(penalty="l1"), False),
    (OptimizerSpec(penalty="elastic-net"), False),
    (OptimizerSpec(schedule="cosine", decay_steps=10), False),
    (OptimizerSpec(warmup_steps=5), False),
])
def test_applies_to_plain_sgd_with_coupled_l2_and_constant_eta(opt, ok):
    assert blocked.applies_to(opt) is ok


@pytest.mark.parametrize("eta, lmbda_over_n, block, ok", [
    (0.5, 1e-4, 40, True),
    (0.5, 0.0, 40, True),
    (1.0, 0.5, 40, True),  # (1/2)^40 ≈ 9e-13
    (1.0, 0.9, 40, False),  # 0.1^40 underflows the running decay
    (1.0, 1.0, 1, False),  # the weights would be zeroed each step
])
def test_applies_to_checks_the_decay_per_step(eta, lmbda_over_n, block, ok):
    hyper = {"eta": np.full((2, 1), eta), "lmbda_over_n": [np.full((2, 1), lmbda_over_n), np.zeros((2, 1))]}
    assert blocked.applies_to(OptimizerSpec(), hyper, block=block) is ok


@pytest.mark.parametrize("kw, error, match", [
    (dict(opt=OptimizerSpec(name="momentum")), ConfigError, "blocked_epoch needs optimizer 'sgd'"),
    (dict(block=0), ConfigError, "block must be an integer >= 1; got 0."),
    (dict(block=2.5), ConfigTypeError, "block must be an integer >= 1; got 2.5."),
])
def test_bad_arguments(kw, error, match):
    p = _problem(K=2)
    batches = _shuffle(p["keys"], 0, p["idx"], p["valid"], p["m"])
    args = dict(spec=p["spec"], opt=p["opt"], L=p["L"], block=2) | kw
    with pytest.raises(error, match=match):
        blocked.blocked_epoch(p["params"], p["hyper"], p["X"], p["Y"], batches, p["active"], **args)


@pytest.mark.parametrize("case", [
    dict(lmbda=[0.0, 1.0, 5.0, 20.0], seeds=[0]),  # one stream
    dict(lmbda=[0.0, 1.0], seeds=[0, 1], early_stopping=True, patience=1, epochs=12),  # two streams, some frozen
])
def test_fit_stack_takes_the_blocked_path_to_the_per_step_result(monkeypatch, case):
    """The engine's default path for ≥ 4 models of plain SGD is the blocked one; over a few epochs (a partial
    last batch, frozen models) it gives the per-step parameters and histories to float32 tolerance."""
    import importlib

    from l2reg.core import engine
    from l2reg.data import load_dataset

    from stacks import fit_stack

    T = importlib.import_module("l2reg.fronts.training")
    d = load_dataset("digits")
    X, y = d.X_train[:197], d.y_train[:197]  # 197 = 19 full batches of 10 and one of 7
    seeds, lm = case.pop("seeds"), case.pop("lmbda")
    kw = dict(groups=[np.arange(len(X))] * len(seeds), group_seeds=seeds, lmbda=np.tile(lm, len(seeds)),
              eta=np.full(len(lm) * len(seeds), 0.5), batch_size=10, monitor=T.MONITORS[:2],
              eval_sets={"evaluation": (d.X_val, d.y_val, None)}, **dict(dict(epochs=4), **case))
    calls = []
    real = blocked.blocked_epoch
    monkeypatch.setattr(blocked, "blocked_epoch", lambda *a, **k: calls.append(1) or real(*a, **k))
    runs = {}
    for path in ("per-step", "auto"):
        monkeypatch.setenv(engine.ENGINE_ENV, path)
        runs[path] = fit_stack(NetworkSpec((64, 12, 10)), X, y, **kw)
        assert bool(calls) == (path == "auto")  # traced into the compiled epoch only on the blocked path
    a, b = runs["per-step"], runs["auto"]
    for la, lb in zip(a.params, b.params):
        for k in ("w", "b"):
            fin = np.isfinite(la[k])
            np.testing.assert_allclose(lb[k][fin], la[k][fin], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a.diverged_epoch, b.diverged_epoch)
    np.testing.assert_array_equal(a.stopped_epoch, b.stopped_epoch)
    if case.get("early_stopping"):
        assert (a.stopped_epoch < 12).any()  # some model was frozen before the end
