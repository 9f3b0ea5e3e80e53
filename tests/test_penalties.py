"""The penalty term, its gradient, and the optax transform that applies it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from l2reg import network, penalties
from l2reg.network import NetworkSpec


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
