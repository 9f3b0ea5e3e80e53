"""The penalty term, its gradient, and the optax transform that applies it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from l2reg.core import network, penalties
from l2reg.core.network import NetworkSpec


def _stack(K=3, sizes=(4, 3, 2), seed=0):
    spec = NetworkSpec(sizes)
    models = [network.init_params(spec, jax.random.PRNGKey(seed + k)) for k in range(K)]
    return network.stack(models)


@pytest.mark.parametrize("lmbda,n", [(0.0, 10), (0.1, 1000), (5.0, 50_000), (3.0, 7)])
def test_penalty_gradient_is_lambda_over_n_times_w_and_zero_for_biases(lmbda, n):
    params = _stack()
    grads = jax.grad(lambda p: jnp.sum(penalties.l2_cost(p, lmbda, n)))(params)
    for layer, g in zip(params, grads):
        np.testing.assert_allclose(g["w"], lmbda / n * layer["w"], rtol=1e-6, atol=1e-12)
        np.testing.assert_array_equal(g["b"], 0.0)


def test_penalty_value_is_lambda_over_2n_sum_of_squared_weights():
    params = _stack(K=2)
    lmbda, n = np.array([0.5, 2.0]), 40.0
    want = [
        lmbda[k] / (2 * n) * sum(float(np.sum(np.asarray(l["w"][:, k, :]) ** 2)) for l in params) for k in range(2)
    ]
    np.testing.assert_allclose(penalties.l2_cost(params, lmbda, n), want, rtol=1e-6)


def test_l2_decay_adds_per_model_coefficient_to_weights_only():
    params = _stack(K=3)
    coef = jnp.array([[0.0], [0.01], [0.2]])  # (K, 1): one λ/n per model
    zeros = jax.tree.map(jnp.zeros_like, params)
    tx = penalties.l2_decay(coef)
    updates, _ = tx.update(zeros, tx.init(params), params)
    for layer, u in zip(params, updates):
        for k in range(3):
            np.testing.assert_allclose(u["w"][:, k, :], coef[k, 0] * layer["w"][:, k, :], rtol=1e-6)
        np.testing.assert_array_equal(u["b"], 0.0)


def test_l2_then_sgd_is_the_closed_form_update():
    params = _stack(K=2)
    grads = jax.tree.map(lambda p: jnp.ones_like(p) * 0.3, params)
    eta, coef = jnp.array([[0.5], [0.1]]), jnp.array([[1e-3], [0.05]])
    tx = optax.chain(penalties.l2_decay(coef), optax.sgd(eta))
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    for k in range(2):
        e, c = float(eta[k, 0]), float(coef[k, 0])
        for old, upd in zip(params, new):
            np.testing.assert_allclose(upd["w"][:, k], (1 - e * c) * old["w"][:, k] - e * 0.3, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(upd["b"][k], old["b"][k] - e * 0.3, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- L1, elastic net, per-layer λ, biases


def _sums(params, k, fn, biases=False):
    """Per-layer Σ fn over model k's weights (and biases), in float64."""
    out = []
    for layer in params:
        s = float(np.sum(fn(np.asarray(layer["w"][:, k], np.float64))))
        if biases:
            s += float(np.sum(fn(np.asarray(layer["b"][k], np.float64))))
        out.append(s)
    return np.array(out)


@pytest.mark.parametrize("penalty,rho", [("l2", None), ("l1", None), ("elastic-net", 0.3), ("elastic-net", 1.0),
                                         ("none", None)])
@pytest.mark.parametrize("biases", [False, True])
def test_penalty_cost_is_the_formula(penalty, rho, biases):
    params = _stack(K=2)
    lmbda, n = np.array([0.5, 2.0]), 40.0
    got = penalties.penalty_cost(penalty, params, lmbda, n, l1_ratio=0.5 if rho is None else rho,
                                 penalize_biases=biases)
    for k in range(2):
        l1, l2 = _sums(params, k, np.abs, biases).sum(), _sums(params, k, np.square, biases).sum()
        want = {"l2": lmbda[k] / (2 * n) * l2, "l1": lmbda[k] / n * l1, "none": 0.0}.get(penalty)
        if penalty == "elastic-net":
            want = lmbda[k] / n * (rho * l1 + (1 - rho) / 2 * l2)
        np.testing.assert_allclose(got[k], want, rtol=1e-6)


def test_per_layer_lambda_cost_and_gradient():
    params = _stack(K=2)
    lmbda, n = np.array([[5.0, 0.5], [0.0, 1.0]]), 30.0  # (K, n_layers)
    got = penalties.penalty_cost("l2", params, lmbda, n)
    for k in range(2):
        np.testing.assert_allclose(got[k], np.sum(lmbda[k] / (2 * n) * _sums(params, k, np.square)), rtol=1e-6)
    coef = [jnp.asarray(lmbda[:, l : l + 1] / n, jnp.float32) for l in range(2)]  # one (K, 1) per layer
    zeros = jax.tree.map(jnp.zeros_like, params)
    for tx, fn in ((penalties.l2_decay(coef), lambda w: w), (penalties.l1_subgradient(coef), jnp.sign)):
        updates, _ = tx.update(zeros, tx.init(params), params)
        for l, (layer, u) in enumerate(zip(params, updates)):
            np.testing.assert_allclose(u["w"], coef[l][None] * fn(layer["w"]), rtol=1e-6)
            np.testing.assert_array_equal(u["b"], 0.0)


@pytest.mark.parametrize("make", [
    lambda c, m: penalties.l2_decay(c, m),
    lambda c, m: penalties.l1_subgradient(c, m),
    lambda c, m: penalties.elastic_net_subgradient(c, 0.5, m),
])
def test_biases_decay_only_when_asked(make):
    params = _stack(K=2)
    zeros = jax.tree.map(jnp.zeros_like, params)
    coef = jnp.array([[0.1], [0.2]])
    for biases in (False, True):
        tx = make(coef, lambda p, b=biases: penalties.decay_mask(p, b))
        updates, _ = tx.update(zeros, tx.init(params), params)
        for u in updates:
            assert bool(np.any(np.asarray(u["w"]) != 0))
            assert bool(np.any(np.asarray(u["b"]) != 0)) == biases


def test_zero_fraction_counts_exact_zero_weights_not_biases():
    params = _stack(K=2)
    params = [{"w": l["w"].at[0].set(0.0), "b": jnp.zeros_like(l["b"])} for l in params]  # first input row of each layer
    want = sum(l["w"].shape[2] for l in params) / sum(l["w"].shape[0] * l["w"].shape[2] for l in params)
    np.testing.assert_allclose(penalties.zero_fraction(params), [want, want], rtol=1e-6)
