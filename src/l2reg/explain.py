"""What the L2 penalty does to every weight, measured on a real run.

The penalty is added to the *cost*, C = C0 + (λ/2n)·Σw², not to the weights.
One step of mini-batch SGD (learning rate η, batch size m, n training
examples, coupled L2) moves each weight by two terms:

    Δw = d + g,    d = −(ηλ/n)·w                  the decay term: always toward zero
                   g = −(η/m)·Σ_x ∂C0_x/∂w        the data term: either way

This module trains the models again with the engine's own pieces
(:func:`l2reg.train.make_optimizer`, :func:`~l2reg.train._batch_loss`,
:func:`~l2reg.train._shuffle`) and, at sampled steps, splits the update the
optax chain computes into those two terms:

* g is the same chain without the penalty (``penalty="none"``) applied to the
  data gradient;
* d is the full chain applied to a zero gradient (its response to the
  penalty alone);
* the step actually taken is the full chain applied to the data gradient; for
  plain SGD it equals d + g.

Other optimizers (``momentum``, ``nesterov``, ``adam`` with coupled L2,
``adamw`` with decoupled weight decay): the split is of the *actual* update
u of the actual trajectory. g is the decay-free chain (the rule of
:meth:`l2reg.train.OptimizerSpec.without_decay`, built as the same chain with
λ/n = 0 and wd = 0 so that it reads the same optimizer state) applied to the
data gradient with the current state (velocity, Adam moments), and d = u − g.
So for momentum d = −η(λ/n)·w (nesterov: −η(1+μ)(λ/n)·w), the decay that
earlier steps put into the velocity counting as data term; for Adam (coupled)
d is the change the penalty makes through the moments; for AdamW
d = −η·wd·w exactly (decoupled: outside the moments, not in the cost). With
AdamW the models differ by ``weight_decay`` (with a wd = 0 companion) and λ = 0.

Every λ trains at once in one stack, always with a λ = 0 companion, from the
same initial weights and through the same mini-batches, so their weights and
Σw² compare directly. One epoch is one jit-compiled ``lax.scan``: an outer scan
over chunks of ``record_every`` steps whose last step is the recorded one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import network, store, train
from . import validation as V
from .data import Dataset, load_dataset
from .errors import ConfigError, DataError
from .network import NetworkSpec

log = logging.getLogger(__name__)

# Per-layer sums recorded at each sampled step, each (n_layers, K).
STAT_NAMES = ("away", "grow", "grow_sq", "sq", "abs_d", "abs_g", "zero_g")
# Records per epoch aimed at when record_every is not given.
RECORDS_PER_EPOCH = 50


# ---------------------------------------------------------------- one recorded step


def step_terms(optimizer, data_only, grads, opt_state, params, *, linear: bool = True, decays=None):
    """Split one optax step into its decay and data terms.

    Returns ``(u, d, g, new_opt_state)``: ``u`` the update the chain applies,
    ``g`` the decay-free chain's update for ``grads`` from the same state
    ``opt_state`` (the data term; −η·∂C0/∂w with ∂C0/∂w the batch mean under
    SGD), ``d`` the decay term. ``linear`` (stateless, linear rules: SGD):
    d is the chain's update for a zero gradient, −(ηλ/n)·w for weights and 0
    for biases under coupled L2, which equals u − g without float
    cancellation; else d = u − g, and where ``decays`` ``(K, 1)`` is False
    (λ = 0 and wd = 0) d = 0 and g = u exactly. Each has the layout of ``params``.
    """
    u, new_state = optimizer.update(grads, opt_state, params)
    g, _ = data_only.update(grads, opt_state, params)
    if linear:
        d, _ = optimizer.update(jax.tree.map(jnp.zeros_like, grads), opt_state, params)
    else:
        d = jax.tree.map(jnp.subtract, u, g)
        if decays is not None:  # a model with no decay: its update is all data term, exactly
            d = jax.tree.map(lambda a: jnp.where(decays, a, 0), d)
            g = jax.tree.map(lambda a, b: jnp.where(decays, a, b), g, u)
    return u, d, g, new_state


def decay_free_hyper(hyper: dict) -> dict:
    """``hyper`` with λ/n = 0 and weight decay 0: the chain of ``OptimizerSpec.without_decay()``, same state layout."""
    out = dict(hyper)
    out["lmbda_over_n"] = jax.tree.map(jnp.zeros_like, hyper["lmbda_over_n"])
    if "weight_decay" in out:
        out["weight_decay"] = jnp.zeros_like(hyper["weight_decay"])
    return out


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


def _explain_epoch(params, opt_state, hyper, X, Y, idx, valid, keys, epoch, track, *, spec, opt, m, L, every):
    """One epoch, recording every ``every``-th step; the models' trajectory is train._epoch's.

    ``track``: per layer, ``(i, o)`` int arrays of the weights whose values are
    recorded. Returns the new ``params`` and ``opt_state``, the stats
    ``{name: (n_rec, n_layers, K)}``, the tracked weights ``(n_rec, T, K)``
    before each recorded step, and the full ``(w, d, g)`` of every layer at
    the epoch's last recorded step.
    """
    optimizer = train.make_optimizer(opt, hyper)
    data_only = train.make_optimizer(opt, decay_free_hyper(hyper))
    b_idx, b_valid = train._shuffle(keys, epoch, idx, valid, m)  # (n_batches, G, m)
    n_batches = b_idx.shape[0]
    n_rec = n_batches // every
    head = n_rec * every

    def grads_of(params, bi, bv):
        return jax.grad(train._batch_loss)(params, X[bi], Y[bi], bv.astype(X.dtype), spec, L)

    def plain(carry, batch):
        params, opt_state = carry
        grads = grads_of(params, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def recorded_chunk(params, opt_state, batch):
        (params, opt_state), _ = jax.lax.scan(plain, (params, opt_state), jax.tree.map(lambda a: a[:-1], batch))
        grads = grads_of(params, *jax.tree.map(lambda a: a[-1], batch))
        u, d, g, new_state = step_terms(optimizer, data_only, grads, opt_state, params, linear=opt.name == "sgd",
                                        decays=(hyper["lmbda_over_n"] > 0) | (hyper.get("weight_decay", 0) > 0))
        per_layer = [layer_stats(p["w"], dl["w"], gl["w"], ul["w"]) for p, dl, gl, ul in zip(params, d, g, u)]
        stats = {k: jnp.stack([s[k] for s in per_layer]) for k in STAT_NAMES}  # (n_layers, K)
        tracked = jnp.concatenate([p["w"][i, :, o] for p, (i, o) in zip(params, track)])  # (T, K)
        snap = [(p["w"], dl["w"], gl["w"]) for p, dl, gl in zip(params, d, g)]
        return optax.apply_updates(params, u), new_state, (stats, tracked), snap

    def chunk(carry, batch):
        params, opt_state, rec, _ = recorded_chunk(*carry, batch)
        return (params, opt_state), rec

    chunks = jax.tree.map(lambda a: a[:head].reshape(n_rec, every, *a.shape[1:]), (b_idx, b_valid))
    # The last chunk apart, so that only its full (w, d, g) leave the scan.
    (params, opt_state), rec = jax.lax.scan(chunk, (params, opt_state), jax.tree.map(lambda a: a[:-1], chunks))
    params, opt_state, rec_last, snap = recorded_chunk(params, opt_state, jax.tree.map(lambda a: a[-1], chunks))
    stats, tracked = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), rec, rec_last)
    if head < n_batches:
        (params, opt_state), _ = jax.lax.scan(
            plain, (params, opt_state), jax.tree.map(lambda a: a[head:], (b_idx, b_valid)))
    return params, opt_state, stats, tracked, snap


# ---------------------------------------------------------------- the result


@dataclass
class ExplainResult:
    """What :func:`explain` measured.

    Models: ``lmbdas[k]`` for k = 0..K−1, ``lmbdas[0] == 0`` (the companion).
    Arrays (NumPy):

    * ``steps``: ``(S,)`` global index (from 0) of each recorded step;
    * ``stats[name]``: ``(S, n_layers, K)`` sums (see :func:`layer_stats`);
    * ``n_weights``: ``(n_layers,)``;
    * ``tracked``: ``(S, T, K)`` sampled weights before each recorded step,
      ``tracked_index``: ``(T, 3)`` their (layer, i, o);
    * ``history[name]``: ``(epochs, K)`` end-of-epoch metrics, including
      ``weight_sq_norm``;
    * ``snapshots``: epoch -> per layer ``{"w", "d", "g"}`` ``(n_in, K, n_out)``
      at that epoch's last recorded step.
    """

    config: dict
    lmbdas: list
    steps_per_epoch: int
    record_every: int
    steps: np.ndarray
    stats: dict
    n_weights: np.ndarray
    tracked: np.ndarray
    tracked_index: np.ndarray
    history: dict
    snapshots: dict
    train_seconds: float
    compile_seconds: float
    notes: list = field(default_factory=list)
    reproduced: dict | None = None
    final_params: list | None = None  # the stack after the last epoch, (n_in, K, n_out) weights
    weight_decays: list | None = None  # adamw: the decoupled wd of each model (lmbdas all 0)

    def strength(self, k: int) -> float:
        """Model k's decay setting: its weight decay under AdamW, else its λ."""
        return self.weight_decays[k] if self.weight_decays is not None else self.lmbdas[k]

    def label(self, k: int) -> str:
        return f"wd = {self.weight_decays[k]:g}" if self.weight_decays is not None else f"λ = {self.lmbdas[k]:g}"

    # -- derived numbers

    @property
    def epochs(self) -> int:
        return int(self.config["epochs"])

    def epoch_summary(self) -> dict:
        """Per-epoch means over the recorded steps, each ``(epochs, K)``, all weights pooled.

        ``frac_away``, ``frac_grow``, ``grow_sq_share`` (share of Σw² held by
        the weights that grew), ``mean_abs_decay``, ``mean_abs_data``,
        ``frac_zero_data`` (weights with g = 0),
        ``decay_to_data`` (mean |d| / mean |g|), ``weight_sq_norm`` (end of
        epoch) and ``weight_sq_ratio`` (Σw² over the λ = 0 model's).
        """
        W = float(self.n_weights.sum())
        s = {k: v.sum(axis=1) for k, v in self.stats.items()}  # (S, K), summed over layers
        per_step = {
            "frac_away": s["away"] / W,
            "frac_grow": s["grow"] / W,
            "grow_sq_share": s["grow_sq"] / np.maximum(s["sq"], np.finfo(np.float64).tiny),
            "mean_abs_decay": s["abs_d"] / W,
            "mean_abs_data": s["abs_g"] / W,
            "frac_zero_data": s["zero_g"] / W,
        }
        epoch_of = self.steps // self.steps_per_epoch
        out = {k: np.stack([v[epoch_of == e].mean(axis=0) for e in range(self.epochs)]) for k, v in per_step.items()}
        out["decay_to_data"] = out["mean_abs_decay"] / np.maximum(out["mean_abs_data"], np.finfo(np.float64).tiny)
        sq = self.history["weight_sq_norm"]
        out["weight_sq_norm"] = sq
        out["weight_sq_ratio"] = sq / sq[:, :1]
        return out

    def layer_summary(self, epoch: int = -1) -> dict:
        """Like :meth:`epoch_summary` for one epoch, per layer: each ``(n_layers, K)``."""
        epoch = range(self.epochs)[epoch]
        sel = (self.steps // self.steps_per_epoch) == epoch
        s = {k: v[sel].mean(axis=0) for k, v in self.stats.items()}
        nw = self.n_weights[:, None].astype(np.float64)
        return {
            "frac_away": s["away"] / nw, "frac_grow": s["grow"] / nw,
            "grow_sq_share": s["grow_sq"] / np.maximum(s["sq"], np.finfo(np.float64).tiny),
            "mean_abs_decay": s["abs_d"] / nw, "mean_abs_data": s["abs_g"] / nw,
            "frac_zero_data": s["zero_g"] / nw,
        }

    def to_json(self) -> dict:
        summary = self.epoch_summary()
        layers = self.layer_summary()
        models = []
        for k, lmbda in enumerate(self.lmbdas):
            model = {"lmbda": lmbda}
            if self.weight_decays is not None:
                model["weight_decay"] = self.weight_decays[k]
            for name, v in summary.items():
                model[name] = [float(x) for x in v[:, k]]
            for name in ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy"):
                if name in self.history:
                    model[name] = [float(x) for x in self.history[name][:, k]]
            model["last_epoch_per_layer"] = {name: [float(x) for x in v[:, k]] for name, v in layers.items()}
            if self.strength(k) > 0:
                model["answer"] = answer(self, k)
                model["derivation"] = derivation(self, k)
            models.append(model)
        return {
            "config": self.config,
            "steps_per_epoch": self.steps_per_epoch,
            "record_every": self.record_every,
            "recorded_steps_per_epoch": int(len(self.steps) // max(self.epochs, 1)),
            "n_weights_per_layer": [int(x) for x in self.n_weights],
            "train_seconds": self.train_seconds,
            "compile_seconds": self.compile_seconds,
            "reproduced": self.reproduced,
            "notes": list(self.notes),
            "models": models,
            "tracked": {
                "index": self.tracked_index.tolist(),
                "steps": [int(s) for s in self.steps],
                "w": np.round(self.tracked.astype(np.float64), 7).tolist(),
            },
        }

    def save(self, out) -> None:
        """Write ``out/explain.json`` and ``out/explain.npz`` (snapshots and records)."""
        out = Path(out)
        arrays = {"lmbda": np.asarray(self.lmbdas), "steps": self.steps, "tracked": self.tracked,
                  "tracked_index": self.tracked_index, "n_weights": self.n_weights}
        arrays.update({f"stat_{k}": v for k, v in self.stats.items()})
        for e, layers in self.snapshots.items():
            for li, layer in enumerate(layers):
                for name, a in layer.items():
                    arrays[f"epoch{e}_{name}{li}"] = a
        store.write_npz(out / "explain.npz", arrays)
        store.write_json(out / "explain.json", self.to_json())


# ---------------------------------------------------------------- words


def _shrink(result: ExplainResult, k: int) -> tuple[float, float, int]:
    c = result.config
    lmbda = result.lmbdas[k]
    f = 1 - c["eta"] * lmbda / c["n"]
    steps = result.steps_per_epoch
    return f, f ** steps, steps


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def answer(result: ExplainResult, k: int) -> list[str]:
    """The plain-language answer for model k (λ > 0), with this run's numbers."""
    c = result.config
    lmbda, n = result.lmbdas[k], c["n"]
    s = result.epoch_summary()
    f, fe, steps = _shrink(result, k)
    name, eta = c.get("optimizer", "sgd"), c["eta"]
    me, base = result.label(k), result.label(0)
    lines = [_first_bullet(result, k)]
    lines += [
        f"At the last epoch the data term pushed {_pct(s['frac_away'][-1, k])} of the weights away from zero "
        f"(sign(g) = sign(w)); the decay term pulled every weight toward zero, with mean |d| = "
        f"{s['mean_abs_decay'][-1, k]:.3g} against mean |g| = {s['mean_abs_data'][-1, k]:.3g} "
        f"(ratio {s['decay_to_data'][-1, k]:.3g}).",
        f"{_pct(s['frac_grow'][-1, k])} of the weights grew in magnitude on net (their data term outweighed the decay), "
        f"and they carry {_pct(s['grow_sq_share'][-1, k])} of Σw².",
        f"After {result.epochs} epochs Σw² is {s['weight_sq_norm'][-1, k]:.4g} with {me} against "
        f"{s['weight_sq_norm'][-1, 0]:.4g} with {base} ({s['weight_sq_ratio'][-1, k]:.3g}×), "
        f"from the same initial weights and mini-batches.",
    ]
    if s["frac_zero_data"][-1, k] > 0:
        lines.insert(3, f"{_pct(s['frac_zero_data'][-1, k])} of the weights got no data term at all (g = 0, as for an "
                        f"input that is 0 in the whole mini-batch), so only the decay moved them, straight toward zero.")
    if "evaluation_accuracy" in result.history and not c.get("regression"):
        acc = result.history["evaluation_accuracy"][-1]
        lines.append(f"{c['eval'].capitalize()} accuracy: {_pct(acc[k])} with {me}, {_pct(acc[0])} with {base}.")
    if name == "sgd":
        tail = f"So the 'addition' is to the cost; on the weight it is a subtraction of (ηλ/n)·w, a multiplication by {f:.6g}."
    elif name == "adamw":
        wd = result.weight_decays[k]
        tail = (f"So nothing is added to the cost; the decay is a subtraction of η·wd·w = {eta * wd:.4g}·w, "
                f"a multiplication by {1 - eta * wd:.6g}.")
    else:
        tail = "So the 'addition' is to the cost; on the weight it is the decay term d, part of the actual update."
    lines.append(f"For comparison, with {base} the data term pushed {_pct(s['frac_away'][-1, 0])} away from zero and "
                 f"{_pct(s['frac_grow'][-1, 0])} of the weights grew. {tail}")
    return lines


def _first_bullet(result: ExplainResult, k: int) -> str:
    """Where the decay lives for this optimizer, and what it does per step."""
    c = result.config
    name, eta, n, lmbda = c.get("optimizer", "sgd"), c["eta"], c["n"], result.lmbdas[k]
    f, fe, steps = _shrink(result, k)
    cost = (f"The penalty is added to the cost, not to the weights: C = C0 + (λ/2n)·Σw² = C0 + {lmbda / (2 * n):.4g}·Σw². "
            f"Its gradient, (λ/n)·w = {lmbda / n:.4g}·w, has the sign of w")
    split = ("d is the split of the actual update u: d = u − g, g being what the same optimizer state "
             "would do with the data gradient alone")
    if name == "sgd":
        return (f"{cost}, and gradient descent subtracts it, so it shrinks |w| by the factor (1 − ηλ/n) = {f:.6g} "
                f"per step, about {fe:.4g} per epoch ({steps} steps).")
    if name in ("momentum", "nesterov"):
        mu = c["momentum"]
        now = (1 + mu) if name == "nesterov" else 1.0
        return (f"{cost}, and it enters the velocity v ← μ·v + ∂C/∂w (μ = {mu:g}): this step's decay term is "
                f"d = −{now:g}·η(λ/n)·w = {-now * eta * lmbda / n:.4g}·w, and what earlier steps put in v keeps "
                f"acting, in the long run about η(λ/n)/(1 − μ) = {eta * lmbda / n / (1 - mu):.4g} of w per step. "
                f"For {name}, {split}.")
    if name == "adam":
        return (f"{cost}, and it goes through Adam's moments (coupled L2): it is divided by √v̂ like the data "
                f"gradient, so weights with large gradients are decayed less. For Adam, {split}.")
    wd = result.weight_decays[k]
    return (f"AdamW's decay is decoupled, not in the cost: C = C0 (λ = 0), and each step subtracts "
            f"η·wd·w = {eta * wd:.4g}·w outside Adam's moments (wd = {wd:g}), a multiplication by "
            f"(1 − η·wd) = {1 - eta * wd:.6g} per step, about {(1 - eta * wd) ** steps:.4g} per epoch ({steps} steps). "
            f"Here d = −η·wd·w exactly and g = u − d is Adam's step on the data gradient.")


def derivation(result: ExplainResult, k: int) -> list[str]:
    """From C to the update rule, with this run's η, λ, n and m filled in."""
    c = result.config
    lmbda, n, m, eta = result.lmbdas[k], c["n"], c["batch_size"], c["eta"]
    f, fe, steps = _shrink(result, k)
    name = c.get("optimizer", "sgd")
    if name == "adamw":
        wd = result.weight_decays[k]
        return [
            "C = C0                                              (AdamW: no penalty in the cost)",
            f"w ← w − η·(m̂/(√v̂ + ε) + wd·w)                    η = {eta:g}, wd = {wd:g}",
            f"  = w + d + g,  d = −η·wd·w = −{eta * wd:.6g}·w,  g = −η·m̂/(√v̂ + ε) (moments of ∂C0/∂w only)",
        ]
    if name != "sgd":
        rule = {"momentum": "v ← μ·v + ∂C/∂w;  w ← w − η·v",
                "nesterov": "v ← μ·v + ∂C/∂w;  w ← w − η·(∂C/∂w + μ·v)",
                "adam": "w ← w − η·m̂/(√v̂ + ε),  m̂, v̂ the moments of ∂C/∂w (coupled)"}[name]
        return [
            f"C = C0 + (λ/2n)·Σ_w w²                               λ = {lmbda:g}, n = {n}",
            f"∂C/∂w = ∂C0/∂w + (λ/n)·w = ∂C0/∂w + {lmbda / n:.6g}·w",
            f"{name}: {rule}                  η = {eta:g}, m = {m}",
            "u = the actual update;  g = the same rule and state with ∂C0/∂w alone;  d = u − g",
        ]
    return [
        f"C = C0 + (λ/2n)·Σ_w w²                               λ = {lmbda:g}, n = {n}",
        f"  = C0 + {lmbda / (2 * n):.6g}·Σ_w w²",
        f"∂C/∂w = ∂C0/∂w + (λ/n)·w = ∂C0/∂w + {lmbda / n:.6g}·w",
        "∂C/∂b = ∂C0/∂b                                      (biases are not penalized)",
        f"One SGD step on a mini-batch of m = {m} examples, η = {eta:g}, estimating ∂C0/∂w by (1/m)·Σ_x ∂C0_x/∂w:",
        "w ← w − η·[(1/m)·Σ_x ∂C0_x/∂w + (λ/n)·w]",
        "  = (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w",
        f"  = {f:.6g}·w − {eta / m:.6g}·Σ_x ∂C0_x/∂w",
        f"  = w + d + g,  d = −{eta * lmbda / n:.6g}·w (decay term),  g = −{eta / m:.6g}·Σ_x ∂C0_x/∂w (data term)",
        f"b ← b − {eta / m:.6g}·Σ_x ∂C0_x/∂b",
        f"Per epoch ({steps} steps) the decay term alone multiplies w by {f:.6g}^{steps} = {fe:.4g}.",
    ]


# ---------------------------------------------------------------- running it


def _snapshot_epochs(epochs: int, count: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, epochs - 1, min(count, epochs))})


def _track_indices(spec: NetworkSpec, per_layer: int, seed: int):
    rng = np.random.default_rng(seed)
    track, rows = [], []
    for li, (n_in, n_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        flat = rng.choice(n_in * n_out, size=min(per_layer, n_in * n_out), replace=False)
        i, o = np.divmod(np.sort(flat), n_out)
        track.append((jnp.asarray(i, jnp.int32), jnp.asarray(o, jnp.int32)))
        rows += [(li, int(a), int(b)) for a, b in zip(i, o)]
    return track, np.asarray(rows, np.int64).reshape(-1, 3)


def explain(
    dataset: str | Dataset = "digits",
    sizes: Sequence[int] | str | None = None,
    epochs: int = 30,
    batch_size: int = 10,
    eta: float = 0.5,
    lmbda: float | Sequence[float] | None = None,
    init: str = "default",
    cost: str = "cross-entropy",
    activation: str = "sigmoid",
    train_size: int | None = None,
    eval: str = "validation",
    seed: int = 0,
    data_dir: str | None = None,
    *,
    record_every: int | None = None,
    track: int = 4,
    snapshots: int = 4,
    params0: list | None = None,
    on_epoch: Callable[[int | None, dict | None], None] | None = None,
    optimizer: str = "sgd",
    momentum: float | None = None,
    weight_decay: float | Sequence[float] | None = None,
) -> ExplainResult:
    """Train on C = C0 + (λ/2n)·Σw² (coupled L2; SGD unless ``optimizer``) and record what each term does.

    ``lmbda`` None: 5.0, or 0 with ``optimizer="adamw"``, whose decay is the
    decoupled ``weight_decay`` (a list: one model each, plus a wd = 0
    companion). ``optimizer``, ``momentum`` (one μ) and ``weight_decay`` are
    :func:`l2reg.train.train`'s; see the module docstring for how d and g
    split the update of a stateful optimizer.

    The options are :func:`l2reg.train.train`'s (one seed). λ = 0 is added to
    ``lmbda`` if absent, so that every λ compares with an unpenalized run
    from the same initial weights and batches.

    * ``record_every``: record every k-th step (default: about
      ``RECORDS_PER_EPOCH`` records per epoch); 1 records every step.
    * ``track``: weights per layer whose trajectories are recorded.
    * ``snapshots``: epochs (spread over the run) whose full per-weight w, d
      and g are kept.
    * ``params0``: optional initial stack (K models, in the order of
      ``result.lmbdas``) instead of the seed's initial weights.
    """
    if lmbda is None:
        lmbda = 0.0 if optimizer == "adamw" else 5.0
    lmbdas, seeds = train.check_options(
        epochs=epochs, batch_size=batch_size, eta=eta, lmbda=lmbda, init=init, cost=cost,
        activation=activation, penalty="l2", eval=eval, seeds=seed, monitor=train.MONITORS,
    )
    if len(seeds) != 1:
        raise ConfigError(f"explain takes one seed; got {len(seeds)}.")
    opts = train.check_optimizer_options(optimizer=optimizer, penalty="l2", momentum=momentum,
                                         weight_decay=weight_decay, lmbdas=lmbdas)
    if opts["momentum"] is not None and len(opts["momentum"]) != 1:
        raise ConfigError(f"explain takes one momentum; got {len(opts['momentum'])}.")
    eta = V.number("eta", eta, low=0, strict=True)
    if record_every is not None:
        V.integer("record_every", record_every, low=1)
    V.integer("track", track, low=0)
    V.integer("snapshots", snapshots, low=1)
    if isinstance(dataset, Dataset) and train_size is not None:
        raise ConfigError("train_size applies when loading by name; slice the Dataset instead.")
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, data_dir, train_size=train_size, eval=eval)
    regression = not data.is_classification
    if regression and cost != "quadratic":
        raise ConfigError(f"real-valued targets need cost='quadratic' (linear outputs); got {cost!r}.")
    spec = NetworkSpec(train._resolve_sizes(sizes, data, regression), activation, cost, regression)
    n = data.n_train
    m = V.integer("batch_size", batch_size, low=1, high=n)
    weight_decays = None
    if optimizer == "adamw":
        weight_decays = [0.0] + [x for x in dict.fromkeys(opts["weight_decay"]) if x != 0.0]
        lmbdas = [0.0] * len(weight_decays)
    else:
        lmbdas = [0.0] + [x for x in dict.fromkeys(lmbdas) if x != 0.0]
    K = len(lmbdas)
    mu = None if opts["momentum"] is None else opts["momentum"][0]
    steps_per_epoch = -(-n // m)
    every = record_every if record_every is not None else max(1, steps_per_epoch // RECORDS_PER_EPOCH)
    every = min(every, steps_per_epoch)
    X_eval, y_eval = data.split("test" if eval == "test" else "validation")

    dtype = jnp.float64 if data.X_train.dtype == np.float64 else jnp.float32
    X = jnp.asarray(data.X_train, dtype)
    Y = jnp.asarray(data.y_train)
    s = seeds[0]
    if params0 is None:
        params = network.stack([network.init_params(spec, jax.random.fold_in(jax.random.PRNGKey(s), 0), init, dtype)],
                               repeats=K)
    else:
        params = jax.tree.map(lambda a: jnp.array(a, dtype), params0)
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), 1)])
    hyper = train.make_hyper(np.full(K, float(eta)), np.asarray(lmbdas), np.full(K, float(n)), dtype, optimizer=optimizer,
                             momentum=mu, weight_decay=weight_decays)
    opt = train.OptimizerSpec(penalty="l2", name=optimizer)
    opt_state = train.make_optimizer(opt, hyper).init(params)
    idx = jnp.arange(n, dtype=jnp.int32)[None]
    valid = jnp.ones((1, n), bool)
    track_idx, track_rows = _track_indices(spec, track, s)
    sets = {"training": (X, Y, None), "evaluation": (jnp.asarray(X_eval, dtype), jnp.asarray(y_eval), None)}
    metric_hyper = {"lmbda": jnp.asarray(lmbdas, dtype)}
    n_dev = jnp.full(K, float(n), dtype)

    epoch_fn = jax.jit(partial(_explain_epoch, spec=spec, opt=opt, m=m, L=K, every=every), donate_argnums=(0, 1))
    metrics_fn = jax.jit(partial(train._metrics, spec=spec, which=train.MONITORS))
    args = (hyper, X, Y, idx, valid, keys)
    if on_epoch is not None:
        on_epoch(None, None)
    t0 = time.perf_counter()
    epoch_c = epoch_fn.lower(params, opt_state, *args, jnp.int32(0), track_idx).compile()
    metrics_c = metrics_fn.lower(params, metric_hyper, n_dev, sets).compile()
    compile_seconds = time.perf_counter() - t0

    snap_epochs = set(_snapshot_epochs(epochs, snapshots))
    stats_all, tracked_all, history, snaps = [], [], {}, {}
    t_start = time.perf_counter()
    for e in range(epochs):
        params, opt_state, stats, tracked, snap = epoch_c(params, opt_state, *args, jnp.int32(e), track_idx)
        metrics = {k: np.asarray(v) for k, v in metrics_c(params, metric_hyper, n_dev, sets).items()}
        metrics["weight_sq_norm"] = metrics["weight_sq_norm_per_layer"].sum(axis=1)
        stats_all.append({k: np.asarray(v) for k, v in stats.items()})
        tracked_all.append(np.asarray(tracked))
        if e in snap_epochs:
            snaps[e] = [{"w": np.asarray(w), "d": np.asarray(d), "g": np.asarray(g)} for w, d, g in snap]
        for k, v in metrics.items():
            history.setdefault(k, []).append(v)
        if on_epoch is not None:
            on_epoch(e, metrics)
    train_seconds = time.perf_counter() - t_start

    n_rec = steps_per_epoch // every
    steps = np.concatenate([e * steps_per_epoch + np.arange(n_rec) * every + every - 1 for e in range(epochs)])
    config = {
        "dataset": data.name if isinstance(dataset, Dataset) else str(dataset),
        "sizes": list(spec.sizes), "epochs": epochs, "batch_size": m, "eta": float(eta), "lmbda": lmbdas,
        "init": init, "cost": cost, "activation": activation, "penalty": "l2", "train_size": train_size,
        "eval": eval, "seed": s, "data_dir": None if data_dir is None else str(data_dir), "n": n,
        "regression": regression, "record_every": every, "track": track, "snapshots": sorted(snap_epochs),
        "optimizer": optimizer,
    }
    if mu is not None:
        config["momentum"] = mu
    if weight_decays is not None:
        config["weight_decay"] = weight_decays
    result = ExplainResult(
        config=config, lmbdas=lmbdas, steps_per_epoch=steps_per_epoch, record_every=every, steps=steps,
        stats={k: np.concatenate([st[k] for st in stats_all]) for k in STAT_NAMES},
        n_weights=np.array([a * b for a, b in zip(spec.sizes[:-1], spec.sizes[1:])]),
        tracked=np.concatenate(tracked_all), tracked_index=track_rows,
        history={k: np.stack(v) for k, v in history.items()}, snapshots=snaps,
        train_seconds=train_seconds, compile_seconds=compile_seconds, notes=list(data.notes),
        final_params=jax.tree.map(np.asarray, params), weight_decays=weight_decays,
    )
    return result


def load_run_config(run) -> dict:
    """The config of a finished ``l2reg train`` folder (its ``metrics.json``)."""
    path = Path(run) / "metrics.json"
    if not path.is_file():
        raise DataError(f"{run} is not a finished l2reg train folder: {path} is missing.")
    try:
        meta = json.loads(path.read_text())
        return dict(meta["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path} is not an l2reg metrics.json: {e}.") from None


def explain_run(run, *, record_every: int | None = None, track: int = 4, snapshots: int = 4,
                on_epoch=None) -> ExplainResult:
    """Explain a finished ``l2reg train`` run by training it again with recording.

    The run's ``metrics.json`` gives the options (dataset, sizes, η, λ, m,
    epochs, seed, ...); the first seed is used when there were several. The
    re-run follows the same initial weights and mini-batches, so its final
    weights are compared with the run's ``params.npz`` (``result.reproduced``).
    """
    c = load_run_config(run)
    if c.get("penalty", "l2") != "l2":
        raise ConfigError(f"explain needs a run trained with penalty l2; {run} used penalty {c.get('penalty')!r}.")
    unsupported = [
        what for what, bad in (
            (f"optimizer {c.get('optimizer')!r}", c.get("optimizer", "sgd") not in train.OPTIMIZERS),
            ("several momenta", len(np.atleast_1d(c.get("momentum") or [0])) > 1),
            (f"decay_scaling {c.get('decay_scaling')!r}", c.get("decay_scaling", "lr") not in (None, "lr")),
            (f"schedule {c.get('schedule')!r}", c.get("schedule", "constant") != "constant"),
            ("warm-up", bool(c.get("warmup_epochs", 0))),
            ("one λ per layer", c.get("lmbda") is None or "lmbda_per_layer" in c),
            ("several η", isinstance(c.get("eta"), list)),
            ("penalized biases", bool(c.get("penalize_biases", False))),
            ("early stopping", bool(c.get("early_stopping", False))),
        ) if bad
    ]
    if unsupported:
        raise ConfigError(f"explain re-runs a constant-η run with one λ list and L2 on the weights only; "
                          f"{run} used {', '.join(unsupported)}.")
    seeds = c.get("seed", 0)
    seeds = seeds if isinstance(seeds, list) else [seeds]
    try:
        result = explain(
            dataset=c["dataset"], sizes=c["sizes"], epochs=c["epochs"], batch_size=c["batch_size"], eta=c["eta"],
            lmbda=c["lmbda"], init=c.get("init", "default"), cost=c.get("cost", "cross-entropy"),
            activation=c.get("activation", "sigmoid"), train_size=c.get("train_size"), eval=c.get("eval", "validation"),
            seed=seeds[0], data_dir=c.get("data_dir"), record_every=record_every, track=track, snapshots=snapshots,
            on_epoch=on_epoch, optimizer=c.get("optimizer", "sgd"), momentum=c.get("momentum"),
            weight_decay=c.get("weight_decay"),
        )
    except KeyError as e:
        raise DataError(f"{Path(run) / 'metrics.json'} lacks the option {e.args[0]!r}.") from None
    result.config["run"] = str(run)
    result.notes.append(f"Re-ran the recording with the config of {run} (seed {seeds[0]}).")
    if len(seeds) > 1:
        result.notes.append(f"The run had seeds {seeds}; explain used the first, {seeds[0]}.")
    result.reproduced = _compare_stored(run, result, seeds[0])
    if result.reproduced is not None:
        result.notes.append(
            f"The re-run's final weights match the stored params.npz to within {result.reproduced['max_abs_diff']:.2g} "
            f"(max |Δw| over {len(result.reproduced['lmbda'])} run(s)).")
    return result


def _compare_stored(run, result: ExplainResult, seed: int) -> dict | None:
    path = Path(run) / "params.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        stored = {k: z[k] for k in z.files}
    diffs, matched = [], []
    keys = result.lmbdas
    if result.weight_decays is not None:  # adamw: the models differ by wd
        if "weight_decay" not in stored:
            return None
        stored["lmbda"], keys = stored["weight_decay"], result.weight_decays
    for r, (lm, sd) in enumerate(zip(stored["lmbda"], stored["seed"])):
        if int(sd) != seed or float(lm) not in keys:
            continue
        k = keys.index(float(lm))
        d = max(float(np.max(np.abs(stored[f"w{li}"][r] - layer["w"][:, k, :])))
                for li, layer in enumerate(result.final_params))
        diffs.append(d)
        matched.append(float(lm))
    if not diffs:
        return None
    return {"lmbda": matched, "max_abs_diff": max(diffs)}
