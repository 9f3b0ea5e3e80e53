"""Penalties: the regularization term of the cost, and the optax transforms that apply it.

The regularized cost (Nielsen, chapter 3) is C = C0 + penalty, with n the
training-set size, C0 the mean cost over it, and the penalty over the weights
only (biases too with ``penalize_biases``):

    l2           (λ/2n)·Σw²                       gradient (λ/n)·w
    l1           (λ/n)·Σ|w|                       subgradient (λ/n)·sgn(w)
    elastic-net  (λ/n)·[ρ·Σ|w| + ((1−ρ)/2)·Σw²]    ρ = l1_ratio: ρ = 1 is l1, ρ = 0 is l2

*Coupled*: the penalty's gradient is added to the data gradient and goes
through the same optimizer (chain these transforms before the learning rate).
Followed by plain SGD (learning rate η, mini-batch of m):

    l2:  w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w
    l1:  w ← w − (ηλ/n)·sgn(w) − (η/m)·Σ_x ∂C0_x/∂w

The L1 subgradient step overshoots zero and leaves weights oscillating around
it; the *proximal* form (:func:`l1_prox`, chained after the optimizer) takes the
data step and then soft-thresholds, so weights reach exactly zero:

    v ← w − η_t·(optimizer step on ∂C0/∂w)
    w ← sgn(v)·max(|v| − η_t·λ/n, 0)                       (l1)
    w ← sgn(v)·max(|v| − η_t·ρλ/n, 0) / (1 + η_t·(1−ρ)λ/n)   (elastic-net)

*Decoupled* weight decay (AdamW) is not a penalty in the cost: the decay is
added to the update itself, outside Adam's moment estimates
(:func:`decoupled_weight_decay`, :func:`scheduled_weight_decay`).

Per-model coefficients are ``(K, 1)`` arrays, broadcasting against every leaf
of a K-model stack (see :mod:`l2reg.core.network`); a per-layer λ is a list with
one such array per layer. This module is the one place that decides which
parameters decay (:func:`decay_mask`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..options import L1_UPDATES, PENALTIES  # noqa: F401  (re-exported: the choices live with the options)

# ---------------------------------------------------------------- what decays


def decay_mask(params, penalize_biases: bool = False):
    """The decay mask: True for every weight matrix, and for biases only when asked."""
    return [{"w": True, "b": bool(penalize_biases)} for _ in params]


def weights_only(params):
    """The default decay mask: True for every weight matrix, False for every bias."""
    return decay_mask(params, False)


def _layer_mask(mask, layer: int):
    """``mask`` restricted to one layer (a per-layer coefficient applies there only)."""

    def sub(params):
        base = mask(params) if callable(mask) else mask
        return [{k: bool(v) and i == layer for k, v in d.items()} for i, d in enumerate(base)]

    return sub


def _scaled(coef, factor):
    """``factor·coef`` for one coefficient or a per-layer list of them."""
    if isinstance(coef, (list, tuple)):
        return [factor * c for c in coef]
    return factor * coef


def _by_layer(fn, coef, *trees):
    """``fn(c_l, *leaves)`` over every leaf of each layer, ``c_l`` that layer's coefficient.

    ``coef`` is one coefficient for all layers or a list with one per layer;
    the trees are stacks (lists of layers), possibly masked by ``optax.masked``.
    """
    n_layers = len(trees[0])
    coefs = coef if isinstance(coef, (list, tuple)) else [coef] * n_layers
    return [jax.tree.map(lambda *leaves, c=c: fn(c, *leaves), *layer) for c, *layer in zip(coefs, *trees)]


# ---------------------------------------------------------------- costs


def _layer_sums(params, fn, penalize_biases: bool):
    """Σ fn(w) over each layer's weights (and biases when penalized): ``(K, n_layers)``."""
    cols = []
    for layer in params:
        s = jnp.sum(fn(layer["w"]), axis=(0, 2))  # w: (n_in, K, n_out)
        if penalize_biases:
            s = s + jnp.sum(fn(layer["b"]), axis=1)  # b: (K, n_out)
        cols.append(s)
    return jnp.stack(cols, axis=1)


def _per_layer(lmbda, n):
    """λ/n as ``(K, 1)`` (one λ per model) or ``(K, n_layers)`` (per layer), from scalars, ``(K,)`` or ``(K, L)``."""
    lmbda = jnp.asarray(lmbda)
    lmbda = lmbda if lmbda.ndim == 2 else jnp.reshape(lmbda, (-1, 1))
    n = jnp.asarray(n)
    return lmbda / (jnp.reshape(n, (-1, 1)) if n.ndim else n)


def penalty_cost(penalty: str, params, lmbda, n, *, l1_ratio=0.5, penalize_biases: bool = False):
    """The penalty term of each model, ``(K,)`` (0 for ``"none"``).

    ``lmbda``: a scalar, ``(K,)``, or ``(K, n_layers)`` for a λ per layer;
    ``n``: a scalar or ``(K,)``; ``l1_ratio`` ρ: a scalar or ``(K,)``
    (elastic-net only). Biases are excluded unless ``penalize_biases``.
    """
    c = _per_layer(lmbda, n)  # (K, 1) or (K, n_layers)
    if penalty == "none":
        return jnp.zeros(params[0]["b"].shape[0], params[0]["w"].dtype)
    if penalty == "l2":
        return jnp.sum(0.5 * c * _layer_sums(params, jnp.square, penalize_biases), axis=1)
    if penalty == "l1":
        return jnp.sum(c * _layer_sums(params, jnp.abs, penalize_biases), axis=1)
    rho = jnp.reshape(jnp.asarray(l1_ratio), (-1, 1))
    l1 = _layer_sums(params, jnp.abs, penalize_biases)
    l2 = _layer_sums(params, jnp.square, penalize_biases)
    return jnp.sum(c * (rho * l1 + 0.5 * (1 - rho) * l2), axis=1)


def l2_cost(params, lmbda, n, *, penalize_biases: bool = False):
    """The penalty term (λ/2n)·Σw² of each model, ``(K,)``.

    ``lmbda`` and ``n`` are scalars or ``(K,)`` arrays; biases are excluded
    unless ``penalize_biases``.
    """
    return penalty_cost("l2", params, lmbda, n, penalize_biases=penalize_biases)


def l1_cost(params, lmbda, n, *, penalize_biases: bool = False):
    """The penalty term (λ/n)·Σ|w| of each model, ``(K,)``."""
    return penalty_cost("l1", params, lmbda, n, penalize_biases=penalize_biases)


def zero_fraction(params):
    """Fraction of each model's weights that are exactly 0, ``(K,)``. Biases excluded."""
    zeros = sum(jnp.sum((layer["w"] == 0).astype(layer["w"].dtype), axis=(0, 2)) for layer in params)
    total = sum(layer["w"].shape[0] * layer["w"].shape[2] for layer in params)
    return zeros / total


# ---------------------------------------------------------------- coupled transforms


def l2_decay(lmbda_over_n, mask=weights_only) -> optax.GradientTransformation:
    """Coupled L2: add (λ/n)·w to the gradient of every weight (not biases).

    ``lmbda_over_n`` is λ/n with n the training-set size; it may be an array
    of shape ``(K, 1)``, one coefficient per model of a stack, which
    broadcasts against every leaf, or a list with one such coefficient per
    layer. Chain it *before* the learning rate (``optax.sgd(η)``) so that the
    decay is coupled: scaled by η and, with momentum or Adam, passed through
    their statistics.
    """
    if isinstance(lmbda_over_n, (list, tuple)):
        return optax.chain(*(optax.add_decayed_weights(c, mask=_layer_mask(mask, l))
                             for l, c in enumerate(lmbda_over_n)))
    return optax.add_decayed_weights(lmbda_over_n, mask=mask)


def l1_subgradient(lmbda_over_n, mask=weights_only) -> optax.GradientTransformation:
    """Coupled L1: add (λ/n)·sgn(w) to the gradient of every weight (not biases).

    The subgradient of (λ/n)·Σ|w|, with sgn(0) = 0. Chain it before the
    learning rate; with ``sgd(η)`` the step is w ← w − (ηλ/n)·sgn(w) − η·∂C0/∂w.
    ``lmbda_over_n`` as in :func:`l2_decay`.
    """

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(optax.NO_PARAMS_MSG)
        return _by_layer(lambda c, g, p: g + c * jnp.sign(p), lmbda_over_n, updates, params), state

    inner = optax.GradientTransformation(lambda params: optax.EmptyState(), update)
    return optax.masked(inner, mask)


def elastic_net_subgradient(lmbda_over_n, l1_ratio, mask=weights_only) -> optax.GradientTransformation:
    """Coupled elastic net: add (λ/n)·[ρ·sgn(w) + (1−ρ)·w] to the gradient (weights only)."""
    return optax.chain(
        l1_subgradient(_scaled(lmbda_over_n, l1_ratio), mask),
        l2_decay(_scaled(lmbda_over_n, 1 - l1_ratio), mask),
    )


def coupled_penalty(penalty: str, lmbda_over_n, *, l1_ratio=0.5, mask=weights_only) -> optax.GradientTransformation:
    """The penalty's (sub)gradient, to chain before the optimizer; identity for ``"none"``."""
    if penalty == "l2":
        return l2_decay(lmbda_over_n, mask)
    if penalty == "l1":
        return l1_subgradient(lmbda_over_n, mask)
    if penalty == "elastic-net":
        return elastic_net_subgradient(lmbda_over_n, l1_ratio, mask)
    return optax.identity()


# ---------------------------------------------------------------- proximal L1


class ProxState(NamedTuple):
    count: jax.Array  # steps taken, for a learning-rate schedule


def l1_prox(lmbda_over_n, learning_rate, *, l1_ratio=1.0, mask=weights_only) -> optax.GradientTransformation:
    """Proximal L1 (or elastic-net) step, chained *after* the optimizer.

    With v = w + u the optimizer's step on the data gradient and t = η_t the
    step's learning rate (``learning_rate``: a ``(K, 1)`` array or a schedule
    ``count -> (K, 1)``), the new weight is the proximal point of the penalty:

        w ← sgn(v)·max(|v| − t·ρλ/n, 0) / (1 + t·(1−ρ)λ/n)

    (ρ = ``l1_ratio``; ρ = 1 is the soft threshold of plain L1), so weights
    whose |v| is below the threshold become exactly 0. Under momentum or Adam
    the threshold is still η_t·λ/n, not scaled by their statistics.
    """

    def init(params):
        return ProxState(count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(optax.NO_PARAMS_MSG)
        t = learning_rate(state.count) if callable(learning_rate) else learning_rate

        def prox(c, u, w):
            v = w + u
            new = jnp.sign(v) * jnp.maximum(jnp.abs(v) - t * l1_ratio * c, 0)
            if not (isinstance(l1_ratio, (int, float)) and l1_ratio == 1):
                new = new / (1 + t * (1 - l1_ratio) * c)
            return new - w

        return _by_layer(prox, lmbda_over_n, updates, params), ProxState(optax.safe_increment(state.count))

    return optax.masked(optax.GradientTransformation(init, update), mask)


# ---------------------------------------------------------------- decoupled decay


def decoupled_weight_decay(weight_decay, mask=weights_only) -> optax.GradientTransformation:
    """Decoupled decay multiplied by the learning rate (PyTorch ``AdamW``, ``optax.adamw``).

    Adds wd·w to Adam's *output* (after its moment estimates), before the
    learning rate: chained as ``scale_by_adam → this → scale_by_learning_rate(η_t)``
    the update is −η_t·(m̂/(√v̂ + ε) + wd·w), exactly ``optax.adamw``.
    """
    return optax.add_decayed_weights(weight_decay, mask=mask)


def scheduled_weight_decay(weight_decay, multiplier, mask=weights_only) -> optax.GradientTransformation:
    """Decoupled decay multiplied by the schedule only (Loshchilov & Hutter's form).

    Chained *after* the learning rate, it adds −wd·s_t·w to the update, with
    s_t = η_t/η_0 the schedule multiplier (``multiplier``: ``count -> s_t``):
    the decay per step does not depend on the base learning rate η_0.
    """
    return optax.add_decayed_weights(lambda count: -weight_decay * multiplier(count), mask=mask)
