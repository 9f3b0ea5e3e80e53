"""What weight decay does inside an ordinary optax loop: :func:`monitor` wraps the optimizer and records it.

``tx = l2reg.jax.monitor(optax.chain(optax.add_decayed_weights(λ/n, mask), optax.sgd(η)))`` is an optax
transform (``tx.init``, ``tx.update``) that takes exactly the wrapped optimizer's steps and, at every
recorded step, splits each leaf's update u into two terms, as :class:`l2reg.torch.DecayMonitor` does::

    u = d + g,    d the decay term, g the data term,
    g = the same optimizer's update from the same state given params = 0,   d = u − g.

With params = 0 every term that multiplies the weights vanishes: ``add_decayed_weights`` (coupled L2,
λ/n·w before the optimizer, so under momentum and Adam d is the change the L2 term makes through the
velocity or the moments) and ``adamw``'s decoupled wd·w; for plain SGD this is d = −η·(λ/n)·w and
g = −η·∂C0/∂w exactly. (An optimizer whose step depends on the weights otherwise, LARS or LAMB's trust
ratio, would put that dependence into d.) The shadow update costs one more ``update`` of the optimizer
on recorded steps only; its state is discarded.

Per recorded step it keeps, per leaf, the :data:`~l2reg.models.monitor_summary.STATS` (weights whose data term
points away from zero, whose |w| grew, Σw², Σ|d|, Σ|g|, …), sent to the host by ``jax.debug.callback``,
so the wrapper works inside ``jax.jit``. Leaves are grouped into decayed (group 0) and not decayed
(group 1) by ``mask`` if given, else by whether a leaf's update depends on its weights at the first
recorded step (the update given params = 1 differs from the one given params = 0). :meth:`summary`,
:meth:`write_json` and :meth:`write_html` are DecayMonitor's. Give ``lr``, ``weight_decay`` (the
optimizer's setting: λ/n for coupled L2, wd for adamw) and ``kind`` for the decay timescale τ; without
them the summary gives the measured decay rate per step, −Σd·w/Σw².
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..base import validation as V
from ..options import OPTIMIZERS as TIMESCALE_OPTIMIZERS
from ..errors import ConfigTypeError
from ..models.monitor_summary import MonitorFiles, STATS, summarize


def _stats(w0, u, g):
    d = u - g
    w = w0 + u
    grow = jnp.abs(w) > jnp.abs(w0)
    w2 = w0 * w0
    parts = [jnp.sum(g * w0 > 0), jnp.sum(grow), jnp.sum(jnp.where(grow, w2, 0)), jnp.sum(w2), jnp.sum(jnp.abs(d)),
             jnp.sum(jnp.abs(g)), jnp.sum(g == 0), jnp.asarray(w0.size), -jnp.sum(d * w0)]
    return jnp.stack([jnp.asarray(x, jnp.float32) for x in parts])  # STATS, then Σ(−d·w)


class DecayMonitor(MonitorFiles):
    """An optax transform that records d and g of the optimizer it wraps (module docstring).

    Built by :func:`monitor`, which takes the same arguments: ``optimizer`` (the optax transform wrapped),
    ``mask``, ``lr``, ``weight_decay``, ``kind``, ``momentum``, ``record_every``, ``steps_per_epoch`` and
    ``epochs``.
    """

    def __init__(self, optimizer, *, mask=None, lr=None, weight_decay=None, kind=None, momentum=None,
                 record_every: int = 1, steps_per_epoch: int | None = None, epochs: int | None = None):
        if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
            raise ConfigTypeError(f"optimizer must be an optax GradientTransformation; got {type(optimizer).__name__}.")
        self.inner = optimizer
        self.mask = mask
        self.lr = None if lr is None else V.number("lr", lr, low=0)
        self.weight_decay = None if weight_decay is None else V.number("weight_decay", weight_decay, low=0)
        self.kind = None if kind is None else V.choice("kind", kind, TIMESCALE_OPTIMIZERS)
        self.momentum = momentum
        self.record_every = V.integer("record_every", record_every, low=1)
        self.steps_per_epoch = None if steps_per_epoch is None else V.integer("steps_per_epoch", steps_per_epoch, low=1)
        self.epochs = None if epochs is None else V.integer("epochs", epochs, low=1)
        self.optimizer_name = "optax"
        self._leaf_names: list[str] = []
        self.names: list[tuple[int, str]] = []
        self.records: list[np.ndarray] = []
        self.recorded_steps: list[int] = []
        self.group_hyper: list[list[tuple[float, float]]] = []
        self._rates: list[np.ndarray] = []
        self.steps = 0

    # -- the optax transform

    def init(self, params):
        self._leaf_names = [jax.tree_util.keystr(p, simple=True, separator=".")
                            for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
        return {"inner": self.inner.init(params), "count": jnp.zeros((), jnp.int32)}

    def update(self, updates, state, params=None, **extra):
        if params is None:
            raise ConfigTypeError("l2reg.jax.monitor needs the params: call tx.update(grads, state, params).")
        u, inner = self.inner.update(updates, state["inner"], params, **extra)
        count = state["count"]

        def record(_):
            g, _ = self.inner.update(updates, state["inner"], jax.tree.map(jnp.zeros_like, params), **extra)
            if self.mask is None:  # a leaf decays if its update depends on the weights
                g1, _ = self.inner.update(updates, state["inner"], jax.tree.map(jnp.ones_like, params), **extra)
                decays = [jnp.sum(jnp.abs(a - b)) > 1e-6 * (jnp.sum(jnp.abs(b)) + 1e-30)
                          for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g))]
            else:
                decays = [jnp.asarray(bool(x)) for x in jax.tree.leaves(self.mask)]
            rows = []
            for w, du, dg, dec in zip(jax.tree.leaves(params), jax.tree.leaves(u), jax.tree.leaves(g), decays):
                # a leaf that does not decay has d = 0 exactly (u − g would be rounding noise of two updates)
                rows.append(jnp.concatenate([_stats(w, du, jnp.where(dec, dg, du)), dec.astype(jnp.float32)[None]]))
            jax.debug.callback(self._record, jnp.stack(rows), count)

        jax.lax.cond(count % self.record_every == 0, record, lambda _: None, None)
        return u, {"inner": inner, "count": count + 1}

    def _record(self, table, count) -> None:
        table = np.asarray(table, np.float64)
        if not self.names:
            self._groups(table)
        self.records.append(table[self._order, : len(STATS)])
        rate = [np.nansum(table[self._order][self._group_of == gi, len(STATS)]) /
                max(np.nansum(table[self._order][self._group_of == gi, STATS.index("sq")]), 1e-30) for gi in (0, 1)]
        self._rates.append(np.array(rate))
        self.recorded_steps.append(int(count))
        self.steps = int(count) + 1
        self.group_hyper.append([self._hyper(0, rate[0]), (self.lr if self.lr is not None else math.nan, 0.0)])

    def _groups(self, table: np.ndarray) -> None:
        decayed = list(table[:, -1] > 0)
        self._order = np.array([i for i, d in enumerate(decayed) if d] + [i for i, d in enumerate(decayed) if not d])
        self._group_of = np.array([0 if decayed[i] else 1 for i in self._order])
        self.names = [(int(gi), self._leaf_names[i]) for gi, i in zip(self._group_of, self._order)]

    def _hyper(self, gi: int, rate: float) -> tuple[float, float]:
        if self.weight_decay is not None:
            return (self.lr if self.lr is not None else math.nan, self.weight_decay)
        return (math.nan, float(rate))  # measured: the decay rate per step, −Σd·w/Σw²

    # -- the summary (l2reg.models.monitor_summary reads these)

    def group_info(self) -> list[dict]:
        known = self.kind is not None and self.lr is not None and self.weight_decay is not None
        missing = ("weight_decay is the measured decay rate per step −Σd·w/Σw²; give lr, weight_decay and kind "
                   "to l2reg.jax.monitor for the timescale τ")
        decayed = {"split": "zero_params", "kind": self.kind if known else None, "momentum": self.momentum,
                   "dampening": 0, "no_timescale": None if known else missing}
        return [decayed, {"split": "none", "kind": None, "momentum": None, "dampening": 0,
                          "no_timescale": "no decay in this group"}]

    def summary(self, *, last: int | None = None) -> dict:
        """The same plain-dict summary as :meth:`l2reg.torch.DecayMonitor.summary` (groups, layers, history,
        answer) over the recorded steps (the last ``last`` of them if given)."""
        return summarize(self, last=last)


def monitor(optimizer, *, mask=None, lr: float | None = None, weight_decay: float | None = None,
            kind: str | None = None, momentum: float | None = None, record_every: int = 1,
            steps_per_epoch: int | None = None, epochs: int | None = None) -> DecayMonitor:
    """Wrap an optax ``optimizer`` so that every ``record_every``-th step records its decay and data terms.

    Use the result as the optimizer itself (``state = tx.init(params)``; ``u, state = tx.update(g, state,
    params)``, jitted or not); the steps are the wrapped optimizer's own. ``mask``: the decay mask as a
    pytree of booleans like the params (default: the leaves whose update depends on the weights);
    ``lr``, ``weight_decay`` and ``kind`` (``sgd``, ``momentum``, ``nesterov``, ``adam``, ``adamw``;
    ``momentum`` μ) give the decay timescale; ``steps_per_epoch`` and ``epochs`` give τ in epochs and its
    warnings. Module docstring: how d and g are split.
    """
    return DecayMonitor(optimizer, mask=mask, lr=lr, weight_decay=weight_decay, kind=kind, momentum=momentum,
                        record_every=record_every, steps_per_epoch=steps_per_epoch, epochs=epochs)
