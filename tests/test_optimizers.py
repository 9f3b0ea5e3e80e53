"""Optimizers beyond plain SGD: L1 steps, momentum, Adam (coupled L2) vs AdamW, schedules, early stopping."""

import importlib
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from l2reg.core import engine, network, penalties
from l2reg.core import update as U
from stacks import fit_stack

from l2reg.data import load_dataset
from l2reg.errors import ConfigError
from l2reg.core.network import NetworkSpec

from jax_cache import compilation_cache  # noqa: F401  (a fixture)

T = importlib.import_module("l2reg.fronts.training")

# Separate runs recompile shapes that the stacked runs and other tests already compiled.
pytestmark = pytest.mark.usefixtures("compilation_cache")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _stack(K=2, sizes=(4, 3, 2), seed=0):
    spec = NetworkSpec(sizes)
    return network.stack([network.init_params(spec, jax.random.PRNGKey(seed + k)) for k in range(K)])


def _grads(params, seed=1):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(tree, [jax.random.normal(k, a.shape) for k, a in zip(keys, leaves)])


def _steps(tx, params, grads_list):
    state = tx.init(params)
    for g in grads_list:
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
    return params


def _model(params, k):
    return [{"w": l["w"][:, k], "b": l["b"][k]} for l in params]


def _close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, **kw)


# ---------------------------------------------------------------- L1


def test_l1_subgradient_sgd_step_is_the_closed_form():
    """w ← w − (ηλ/n)·sgn(w) − η·g;  b ← b − η·g."""
    params = _stack(K=2)
    g = _grads(params)
    eta, coef = jnp.array([[0.5], [0.1]]), jnp.array([[0.02], [0.3]])
    tx = optax.chain(penalties.l1_subgradient(coef), optax.sgd(eta))
    new = _steps(tx, params, [g])
    for old, gl, nl in zip(params, g, new):
        np.testing.assert_allclose(nl["w"], old["w"] - eta[:, :1] * coef * jnp.sign(old["w"]) - eta * gl["w"],
                                   rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(nl["b"], old["b"] - eta * gl["b"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rho", [1.0, 0.5, 0.0])
def test_proximal_step_is_the_soft_threshold(rho):
    """v = w − η·g;  w ← sgn(v)·max(|v| − ηρλ/n, 0)/(1 + η(1−ρ)λ/n); biases take the plain step."""
    params = _stack(K=2)
    g = _grads(params)
    eta, coef = jnp.array([[0.5], [0.2]]), jnp.array([[0.4], [2.0]])
    tx = optax.chain(optax.sgd(eta), penalties.l1_prox(coef, eta, l1_ratio=rho))
    new = _steps(tx, params, [g])
    for old, gl, nl in zip(params, g, new):
        v = np.asarray(old["w"] - eta * gl["w"], np.float64)
        t = np.asarray(eta * coef, np.float64)
        want = np.sign(v) * np.maximum(np.abs(v) - t * rho, 0) / (1 + t * (1 - rho))
        np.testing.assert_allclose(nl["w"], want, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(nl["b"], old["b"] - eta * gl["b"], rtol=1e-6, atol=1e-7)
        if rho > 0:
            assert np.all((np.asarray(nl["w"]) == 0) == (np.abs(v) <= t * rho))


def test_prox_training_gives_exact_zeros_and_subgradient_does_not(digits):
    X, y = digits.X_train[:200], digits.y_train[:200]
    common = dict(groups=[np.arange(200)], group_seeds=[0], lmbda=np.array([0.0, 3.0]), eta=np.full(2, 0.5),
                  epochs=3, batch_size=10, monitor=(), penalty="l1")
    prox = fit_stack(NetworkSpec((64, 8, 10)), X, y, l1_update="prox", **common)
    sub = fit_stack(NetworkSpec((64, 8, 10)), X, y, **common)
    zeros_prox = prox.history["zero_weight_fraction"][-1]
    assert zeros_prox[0] == 0 and zeros_prox[1] > 0.2
    assert np.all(sub.history["zero_weight_fraction"][-1] < 0.01)
    np.testing.assert_allclose(zeros_prox[1], np.mean(np.concatenate(
        [np.ravel(l["w"][:, 1]) == 0 for l in prox.params])), rtol=1e-6)


# ---------------------------------------------------------------- Adam, AdamW


def _hyper(K, eta, wd=None, lmbda_over_n=0.0):
    col = lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32).reshape(-1, 1), (K, 1))  # noqa: E731
    h = {"eta": col(eta), "lmbda_over_n": col(lmbda_over_n)}
    if wd is not None:
        h["weight_decay"] = col(wd)
    return h


@pytest.mark.parametrize("penalize_biases", [False, True])
def test_adamw_lr_scaling_equals_optax_adamw(penalize_biases):
    params = _stack(K=2)
    grads = [_grads(params, s) for s in range(4)]
    eta, wd = [1e-2, 3e-3], [0.1, 0.5]
    opt = U.OptimizerSpec(name="adamw", decay_scaling="lr", penalty="none", penalize_biases=penalize_biases)
    ours = _steps(U.make_optimizer(opt, _hyper(2, eta, wd)), params, grads)
    mask = lambda p: [{"w": True, "b": penalize_biases} for _ in p]  # noqa: E731
    for k in range(2):
        ref = _steps(optax.adamw(eta[k], weight_decay=wd[k], mask=mask), _model(params, k),
                     [_model(g, k) for g in grads])
        _close(_model(ours, k), ref, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("scaling,depends_on_eta", [("lr", True), ("schedule", False)])
def test_decoupled_decay_is_wd_times_lr_or_times_schedule(scaling, depends_on_eta):
    """Zero gradients leave only the decay: w·(1 − wd·η_t) for "lr", w·(1 − wd·s_t) for "schedule"."""
    params = _stack(K=2)
    zero = jax.tree.map(jnp.zeros_like, params)
    eta, wd = jnp.array([[0.5], [0.05]]), 0.2
    opt = U.OptimizerSpec(name="adamw", decay_scaling=scaling, penalty="none", schedule="cosine", decay_steps=4)
    s = U.lr_multiplier(opt)
    state_params = params
    tx = U.make_optimizer(opt, _hyper(2, eta[:, 0], wd))
    state = tx.init(params)
    for t in range(3):
        u, state = tx.update(zero, state, state_params)
        new = optax.apply_updates(state_params, u)
        factor = wd * (eta * s(t) if depends_on_eta else s(t))
        for old, nl in zip(state_params, new):
            np.testing.assert_allclose(nl["w"], (1 - factor) * old["w"], rtol=1e-6)
            np.testing.assert_allclose(nl["b"], old["b"], rtol=1e-6)
        state_params = new


def test_coupled_adam_l2_and_adamw_differ_where_they_must():
    """No data gradient: coupled L2 through Adam moves every weight by η·sgn(w) at step 1, whatever λ;
    AdamW shrinks it by η·wd·w. The penalty's size is normalized away by √v̂ only in the coupled form."""
    params = _stack(K=2)
    zero = jax.tree.map(jnp.zeros_like, params)
    eta, c = 1e-3, jnp.array([[1e-3], [1.0]])  # λ/n and wd, 1000× apart
    adam = U.make_optimizer(U.OptimizerSpec(name="adam"), _hyper(2, eta, lmbda_over_n=c))
    adamw = U.make_optimizer(U.OptimizerSpec(name="adamw", penalty="none"), _hyper(2, eta, wd=c))
    pa, pw = _steps(adam, params, [zero]), _steps(adamw, params, [zero])
    for old, a, w in zip(params, pa, pw):
        np.testing.assert_allclose(a["w"], old["w"] - eta * jnp.sign(old["w"]), rtol=0, atol=3e-6)  # both λ
        np.testing.assert_allclose(w["w"], (1 - eta * c[None]) * old["w"], rtol=1e-6)
        assert not np.allclose(a["w"], w["w"])


def test_adam_with_coupled_l2_is_penalty_then_optax_adam():
    params = _stack(K=1)
    grads = [_grads(params, s) for s in range(3)]
    c = 0.05
    ours = _steps(U.make_optimizer(U.OptimizerSpec(name="adam"), _hyper(1, 1e-2, lmbda_over_n=c)), params, grads)
    ref = _steps(optax.chain(optax.add_decayed_weights(c, penalties.weights_only), optax.adam(1e-2)), params, grads)
    _close(ours, ref, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- momentum, schedules


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam"])
def test_lambda_zero_equals_no_penalty(digits, optimizer):
    X, y = digits.X_train[:150], digits.y_train[:150]
    common = dict(groups=[np.arange(150)], group_seeds=[0], lmbda=np.zeros(1), eta=np.full(1, 0.05), epochs=2,
                  batch_size=10, monitor=(), optimizer=optimizer)
    a = fit_stack(NetworkSpec((64, 8, 10)), X, y, penalty="l2", **common)
    b = fit_stack(NetworkSpec((64, 8, 10)), X, y, penalty="none", **common)
    for la, lb in zip(a.params, b.params):  # equal up to float32 rounding (XLA may fuse g + 0·w differently)
        np.testing.assert_allclose(la["w"], lb["w"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(la["b"], lb["b"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_step_matches_the_closed_form(nesterov):
    """v ← μv + g; w ← w − η·v (or w − η·(g + μv) for Nesterov), g including (λ/n)·w."""
    params = _stack(K=2)
    grads = [_grads(params, s) for s in range(2)]
    eta, mu, c = jnp.array([[0.1], [0.3]]), jnp.array([[0.9], [0.5]]), jnp.array([[0.01], [0.2]])
    hyper = {"eta": eta, "lmbda_over_n": c, "momentum": mu}
    ours = _steps(U.make_optimizer(U.OptimizerSpec(name="nesterov" if nesterov else "momentum"), hyper), params, grads)
    w = [l["w"] for l in params]
    v = [jnp.zeros_like(x) for x in w]
    for g in grads:
        for i, gl in enumerate(g):
            gi = gl["w"] + c * w[i]
            v[i] = mu * v[i] + gi
            w[i] = w[i] - eta * ((gi + mu * v[i]) if nesterov else v[i])
    for i, l in enumerate(ours):
        np.testing.assert_allclose(l["w"], w[i], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("schedule,warmup,decay_steps,want", [
    ("constant", 0, 0, [1, 1, 1, 1, 1, 1]),
    ("constant", 3, 0, [1 / 3, 2 / 3, 1, 1, 1, 1]),
    ("step", 0, 2, [1, 1, 0.1, 0.1, 0.01, 0.01]),
    ("cosine", 0, 4, [1, 0.5 * (1 + np.cos(np.pi / 4)), 0.5, 0.5 * (1 + np.cos(3 * np.pi / 4)), 0, 0]),
    ("cosine", 2, 4, [0.5, 1, 1, 0.5 * (1 + np.cos(np.pi / 4)), 0.5, 0.5 * (1 + np.cos(3 * np.pi / 4))]),
])
def test_schedule_multiplier(schedule, warmup, decay_steps, want):
    s = U.lr_multiplier(U.OptimizerSpec(schedule=schedule, warmup_steps=warmup, decay_steps=decay_steps))
    np.testing.assert_allclose([float(s(t)) for t in range(6)], want, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- vectorized = separate


@pytest.mark.parametrize("kw", [
    dict(optimizer="momentum", momentum=np.array([0.5, 0.9]), eta=np.array([0.05, 0.02])),
    dict(optimizer="adam", eta=np.array([3e-3, 1e-2])),
    dict(optimizer="adamw", weight_decay=np.array([0.1, 1.0]), decay_scaling="schedule", schedule="cosine",
         eta=np.array([3e-3, 1e-2]), lmbda=np.zeros(2)),
    dict(penalty="elastic-net", l1_ratio=0.3, l1_update="prox", schedule="step", step_epochs=1, warmup_epochs=1),
])
def test_vectorized_optimizers_equal_separate_runs(digits, kw):
    X, y = digits.X_train[:120], digits.y_train[:120]
    spec = NetworkSpec((64, 6, 10))
    kw = dict(dict(eta=np.array([0.5, 0.2]), lmbda=np.array([1.0, 3.0])), **kw)
    common = dict(groups=[np.arange(120)], group_seeds=[0], epochs=3, batch_size=10, monitor=("training_cost",))
    stacked = fit_stack(spec, X, y, **common, **kw)
    for k in range(2):
        kw_k = {key: (v[k : k + 1] if isinstance(v, np.ndarray) else v) for key, v in kw.items()}
        single = fit_stack(spec, X, y, **common, **kw_k)
        for a, b in zip(stacked.params, single.params):
            np.testing.assert_allclose(a["w"][:, k], b["w"][:, 0], rtol=2e-5, atol=2e-6)
            np.testing.assert_allclose(a["b"][k], b["b"][0], rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(stacked.history["training_cost"][:, k], single.history["training_cost"][:, 0],
                                   rtol=2e-5)


def test_per_layer_lambda_stack_equals_separate_runs(digits):
    """Model 0 (λ = 5, 0.5 per layer) equals its own run; model 1 (λ = 2 in both layers) equals plain λ = 2."""
    X, y = digits.X_train[:120], digits.y_train[:120]
    spec = NetworkSpec((64, 6, 10))
    common = dict(groups=[np.arange(120)], group_seeds=[0], epochs=2, batch_size=10, monitor=("training_cost",))
    stacked = fit_stack(spec, X, y, lmbda=np.array([[5.0, 0.5], [2.0, 2.0]]), eta=np.full(2, 0.5), **common)
    single = fit_stack(spec, X, y, lmbda=np.array([[5.0, 0.5]]), eta=np.full(1, 0.5), **common)
    plain = fit_stack(spec, X, y, lmbda=np.array([2.0]), eta=np.full(1, 0.5), **common)
    for k, ref in enumerate((single, plain)):
        for a, b in zip(stacked.params, ref.params):
            np.testing.assert_allclose(a["w"][:, k], b["w"][:, 0], rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(stacked.history["training_cost"][:, k], ref.history["training_cost"][:, 0],
                                   rtol=2e-5)


# ---------------------------------------------------------------- early stopping


@pytest.mark.parametrize("values,patience,higher,want_stop,want_best", [
    # Model 0 improves every epoch; model 1 peaks at epoch 1 (0-based); model 2 is NaN throughout.
    ([[0.1, 0.5, np.nan], [0.2, 0.9, np.nan], [0.3, 0.8, np.nan], [0.4, 0.7, np.nan], [0.5, 0.9, np.nan]],
     2, True, [0, 4, 2], [5, 2, 0]),
    # Costs: lower is better; a tie is not an improvement.
    ([[1.0, 1.0], [0.5, 1.0], [0.6, 1.0], [0.4, 1.0]], 3, False, [0, 4], [4, 1]),
])
def test_early_stopping_masks_the_right_models(values, patience, higher, want_stop, want_best):
    values = np.array(values)
    K = values.shape[1]
    es = engine.EarlyStopping(K, patience, higher_is_better=higher, key="evaluation_accuracy")
    active = np.ones(K, bool)
    for epoch, v in enumerate(values):
        before = active.copy()
        active = es.update(epoch, v, active)
        newly = before & ~active
        np.testing.assert_array_equal(np.flatnonzero(newly), np.flatnonzero(es.stopped_epoch == epoch + 1))
    np.testing.assert_array_equal(es.stopped_epoch, want_stop)
    np.testing.assert_array_equal(es.best_epoch + 1, want_best)
    np.testing.assert_array_equal(active, np.array(want_stop) == 0)


def test_early_stopped_models_are_frozen_at_their_stopping_epoch(digits):
    """Each model of the stack ends where a separate run trained for its stopped_epoch epochs ends."""
    X, y = digits.X_train[:200], digits.y_train[:200]
    spec = NetworkSpec((64, 8, 10))
    lmbda = np.array([0.0, 40.0, 400.0])
    common = dict(groups=[np.arange(200)], group_seeds=[0], eta=np.full(3, 0.5), batch_size=10, monitor=(),
                  eval_sets={"evaluation": (digits.X_val, digits.y_val, None)})
    r = fit_stack(spec, X, y, lmbda=lmbda, epochs=12, early_stopping=True, patience=2, **common)
    assert r.stopped_epoch.min() < 12 and len(set(r.stopped_epoch)) > 1
    assert r.history["evaluation_accuracy"].shape[0] == r.stopped_epoch.max()
    for e in sorted(set(r.stopped_epoch.tolist())):
        plain = fit_stack(spec, X, y, lmbda=lmbda, epochs=e, **common)  # no early stopping, e epochs
        for k in np.flatnonzero(r.stopped_epoch == e):
            for a, b in zip(r.params, plain.params):
                np.testing.assert_allclose(a["w"][:, k], b["w"][:, k], rtol=1e-5, atol=1e-6)
            acc = r.history["evaluation_accuracy"][:e, k]
            assert acc[r.best_epoch[k] - 1] == acc.max() and (e - r.best_epoch[k] == 2 or e == 12)


# ---------------------------------------------------------------- the API


@pytest.mark.parametrize("kw,message", [
    (dict(momentum=0.9), "momentum applies to optimizer 'momentum' or 'nesterov'"),
    (dict(optimizer="momentum", momentum=1.0), "momentum must be a number in [0, 1)"),
    (dict(weight_decay=0.1, optimizer="adam"), "weight_decay (decoupled) applies to optimizer 'adamw'"),
    (dict(optimizer="adamw", lmbda=1.0), "optimizer 'adamw' decays the weights by weight_decay"),
    (dict(decay_scaling="schedule"), "decay_scaling applies to optimizer 'adamw'"),
    (dict(l1_ratio=0.5), "l1_ratio applies to penalty 'elastic-net'"),
    (dict(penalty="elastic-net", l1_ratio=1.5), "l1_ratio must be a number between 0 and 1"),
    (dict(l1_update="prox"), "l1_update 'prox' applies to penalty 'l1' or 'elastic-net'"),
    (dict(lmbda_per_layer=[1, 2, 3]), "lmbda_per_layer must give one λ per weight layer (2 for sizes 64,30,10)"),
    (dict(lmbda_per_layer=[1, 2], lmbda=1.0), "give lmbda or lmbda_per_layer, not both"),
    (dict(early_stopping=True, eval="test"), "early_stopping needs eval='validation'"),
    (dict(warmup_epochs=3, epochs=3), "warmup_epochs must be an integer between 0 and 2"),
    (dict(optimizer="lbfgs", penalty="l1"), "optimizer 'lbfgs'"),
    (dict(optimizer="rmsprop"), "optimizer must be one of sgd, momentum, nesterov, adam, adamw, lbfgs"),
])
def test_train_rejects_options_the_optimizer_would_ignore(kw, message):
    with pytest.raises(ConfigError) as e:
        T.train(**dict(dict(train_size=100, epochs=2, monitor=()), **kw))
    assert message in str(e.value)


def test_train_grid_of_eta_momentum_lambda_matches_single_runs():
    kw = dict(train_size=100, epochs=2, optimizer="momentum", monitor=("evaluation_accuracy",))
    r = T.train(eta=[0.05, 0.1], momentum=[0.5, 0.9], lmbda=[0.0, 2.0], **kw)
    assert len(r.runs) == 8
    assert [(x["eta"], x["momentum"], x["lmbda"]) for x in r.runs[:3]] == [(0.05, 0.5, 0.0), (0.05, 0.5, 2.0),
                                                                          (0.05, 0.9, 0.0)]
    one = T.train(eta=0.1, momentum=0.5, lmbda=2.0, **kw)
    match = [x for x in r.runs if (x["eta"], x["momentum"], x["lmbda"]) == (0.1, 0.5, 2.0)][0]
    np.testing.assert_allclose(match["evaluation_accuracy"], one.runs[0]["evaluation_accuracy"], atol=1e-6)


def test_train_records_zero_fraction_and_stopping_epochs():
    r = T.train(train_size=100, epochs=6, penalty="l1", l1_update="prox", lmbda=[0.0, 3.0], early_stopping=True,
                patience=2)
    for run in r.runs:
        assert len(run["zero_weight_fraction"]) == len(run["evaluation_accuracy"])
        assert 1 <= run["best_epoch"] <= run["stopped_epoch"] <= 6
    assert r.runs[0]["zero_weight_fraction"][-1] == 0 and r.runs[1]["zero_weight_fraction"][-1] > 0
    assert r.config["early_stopping"] and r.config["patience"] == 2 and r.config["l1_update"] == "prox"


def test_without_decay_removes_penalty_and_decoupled_decay():
    opt = U.OptimizerSpec(name="adamw", penalty="l1", l1_update="prox")
    assert dataclasses.replace(opt.without_decay(), l1_update="prox") == U.OptimizerSpec(
        name="adam", penalty="none", l1_update="prox")


# ---------------------------------------------------------------- PyTorch oracles


def _torch_step(torch_opt_cls, params, grads, penalize_biases=False, **kw):
    """One step of a torch optimizer on model 0 of a stack; biases in their own group (no decay) unless penalized."""
    torch = pytest.importorskip("torch")
    model = _model(params, 0)
    tensors = [{k: torch.tensor(np.asarray(v, np.float64), requires_grad=True) for k, v in l.items()} for l in model]
    wd = kw.pop("weight_decay")
    groups = [{"params": [l["w"] for l in tensors], "weight_decay": wd},
              {"params": [l["b"] for l in tensors], "weight_decay": wd if penalize_biases else 0.0}]
    opt = torch_opt_cls(groups, **kw)
    for l, g in zip(tensors, _model(grads, 0)):
        for k in l:
            l[k].grad = torch.tensor(np.asarray(g[k], np.float64))
    opt.step()
    return [{k: v.detach().numpy() for k, v in l.items()} for l in tensors]


@pytest.mark.parametrize("lr,wd", [(1e-3, 0.01), (0.05, 0.5)])
def test_one_step_matches_torch_adamw(lr, wd):
    torch = pytest.importorskip("torch")
    params = _stack(K=1)
    g = _grads(params)
    want = _torch_step(torch.optim.AdamW, params, g, lr=lr, weight_decay=wd)
    ours = _steps(U.make_optimizer(U.OptimizerSpec(name="adamw", penalty="none"), _hyper(1, lr, wd)), params, [g])
    _close(_model(ours, 0), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("lr,wd", [(1e-3, 0.01), (0.05, 0.5)])
def test_one_step_matches_torch_adam_with_coupled_weight_decay(lr, wd):
    """torch.optim.Adam(weight_decay=wd) is coupled L2 with λ/n = wd."""
    torch = pytest.importorskip("torch")
    params = _stack(K=1)
    g = _grads(params)
    want = _torch_step(torch.optim.Adam, params, g, lr=lr, weight_decay=wd)
    ours = _steps(U.make_optimizer(U.OptimizerSpec(name="adam"), _hyper(1, lr, lmbda_over_n=wd)), params, [g])
    _close(_model(ours, 0), want, rtol=1e-5, atol=1e-7)


def test_two_steps_match_torch_sgd_momentum_with_weight_decay():
    torch = pytest.importorskip("torch")
    params = _stack(K=1)
    grads = [_grads(params, s) for s in range(2)]
    model = _model(params, 0)
    tensors = [{k: torch.tensor(np.asarray(v, np.float64), requires_grad=True) for k, v in l.items()} for l in model]
    opt = torch.optim.SGD([{"params": [l["w"] for l in tensors], "weight_decay": 0.1},
                           {"params": [l["b"] for l in tensors], "weight_decay": 0.0}], lr=0.1, momentum=0.9)
    for g in grads:
        for l, gl in zip(tensors, _model(g, 0)):
            for k in l:
                l[k].grad = torch.tensor(np.asarray(gl[k], np.float64))
        opt.step()
    hyper = {"eta": jnp.full((1, 1), 0.1), "lmbda_over_n": jnp.full((1, 1), 0.1), "momentum": jnp.full((1, 1), 0.9)}
    ours = _steps(U.make_optimizer(U.OptimizerSpec(name="momentum"), hyper), params, grads)
    _close(_model(ours, 0), [{k: v.detach().numpy() for k, v in l.items()} for l in tensors], rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- estimators and sweep


def test_estimator_takes_the_optimizer_options(digits):
    from l2reg.sklearn import L2MLPClassifier, _seed

    X, y = digits.X_train[:120], digits.y_train[:120]
    kw = dict(optimizer="adamw", weight_decay=0.3, decay_scaling="schedule", schedule="cosine", penalize_biases=True)
    est = L2MLPClassifier(hidden_layer_sizes=(6,), epochs=2, eta=0.01, random_state=0, **kw).fit(X, y)
    r = fit_stack(NetworkSpec((64, 6, 10)), X, y, groups=[np.arange(120)], group_seeds=[_seed(0)],
                    lmbda=np.zeros(1), eta=np.full(1, 0.01), epochs=2, batch_size=10, monitor=(), **kw)
    for w, layer in zip(est.coefs_, r.params):
        np.testing.assert_allclose(w, layer["w"][:, 0], rtol=1e-6, atol=1e-7)
    assert est.n_iter_ == 2


def test_sweep_passes_the_penalty_and_optimizer_on(digits):
    from l2reg.data import Dataset
    from l2reg.fronts.sweeping import sweep

    small = Dataset("digits-small", digits.X_train[:150], digits.y_train[:150], digits.X_val, digits.y_val,
                    digits.X_test, digits.y_test, 10)
    r = sweep(small, sizes=(64, 6, 10), epochs=2, lmbda=[0.0, 3.0], folds=3, penalty="l1", l1_update="prox",
              optimizer="momentum", momentum=0.5, eta=0.1, monitor=())
    assert r.config["optimizer"] == "momentum" and r.config["momentum"] == 0.5 and r.config["l1_update"] == "prox"
    zeros = [np.mean(np.concatenate([np.ravel(l["w"]) == 0 for l in p])) for p in r.refit_params]
    assert zeros[r.refit_lmbdas.index(0.0)] == 0 and zeros[r.refit_lmbdas.index(3.0)] > 0.1
