"""l2reg.jax's vectorized ensemble against the plain optax loop, member by member, for NNX, Linen and Equinox.

Oracle: for each member, the loop a JAX user writes with the library's own
objects and Python-float hyperparameters: ``model = model_fn(jax.random.key(seed_f))``,
``tx = optax.chain(optax.add_decayed_weights(λ/n, mask), optax.sgd(η))`` (or
``sgd(η, momentum=0.9)``, ``optax.adamw(η, weight_decay=wd, mask=mask)``) with
``mask = x.ndim > 1`` (the l2reg policy on these models: kernels decay,
biases and norm scales do not), one ``jax.jit`` step, then for each batch of
the fold's order ``epoch_order(seed_f, n, e)`` one step. Two folds of
different sizes (50 and 61 rows, batches of 16), so the per-fold n in λ/n and
the partial last batches of different sizes are covered.
"""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

nnx = pytest.importorskip("flax.nnx")
linen = pytest.importorskip("flax.linen")
eqx = pytest.importorskip("equinox")

from l2reg.errors import ConfigError, ConfigTypeError, DataError  # noqa: E402
from l2reg.jax import Member, audit, epoch_order, fold_seeds, train_ensemble  # noqa: E402

N, D, C, EPOCHS, M = 91, 6, 3, 2, 16
FOLDS = [(np.arange(0, 50), np.arange(50, 91)), (np.arange(30, 91), np.arange(0, 30))]


def data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)).astype(np.float32)
    return X, rng.integers(0, C, N)


class NnxMLP(nnx.Module):
    def __init__(self, rngs, out=C):
        self.l1 = nnx.Linear(D, 8, rngs=rngs)
        self.l2 = nnx.Linear(8, out, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


class NnxBN(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(D, 8, rngs=rngs)
        self.bn = nnx.BatchNorm(8, momentum=0.9, rngs=rngs)
        self.l2 = nnx.Linear(8, C, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.bn(self.l1(x))))


class LinenMLP(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.Dense(C)(jnp.tanh(linen.Dense(8)(x)))


def nnx_mlp(key):
    return NnxMLP(nnx.Rngs(key))


def linen_mlp(key):
    module = LinenMLP()
    return module, module.init(key, jnp.zeros((1, D)))


def eqx_mlp(key):
    return eqx.nn.MLP(D, C, 8, 1, activation=jnp.tanh, key=key)


LIBS = {"nnx": nnx_mlp, "linen": linen_mlp, "equinox": eqx_mlp}
SETTINGS = {  # (λ or wd, η) per member, in both folds
    "sgd": [(5.0, 0.1), (40.0, 0.05)],
    "momentum": [(0.0, 0.02), (40.0, 0.01)],
    "adamw": [(0.0, 0.01), (0.5, 0.01)],
}


def plain_tx(optimizer, value, eta, n, mask, mu=0.9):
    if optimizer == "adamw":
        return optax.adamw(eta, weight_decay=value, mask=mask)
    base = optax.sgd(eta) if optimizer == "sgd" else optax.sgd(eta, momentum=mu, nesterov=optimizer == "nesterov")
    return optax.chain(optax.add_decayed_weights(value / n, mask), base)


def ndim_mask(params):
    return jax.tree.map(lambda x: x.ndim > 1, params)


def ce(out, yb):
    return optax.softmax_cross_entropy_with_integer_labels(out, yb).mean()


def plain_functional(lib, model_fn, key):
    """``(params, forward(params, xb), to_flat(params))`` in the library's own terms."""
    built = model_fn(key)
    if lib == "linen":
        module, variables = built
        return variables["params"], lambda p, xb: module.apply({"params": p}, xb)
    params, static = eqx.partition(built, eqx.is_inexact_array)
    return params, lambda p, xb: jax.vmap(eqx.combine(p, static))(xb)


def plain_loop(lib, model_fn, X, y, fold, optimizer, value, eta, seed, mu=0.9):
    """Final parameters of one member, trained by the ordinary loop (module docstring)."""
    tr = FOLDS[fold][0]
    n = len(tr)
    key = jax.random.key(seed)
    if lib == "nnx":
        model = model_fn(key)
        opt = nnx.Optimizer(model, plain_tx(optimizer, value, eta, n, ndim_mask, mu), wrt=nnx.Param)

        @nnx.jit
        def step(model, opt, xb, yb):
            grads = nnx.grad(lambda m: ce(m(xb), yb))(model)
            opt.update(model, grads)
    else:
        params, forward = plain_functional(lib, model_fn, key)
        tx = plain_tx(optimizer, value, eta, n, ndim_mask, mu)
        state = tx.init(params)

        @jax.jit
        def jstep(params, state, xb, yb):
            g = jax.grad(lambda p: ce(forward(p, xb), yb))(params)
            u, state = tx.update(g, state, params)
            return optax.apply_updates(params, u), state

    for e in range(EPOCHS):
        order = tr[epoch_order(seed, n, e)]
        for s in range(0, n, M):
            xb, yb = jnp.asarray(X[order[s:s + M]]), jnp.asarray(y[order[s:s + M]])
            if lib == "nnx":
                step(model, opt, xb, yb)
            else:
                params, state = jstep(params, state, xb, yb)
    return model if lib == "nnx" else params


def leaves(obj):
    """The float leaves of a library object, in a canonical order."""
    if isinstance(obj, nnx.Module):
        obj = nnx.state(obj, nnx.Param)
    elif isinstance(obj, tuple):  # Linen (module, variables)
        obj = obj[1]["params"]
    elif isinstance(obj, eqx.Module):
        obj = eqx.filter(obj, eqx.is_inexact_array)
    return [np.asarray(x) for x in jax.tree.leaves(obj)]


def members_for(optimizer):
    adamw = optimizer == "adamw"
    return [Member(lmbda=0.0 if adamw else v, weight_decay=v if adamw else 0.0, eta=eta, fold=f)
            for f in (0, 1) for v, eta in SETTINGS[optimizer]]


@pytest.fixture(scope="module")
def Xy():
    return data()


@pytest.mark.parametrize("optimizer", list(SETTINGS))
@pytest.mark.parametrize("lib", list(LIBS))
def test_every_member_equals_the_plain_optax_loop(lib, optimizer, Xy):
    X, y = Xy
    seed = 3
    members = members_for(optimizer)
    r = train_ensemble(LIBS[lib], X, y, members=members, folds=FOLDS, epochs=EPOCHS, batch_size=M,
                       optimizer=optimizer, seed=seed, strategy="vmap")
    assert r.config["library"] == lib and r.config["strategy"] == "vmap"
    assert set(r.decayed) == {n for n, v in r.state_dicts[0].items() if v.ndim > 1}
    seeds = fold_seeds(seed, len(FOLDS))
    for k, mb in enumerate(members):
        value = mb.weight_decay if optimizer == "adamw" else mb.lmbda
        want = plain_loop(lib, LIBS[lib], X, y, mb.fold, optimizer, value, mb.eta, seeds[mb.fold])
        got = r.model(k)
        assert type(got) is type(want) or lib == "linen"
        for a, b in zip(leaves(got), leaves(want if lib != "linen" else (None, {"params": want})), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    # members really differ by λ: the decayed norm shrinks with it
    sq = r.history["weight_sq_norm"][-1]
    assert sq[1] != sq[0]


class NnxCNN(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 3, (3, 3), padding="VALID", rngs=rngs)
        self.out = nnx.Linear(3 * 4 * 4, C, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.conv(x)).reshape(x.shape[0], -1))


@pytest.mark.parametrize("strategy", ["vmap", "map"])
def test_a_cnn_member_equals_the_plain_loop(strategy):
    """Convolutions: vmapped (grouped) or mapped, each member is still its plain loop."""
    X = np.random.default_rng(1).normal(size=(N, 6, 6, 1)).astype(np.float32)
    y = data()[1]
    fn = lambda key: NnxCNN(nnx.Rngs(key))  # noqa: E731
    members = [Member(lmbda=v, eta=0.1, fold=f) for f in (0, 1) for v in (0.0, 20.0)]
    r = train_ensemble(fn, X, y, members=members, folds=FOLDS, epochs=EPOCHS, batch_size=M, seed=2, strategy=strategy)
    assert r.decayed == ["conv.kernel", "out.kernel"]
    seeds = fold_seeds(2, 2)
    for k, mb in enumerate(members):
        want = plain_loop("nnx", fn, X, y, mb.fold, "sgd", mb.lmbda, mb.eta, seeds[mb.fold])
        for a, b in zip(leaves(r.model(k)), leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_batch_norm_statistics_per_member(Xy):
    """NNX BatchNorm: each member carries its own running statistics, equal to its plain loop's."""
    X, y = Xy
    seed = 1
    members = [Member(lmbda=0.0, eta=0.1, fold=0), Member(lmbda=30.0, eta=0.1, fold=0), Member(lmbda=0.0, eta=0.1, fold=1)]
    fn = lambda key: NnxBN(nnx.Rngs(key))  # noqa: E731
    r = train_ensemble(fn, X, y, members=members, folds=FOLDS, epochs=EPOCHS, batch_size=M, seed=seed, strategy="vmap")
    assert "bn.scale" not in r.decayed and "bn.bias" not in r.decayed and "l1.kernel" in r.decayed
    means = np.stack([sd["bn.mean"] for sd in r.state_dicts])
    assert len({tuple(np.round(m, 6)) for m in means}) == len(members)  # every member its own statistics
    seeds = fold_seeds(seed, 2)
    for k, mb in enumerate(members):
        want = plain_loop("nnx", fn, X, y, mb.fold, "sgd", mb.lmbda, mb.eta, seeds[mb.fold])
        got = r.model(k)
        np.testing.assert_allclose(np.asarray(got.bn.mean[...]), np.asarray(want.bn.mean[...]), rtol=2e-5,
                                   atol=2e-6)
        np.testing.assert_allclose(np.asarray(got.bn.var[...]), np.asarray(want.bn.var[...]), rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(np.asarray(got.l1.kernel[...]), np.asarray(want.l1.kernel[...]), rtol=2e-5,
                                   atol=2e-6)


def test_strategies_agree_and_auto_records_its_probe(Xy):
    X, y = Xy
    members = [Member(lmbda=v, eta=0.02, fold=f) for f in (0, 1) for v in (0.0, 5.0, 40.0, 100.0)]
    kw = dict(members=members, folds=FOLDS, epochs=1, batch_size=M, optimizer="momentum", chunk_size=2)
    auto = train_ensemble(nnx_mlp, X, y, **kw)
    assert set(auto.config["probe_ms"]) == {"vmap", "map", "chunked"}
    assert auto.config["strategy"] == min(auto.config["probe_ms"], key=auto.config["probe_ms"].get)
    for s in {"vmap", "map", "chunked"} - {auto.config["strategy"]}:
        other = train_ensemble(nnx_mlp, X, y, strategy=s, **kw)
        for a, b in zip(auto.state_dicts, other.state_dicts):
            for name in a:
                np.testing.assert_allclose(a[name], b[name], rtol=2e-5, atol=2e-6)


def test_other_lambdas_and_momentum_compile_nothing_new(Xy):
    """λ/n, η and μ are traced arrays: a second run with other values hits every compiled program, and its
    members still equal their plain loops (``optax.sgd(η, momentum=μ, nesterov=True)`` with the new μ)."""
    from jax import monitoring

    X, y = Xy
    kw = dict(folds=FOLDS, epochs=EPOCHS, batch_size=M, strategy="vmap", optimizer="nesterov", seed=5)
    train_ensemble(eqx_mlp, X, y, members=[Member(lmbda=v, eta=0.1, fold=f) for f in (0, 1) for v in (0.0, 1.0)],
                   momentum=0.9, **kw)
    compiled = []
    monitoring.register_event_duration_secs_listener(
        lambda event, secs, **_: compiled.append(event) if event == "/jax/core/compile/backend_compile_duration"
        else None)
    members = [Member(lmbda=v, eta=e, fold=f) for f in (0, 1) for v, e in ((7.0, 0.05), (300.0, 0.02))]
    r = train_ensemble(eqx_mlp, X, y, members=members, momentum=0.5, **kw)
    assert compiled == [], f"{len(compiled)} programs compiled for new λ, η and μ values"
    assert r.config["momentum"] == 0.5
    seeds = fold_seeds(5, len(FOLDS))
    for k in (0, 3):
        mb = members[k]
        want = plain_loop("equinox", eqx_mlp, X, y, mb.fold, "nesterov", mb.lmbda, mb.eta, seeds[mb.fold], mu=0.5)
        for a, b in zip(leaves(r.model(k)), leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_regression_and_dropout_per_member(Xy):
    X, _ = Xy
    yr = (X[:, :2] @ np.array([[1.0], [-2.0]], np.float32)).astype(np.float32)  # (n, 1) float targets

    class Drop(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(D, 16, rngs=rngs)
            self.do = nnx.Dropout(0.5, rngs=rngs)
            self.l2 = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            return self.l2(self.do(jnp.tanh(self.l1(x))))

    members = [Member(lmbda=0.0, eta=0.05, fold=0)] * 2
    r = train_ensemble(lambda k: Drop(nnx.Rngs(k)), X, yr, members=members, folds=FOLDS[:1], epochs=1, batch_size=M,
                       strategy="vmap")
    assert r.config["task"] == "regression" and "training_accuracy" not in r.history
    # same λ, η, fold and initial weights: only dropout's draws differ between the two members
    assert not np.allclose(r.state_dicts[0]["l1.kernel"], r.state_dicts[1]["l1.kernel"])
    out = r.model(0)(jnp.asarray(X[:4]))
    assert out.shape == (4, 1)


def test_audit_policies():
    class Emb(nnx.Module):
        def __init__(self, rngs):
            self.emb = nnx.Embed(10, 4, rngs=rngs)
            self.conv = nnx.Conv(4, 4, (3,), rngs=rngs)
            self.ln = nnx.LayerNorm(4, rngs=rngs)
            self.out = nnx.Linear(4, 2, rngs=rngs)

    r = audit(lambda k: Emb(nnx.Rngs(k)), "l2reg", compare=["ndim", lambda path, leaf: "out" in path])
    decided = {d.name: d.decay for d in r.rows}
    assert decided == {"conv.bias": False, "conv.kernel": True, "emb.embedding": True, "ln.bias": False,
                       "ln.scale": False, "out.bias": False, "out.kernel": True}
    assert r.totals["decayed"]["tensors"] == 3
    assert [d["name"] for d in r.differences("<lambda>")] == ["conv.kernel", "emb.embedding", "out.bias"]
    assert r.to_json()["compared"]["ndim"]["differences"] == []


def test_one_line_errors(Xy):
    X, y = Xy
    kw = dict(members=[Member()], folds=FOLDS[:1], epochs=1, batch_size=M)
    cases = [
        (DataError, "needs logits of shape", lambda: train_ensemble(lambda k: NnxMLP(nnx.Rngs(k), out=2), X, y, **kw)),
        # integer y with a regression head
        (DataError, "C >= 3", lambda: train_ensemble(lambda k: NnxMLP(nnx.Rngs(k), out=1), X, y, **kw)),
        (DataError, "rejects X's examples of shape (5,)", lambda: train_ensemble(nnx_mlp, X[:, :5], y, **kw)),
        (ConfigTypeError, "must be a callable", lambda: train_ensemble(NnxMLP(nnx.Rngs(0)), X, y, **kw)),
        (ConfigTypeError, "must return an nnx.Module", lambda: train_ensemble(lambda k: 3, X, y, **kw)),
        (DataError, "NaN", lambda: train_ensemble(nnx_mlp, np.where(np.arange(N)[:, None] == 4, np.nan, X), y, **kw)),
        (ConfigError, "strategy", lambda: train_ensemble(nnx_mlp, X, y, strategy="pmap", **kw)),
        (ConfigError, "policy", lambda: train_ensemble(nnx_mlp, X, y, policy="timm", **kw)),
    ]
    for cls, text, call in cases:
        with pytest.raises(cls) as info:
            call()
        assert text in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adamw"])
def test_monitor_splits_the_update_and_changes_nothing(optimizer, tmp_path):
    from l2reg.jax import monitor

    rng = np.random.default_rng(0)
    X, y = jnp.asarray(rng.normal(size=(32, D)), jnp.float32), jnp.asarray(rng.integers(0, C, 32))
    params = {"w": jnp.asarray(rng.normal(size=(D, C)), jnp.float32), "b": jnp.zeros(C)}
    lr, wd = 0.1, 0.01
    inner = plain_tx(optimizer, wd if optimizer == "adamw" else wd * 32, lr, 32, ndim_mask)
    tx = monitor(inner, lr=lr, weight_decay=wd, kind=optimizer, momentum=0.9, steps_per_epoch=4, epochs=1)
    loss = lambda p, xb, yb: ce(xb @ p["w"] + p["b"], yb)  # noqa: E731

    @jax.jit
    def step(p, st, xb, yb):
        u, st = tx.update(jax.grad(loss)(p, xb, yb), st, p)
        return optax.apply_updates(p, u), st

    p, st, q, qs = params, tx.init(params), params, inner.init(params)
    for t in range(4):
        xb, yb = X[t * 8:(t + 1) * 8], y[t * 8:(t + 1) * 8]
        if t == 0:
            w0, grad0 = np.asarray(p["w"]), np.asarray(jax.grad(loss)(p, xb, yb)["w"])
        p, st = step(p, st, xb, yb)
        u, qs = inner.update(jax.grad(loss)(q, xb, yb), qs, q)
        q = optax.apply_updates(q, u)
    jax.effects_barrier()
    np.testing.assert_allclose(np.asarray(p["w"]), np.asarray(q["w"]), rtol=1e-6, atol=1e-7)  # its own steps
    assert tx.names == [(0, "w"), (1, "b")] and len(tx.records) == 4
    stats = dict(zip(("away", "grow", "grow_sq", "sq", "abs_d", "abs_g", "zero_g", "numel"), tx.records[0][0]))
    np.testing.assert_allclose(stats["sq"], np.sum(w0 ** 2), rtol=1e-5)
    np.testing.assert_allclose(stats["abs_d"], lr * wd * np.abs(w0).sum(), rtol=1e-4)  # d = −η·wd·w at step 0
    if optimizer != "adamw":
        np.testing.assert_allclose(stats["abs_g"], lr * np.abs(grad0).sum(), rtol=1e-4)  # g = −η·∂C0/∂w
    assert tx.records[0][1][4] == 0  # the bias does not decay: d = 0
    s = tx.summary()
    assert [g["split"] for g in s["groups"]] == ["zero_params", "none"] and "τ_iter" in " ".join(s["answer"])
    assert "What weight decay did" in tx.write_html(tmp_path).read_text()


def test_sweep_returns_the_torch_sweeps_result():
    """l2reg.jax.sweep: the same SweepResult, sweep.json and choice as every l2reg sweep, on a digits subset."""
    import json

    from sklearn.datasets import load_digits

    from l2reg.jax import sweep

    d = load_digits()
    X, y = (d.data[:300] / 16).astype(np.float32), d.target[:300]
    mlp = lambda key: eqx.nn.MLP(64, 10, 16, 1, activation=jax.nn.relu, key=key)  # noqa: E731
    r = sweep(mlp, (X, y), lmbda=[0.0, 1.0, 30.0], eta=0.1, folds=2, epochs=2, batch_size=32, strategy="vmap")
    assert [row["lmbda"] for row in r.rows] == [0.0, 1.0, 30.0] and 0 <= r.chosen_index < 3
    assert r.config["engine"] == "jax" and r.config["library"] == "equinox" and r.config["models_cv"] == 6
    assert r.config["strategy_chosen"]["chosen"] == "vmap"
    saved = json.loads(json.dumps(r.to_json()))  # what sweep.json holds (save() also writes the report)
    assert saved["config"]["strategy"] == "vmap" and len(saved["rows"]) == 3
