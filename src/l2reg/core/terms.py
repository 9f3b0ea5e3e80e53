"""The decay and data terms of each weight: what a step splits into, and the sums explain records.

Every update u of a weight splits as u = d + g: d the decay term (−(ηλ/n)·w
for SGD on the L2 cost, n the training-set size; −η·wd·w for AdamW,
decoupled), g the data term (−(η/m)·Σ_x ∂C0_x/∂w for SGD). :class:`Recorder`
is the engine's record hook that keeps per-layer sums of them
(:func:`layer_stats`) at sampled steps; :func:`final_terms` computes them
once, over all n examples, for a trained stack (the sweep's refit).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..options import TrainOptions
from . import penalties
from .engine import ONCE, batch_loss
from .network import NetworkSpec

# Per-layer sums recorded at each sampled step, each (n_layers, K).
STAT_NAMES = ("away", "grow", "grow_sq", "sq", "abs_d", "abs_g", "zero_g")


def layer_stats(w, d, g, u):
    """Sums over one layer's weights for every model, each ``(K,)``.

    ``w``, ``d``, ``g``, ``u``: ``(n_in, K, n_out)``.

    * ``away``: weights whose data term points away from zero, g·w > 0
      (sign(g) = sign(w); a zero weight or zero term counts as not away);
    * ``grow``: weights whose net update makes |w| larger, |w + u| > |w|;
    * ``grow_sq``: Σw² of those weights; ``sq``: Σw² of all;
    * ``abs_d``, ``abs_g``: Σ|d| and Σ|g|;
    * ``zero_g``: weights with no data term at all, g = 0 (e.g. from inputs
      that are 0 in the whole batch): only the decay moves them.
    """
    axes = (0, 2)
    grow = jnp.abs(w + u) > jnp.abs(w)
    w2 = w * w
    return {
        "away": jnp.sum((g * w > 0).astype(w.dtype), axes),
        "grow": jnp.sum(grow.astype(w.dtype), axes),
        "grow_sq": jnp.sum(jnp.where(grow, w2, 0), axes),
        "sq": jnp.sum(w2, axes),
        "abs_d": jnp.sum(jnp.abs(d), axes),
        "abs_g": jnp.sum(jnp.abs(g), axes),
        "zero_g": jnp.sum((g == 0).astype(w.dtype), axes),
    }


@dataclass(frozen=True)
class Recorder:
    """The engine's record hook (:func:`l2reg.core.engine.epoch`): what explain keeps of each step.

    ``track``: per layer, ``(i, o)`` index tuples of the weights whose values
    are recorded. Every step: Σd and Σg per weight (:meth:`step`); every
    ``every``-th step: :func:`layer_stats` and the tracked weights before the
    step (:meth:`record`); the epoch's last recorded step: every weight's
    ``(w, d, g)`` (:meth:`snapshot`).
    """

    every: int
    track: tuple

    def init(self, params):
        return [{"decay": jnp.zeros_like(p["w"]), "data": jnp.zeros_like(p["w"])} for p in params]

    def step(self, acc, params, u, d, g):
        return [{"decay": a["decay"] + dl["w"], "data": a["data"] + gl["w"]} for a, dl, gl in zip(acc, d, g)]

    def record(self, params, u, d, g):
        per_layer = [layer_stats(p["w"], dl["w"], gl["w"], ul["w"]) for p, dl, gl, ul in zip(params, d, g, u)]
        stats = {k: jnp.stack([s[k] for s in per_layer]) for k in STAT_NAMES}  # (n_layers, K)
        tracked = jnp.concatenate([p["w"][jnp.asarray(i, jnp.int32), :, jnp.asarray(o, jnp.int32)]
                                   for p, (i, o) in zip(params, self.track)])  # (T, K)
        return stats, tracked

    def snapshot(self, params, u, d, g):
        return [(p["w"], dl["w"], gl["w"]) for p, dl, gl in zip(params, d, g)]


def final_terms(spec: NetworkSpec, params, X, Y, *, members, n: int, opts: TrainOptions) -> dict:
    """The decay and data terms of one SGD-form step at ``params`` (a stack), over all n examples.

    d = −η·(gradient of the penalty) (−(ηλ/n)·w under L2; −η·wd·w, decoupled,
    under AdamW), g = −η·∂C0/∂w with ∂C0/∂w the full-batch mean. Returns
    ``(K,)`` arrays over every weight: ``mean_abs_decay``, ``mean_abs_data``
    and ``frac_away`` (g·w > 0: the data term pushes away from zero).
    """
    K = len(members)
    dtype = np.dtype(jnp.asarray(params[0]["w"]).dtype)
    wd = members.weight_decay if opts.optimizer == "adamw" else np.zeros(K)
    sums = _term_sums(params, np.asarray(X)[None], np.asarray(Y)[None], np.ones((1, len(X)), dtype),
                      np.asarray(members.eta, dtype)[:, None], np.asarray(members.lmbda),
                      np.asarray(wd, dtype)[:, None], np.full(K, float(n), dtype), spec=spec,
                      adamw=opts.optimizer == "adamw", penalty=opts.penalty, l1_ratio=opts.l1_ratio or 0.5)
    W = float(sum(layer["w"].shape[0] * layer["w"].shape[2] for layer in params))
    return {"mean_abs_decay": np.asarray(sums["abs_d"]) / W, "mean_abs_data": np.asarray(sums["abs_g"]) / W,
            "frac_away": np.asarray(sums["away"]) / W}


# Three small compiled programs, not the ~25 of eager jnp calls (a first run compiles each). They are
# split where XLA would otherwise fuse the sums into the gradients' program and round differently.
@partial(jax.jit, static_argnames=("spec", "adamw", "penalty", "l1_ratio"), compiler_options=ONCE)
def _grads(p, x, y, w, lmbda, wd, n_k, *, spec, adamw, penalty, l1_ratio):
    """The gradients of the penalty (or wd·w) and of the mean C0, per layer's weights ``(n_in, K, n_out)``."""
    K = p[0]["b"].shape[0]
    data = jax.grad(lambda q: batch_loss(q, x, y, w, spec, K))(p)
    if adamw:
        decay = [{"w": wd * layer["w"]} for layer in p]
    else:
        decay = jax.grad(lambda q: jnp.sum(penalties.penalty_cost(penalty, q, lmbda, n_k, l1_ratio=l1_ratio)))(p)
    return [dl["w"] for dl in decay], [gl["w"] for gl in data]


@partial(jax.jit, compiler_options=ONCE)
def _abs_terms(p, decay, data, eta):
    """|d|, |g| and [g·w > 0] of every weight, per layer; each is summed by :func:`_sum_weights`."""
    out = []
    for layer, dl, gl in zip(p, decay, data):
        d, g = -eta * dl, -eta * gl
        out.append((jnp.abs(d), jnp.abs(g), (g * layer["w"] > 0).astype(d.dtype)))
    return out


@partial(jax.jit, compiler_options=ONCE)
def _sum_weights(a):
    """Σ over a layer's weights ``(n_in, K, n_out)``: ``(K,)``."""
    return jnp.sum(a, axis=(0, 2))


def _term_sums(p, x, y, w, eta, lmbda, wd, n_k, *, spec, adamw, penalty, l1_ratio):
    """:func:`final_terms`' sums over every weight, each ``(K,)``: ``abs_d``, ``abs_g`` and ``away``.

    ``x`` ``(1, n, n_in)``, ``y`` ``(1, n, ...)``, ``w`` ``(1, n)`` ones; ``eta``, ``wd`` ``(K, 1)``;
    ``lmbda``, ``n_k`` ``(K,)``.
    """
    decay, data = _grads(p, x, y, w, lmbda, wd, n_k, spec=spec, adamw=adamw, penalty=penalty, l1_ratio=l1_ratio)
    sums = {"abs_d": 0.0, "abs_g": 0.0, "away": 0.0}
    for terms in _abs_terms(p, decay, data, eta):
        for name, a in zip(sums, terms):
            sums[name] += _sum_weights(a)
    return sums
