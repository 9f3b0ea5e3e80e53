"""Penalties: the L2 term of the cost, and the optax transform that applies it.

The regularized cost (Nielsen, chapter 3) is

    C = C0 + (λ/2n) · Σ_w w²

over the weights only, never the biases, with n the training-set size. Its
gradient with respect to a weight is ∂C0/∂w + (λ/n)·w, so the penalty adds
(λ/n)·w to the gradient: *coupled* L2, because the decay goes through the same
optimizer as the data gradient. Followed by plain SGD this is the update

    w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w

This module is the one place that decides which parameters decay.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

PENALTIES = ("l2", "none")


def weights_only(params):
    """The decay mask: True for every weight matrix, False for every bias."""
    return [{"w": True, "b": False} for _ in params]


def l2_cost(params, lmbda, n):
    """The penalty term (λ/2n)·Σw² of each model, ``(K,)``.

    ``lmbda`` and ``n`` are scalars or ``(K,)`` arrays; biases are excluded.
    """
    sq = sum(jnp.sum(layer["w"] ** 2, axis=(0, 2)) for layer in params)
    return 0.5 * jnp.asarray(lmbda) / jnp.asarray(n) * sq


def l2_decay(lmbda_over_n) -> optax.GradientTransformation:
    """Coupled L2: add (λ/n)·w to the gradient of every weight (not biases).

    ``lmbda_over_n`` is λ/n with n the training-set size; it may be an array
    of shape ``(K, 1)``, one coefficient per model of a stack, which
    broadcasts against every leaf. Chain it *before* the learning rate
    (``optax.sgd(η)``) so that the decay is coupled: scaled by η and, with
    momentum or Adam, passed through their statistics.
    """
    return optax.add_decayed_weights(lmbda_over_n, mask=weights_only)


def penalty_transform(penalty: str, lmbda_over_n) -> optax.GradientTransformation:
    """The optax transform of a named penalty."""
    if penalty == "l2":
        return l2_decay(lmbda_over_n)
    return optax.identity()
