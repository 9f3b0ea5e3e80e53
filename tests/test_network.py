"""Forward pass, costs and gradients of the network, against written-out formulas."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from l2reg.core import network
from l2reg.core.network import NetworkSpec

SPECS = [
    NetworkSpec((5, 4, 3), "sigmoid", "cross-entropy"),
    NetworkSpec((5, 4, 3), "tanh", "log-likelihood"),
    NetworkSpec((5, 4, 6, 3), "relu", "quadratic"),
    NetworkSpec((5, 3), "sigmoid", "quadratic", regression=True),
]


def _data(spec, m=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((m, spec.sizes[0]))
    if spec.regression:
        y = rng.normal(size=(m, spec.sizes[-1]))
    else:
        y = rng.integers(0, spec.sizes[-1], m)
    return x, y


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.activation}-{s.cost}-{'reg' if s.regression else 'cls'}")
def test_c0_gradient_matches_finite_differences(spec):
    with enable_x64(True):
        x, y = _data(spec)
        params = network.stack([network.init_params(spec, jax.random.PRNGKey(1), dtype=jnp.float64)])
        t = network.targets(spec, jnp.asarray(y), spec.sizes[-1])[:, None]

        def c0(p):
            return jnp.mean(network.cost_per_example(spec, network.logits(spec, p, jnp.asarray(x)), t))

        grads = jax.grad(c0)(params)
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        gflat, _ = jax.flatten_util.ravel_pytree(grads)
        eps = 1e-6
        fd = np.array([
            (c0(unravel(flat.at[i].add(eps))) - c0(unravel(flat.at[i].add(-eps)))) / (2 * eps)
            for i in range(flat.size)
        ])
        np.testing.assert_allclose(gflat, fd, rtol=1e-6, atol=1e-8)


def test_costs_match_their_formulas():
    z = jnp.array([[[0.3, -1.2, 2.0]]])  # (m=1, K=1, 3)
    y = jnp.array([2])
    t = network.targets(NetworkSpec((1, 3)), y, 3)[:, None]
    a = 1 / (1 + np.exp(-np.asarray(z[0, 0])))
    ce = -np.sum(np.asarray(t[0, 0]) * np.log(a) + (1 - np.asarray(t[0, 0])) * np.log(1 - a))
    np.testing.assert_allclose(network.cost_per_example(NetworkSpec((1, 3), cost="cross-entropy"), z, t), [[ce]], rtol=1e-6)
    sm = np.exp(z[0, 0]) / np.sum(np.exp(z[0, 0]))
    np.testing.assert_allclose(
        network.cost_per_example(NetworkSpec((1, 3), cost="log-likelihood"), z, t), [[-np.log(sm[2])]], rtol=1e-6
    )
    np.testing.assert_allclose(
        network.cost_per_example(NetworkSpec((1, 3), cost="quadratic"), z, t),
        [[0.5 * np.sum((a - np.asarray(t[0, 0])) ** 2)]], rtol=1e-6,
    )


def test_cross_entropy_is_finite_for_saturated_units():
    z = jnp.array([[[80.0, -80.0]]])
    t = jnp.array([[[0.0, 1.0]]])
    c = network.cost_per_example(NetworkSpec((1, 2)), z, t)
    assert np.isfinite(c).all() and float(c[0, 0]) == pytest.approx(160.0)


@pytest.mark.parametrize("init,std", [("default", 1 / np.sqrt(400)), ("large", 1.0)])
def test_initializers_follow_network2(init, std):
    spec = NetworkSpec((400, 300, 10))
    p = network.init_params(spec, jax.random.PRNGKey(0), init)
    assert np.std(np.asarray(p[0]["w"])) == pytest.approx(std, rel=0.02)
    assert np.std(np.asarray(p[0]["b"])) == pytest.approx(1.0, rel=0.15)


def test_stacked_models_match_each_model_alone():
    spec = NetworkSpec((5, 4, 3), "tanh")
    models = [network.init_params(spec, jax.random.PRNGKey(k)) for k in range(3)]
    params = network.stack(models)
    x, _ = _data(spec)
    z = network.logits(spec, params, jnp.asarray(x, jnp.float32))
    for k, m in enumerate(models):
        h = np.tanh(x @ np.asarray(m[0]["w"]) + np.asarray(m[0]["b"]))
        want = h @ np.asarray(m[1]["w"]) + np.asarray(m[1]["b"])
        np.testing.assert_allclose(z[:, k], want, rtol=1e-5, atol=1e-5)
        for layer in range(2):
            np.testing.assert_array_equal(network.unstack(params, k)[layer]["w"], m[layer]["w"])


def test_grouped_inputs_match_shared_inputs():
    """(G, m, n_in) batches give each group's models the same result as a shared batch."""
    spec = NetworkSpec((5, 4, 3))
    params = network.stack([network.init_params(spec, jax.random.PRNGKey(k)) for k in range(2)], repeats=2)
    x0, _ = _data(spec, seed=0)
    x1, _ = _data(spec, seed=1)
    z = network.logits(spec, params, jnp.asarray(np.stack([x0, x1]), jnp.float32))  # G=2, L=2
    np.testing.assert_allclose(z[:, :2], network.logits(spec, params, jnp.asarray(x0, jnp.float32))[:, :2], rtol=1e-6)
    np.testing.assert_allclose(z[:, 2:], network.logits(spec, params, jnp.asarray(x1, jnp.float32))[:, 2:], rtol=1e-6)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.activation}-{s.cost}-{len(s.sizes)}")
@pytest.mark.parametrize("chunk", [1, 16, 50, 64])  # one row at a time, whole chunks and a tail, one chunk, > n
@pytest.mark.parametrize("weighted", [False, True])
def test_evaluate_equals_the_mean_cost_and_accuracy_of_the_training_layout(spec, chunk, weighted):
    K, n = 3, 50
    params = network.stack([network.init_params(spec, jax.random.PRNGKey(k)) for k in range(K)])
    x, y = _data(spec, m=n, seed=3)
    member = np.random.default_rng(1).integers(0, 2, (n, K)).astype(np.float32) if weighted else None
    X, Y = jnp.asarray(x, jnp.float32), jnp.asarray(y)
    cost, acc = network.evaluate(spec, params, X, Y, None if member is None else jnp.asarray(member), chunk=chunk)

    z = network.logits(spec, params, X)  # (n, K, n_out): the layout training uses
    c0 = np.asarray(network.cost_per_example(spec, z, network.targets(spec, Y, spec.sizes[-1])[:, None]))
    ok = np.asarray(network.correct(spec, z, Y[:, None] if Y.ndim == 1 else Y))
    w = np.ones((n, K), np.float32) if member is None else member
    np.testing.assert_allclose(cost, (c0 * w).sum(0) / w.sum(0), rtol=1e-5)
    np.testing.assert_allclose(acc, (ok * w).sum(0) / w.sum(0), rtol=1e-6)


def test_evaluate_counts_members_only():
    spec = NetworkSpec((5, 4, 3))
    params = network.stack([network.init_params(spec, jax.random.PRNGKey(0))], repeats=2)
    x, y = _data(spec, m=50)
    member = np.zeros((50, 2), np.float32)
    member[:20, 0] = 1
    member[20:, 1] = 1
    cost, acc = network.evaluate(spec, params, jnp.asarray(x, jnp.float32), jnp.asarray(y), jnp.asarray(member), chunk=16)
    c_all, a_all = network.evaluate(spec, params, jnp.asarray(x[:20], jnp.float32), jnp.asarray(y[:20]))
    np.testing.assert_allclose(cost[0], c_all[0], rtol=1e-5)
    np.testing.assert_allclose(acc[0], a_all[0])
