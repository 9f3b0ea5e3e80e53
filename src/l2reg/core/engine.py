"""The engine: K models trained in one jit-compiled pass over the data per epoch.

A *stack* of K = G·L models (:mod:`l2reg.core.network`) is G data streams (seeds,
cross-validation folds) of L members each (λ, η, ...). Every epoch is one
compiled call: the mini-batches are drawn on the device from a seeded
permutation (:func:`shuffle`) and ``lax.scan`` runs the steps; each step is
:func:`step` — the gradient of every model's mean C0 on its mini-batch, then
the optax chain of :func:`l2reg.core.update.make_optimizer`, which applies

    w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w        (plain SGD, coupled L2)

The seeding rule (:func:`seed_keys`): a stream's initial weights come from
one key of its seed, its data order from another, so a run is a pure function
of its seeds and a resumed run equals an uninterrupted one.

:func:`fit_stack` puts the pieces together: the plan (:class:`Plan`), the
compiled epoch and monitoring, the loop over epochs, divergence, early
stopping and checkpoints. A *recorder* (``l2reg explain``) rides along the
same steps to split each update into its decay and data terms.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..base import checkpoint as ckpt
from ..base import compile_cache, interrupts
from ..base.checkpoint import Checkpointing
from ..errors import ConfigError, Interrupted
from ..options import MONITORS, TrainOptions
from . import network, penalties
from .device import to_device
from .network import NetworkSpec
from .update import OptimizerSpec, decay_free_hyper, make_hyper, make_optimizer

log = logging.getLogger(__name__)

#: A cost above this (or a NaN/inf cost or Σw²) marks a configuration as diverged.
DIVERGENCE_BOUND = 1e6


# ---------------------------------------------------------------- seeds and initial weights


#: Compiler options of the programs that run once per stack (the keys, the initial draws, the final scores
#: and terms): XLA's optimization level 1 compiles them in about half the time (see _normals), same results.
ONCE = {"xla_backend_optimization_level": 1}


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """The two keys of a stream's seed: ``(initial weights, data order)``."""
    # PRNGKey keeps a seed's low 32 bits (without x64); as uint32 any seed goes through one compiled program.
    return _seed_keys(np.uint32(int(seed) & 0xFFFFFFFF))


@partial(jax.jit, compiler_options=ONCE)
def _seed_keys(seed):
    key = jax.random.PRNGKey(seed)
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


# XLA's top optimization level spends ~1.8 s compiling threefry and erf_inv,
# a third of a first run's start-up; level 1 compiles in ~0.5 s, runs in
# milliseconds and draws the same bits (tests/test_engine_init.py). Level 0
# does not: it rounds erf_inv differently.
@partial(jax.jit, static_argnames=("spec", "dtype"), compiler_options=ONCE)
def _normals(keys, *, spec, dtype):
    return jax.vmap(lambda k: network.init_normals(spec, k, dtype))(keys)  # leaves (G, ...)


def init_stack(spec: NetworkSpec, seeds: Sequence[int], L: int, init: str, dtype=jnp.float32):
    """The initial stack: stream g's weights (from its seed) repeated for its L members.

    The draws are compiled for one stream, whatever the number of streams; the
    scale is applied outside, so the weights are bit for bit :func:`network.init_params`'s.
    """
    # One stream per call: the CV's G streams and the refit's one share one compiled program.
    draws = [_normals(np.asarray(seed_keys(s)[0])[None], spec=spec, dtype=jnp.dtype(dtype)) for s in seeds]
    raw = jax.tree.map(lambda *a: np.concatenate(a), *draws)
    scales = network.init_scale(spec, init)
    # The scale in the weights' dtype, as JAX multiplies (NumPy would promote to float64); stacked in
    # NumPy (copies, bit for bit network.stack's): an eager jnp.stack compiles a program per shape.
    stacked = [{"w": np.repeat((layer["w"].dtype.type(scale) * layer["w"]).swapaxes(0, 1), L, axis=1),  # (n_in, K, n_out)
                "b": np.repeat(layer["b"], L, axis=0)}  # (K, n_out)
               for scale, layer in zip(scales, raw)]
    return jax.tree.map(to_device, stacked)


# ---------------------------------------------------------------- batches and losses


def shuffle(keys, epoch, idx, valid, m: int):
    """This epoch's mini-batches: ``(n_batches, G, m)`` indices and validity.

    Each group's valid examples come first in a random order drawn from its
    key and the epoch number (so a run is a pure function of its seed); the
    last batch may be partial, as in network2.
    """

    def one(key, idx_g, valid_g):
        r = jax.random.uniform(jax.random.fold_in(key, epoch), idx_g.shape)
        order = jnp.argsort(jnp.where(valid_g, r, 2.0))
        return idx_g[order], valid_g[order]

    idx, valid = jax.vmap(one)(keys, idx, valid)
    G, n_max = idx.shape
    n_batches = -(-n_max // m)
    pad = n_batches * m - n_max
    idx = jnp.pad(idx, ((0, 0), (0, pad)))
    valid = jnp.pad(valid, ((0, 0), (0, pad)))
    return (
        jnp.swapaxes(idx.reshape(G, n_batches, m), 0, 1),
        jnp.swapaxes(valid.reshape(G, n_batches, m), 0, 1),
    )


def per_model(a, L: int):
    """Per-group batch data ``(G, m, ...)`` to per-model ``(m, K, ...)`` (or ``(m, 1, ...)`` for G = 1)."""
    a = jnp.swapaxes(a, 0, 1)
    return a if a.shape[1] == 1 else jnp.repeat(a, L, axis=1)


def batch_loss(params, x, y, w, spec: NetworkSpec, L: int):
    """Σ over models of each model's mean C0 on its mini-batch.

    ``w`` ``(G, m)`` is 1 for real examples and 0 for padding. Because the
    models share no parameters, the gradient of this sum with respect to a
    model's parameters is that model's own gradient of its mean C0.
    """
    z = network.logits(spec, params, x[0] if x.shape[0] == 1 else x)  # (m, K, n_out)
    t = per_model(network.targets(spec, y, spec.sizes[-1]), L)
    wk = per_model(w, L)  # (m, K) or (m, 1)
    c = network.cost_per_example(spec, z, t)  # (m, K)
    return jnp.sum(jnp.sum(c * wk, axis=0) / jnp.maximum(jnp.sum(wk, axis=0), 1.0))


def grouped_loss(params, x, y, w, spec: NetworkSpec):
    """As :func:`batch_loss`, for a group-major stack: ``x`` ``(G, m, n_in)``, ``w`` ``(G, m)``."""
    return network.grouped_cost(spec, network.logits_grouped(spec, params, x), y, w)


# ---------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layout:
    """How a stack is laid out during an epoch (hashable: part of the jit key).

    One data stream (G = 1): the usual ``(n_in, K, n_out)``, so all K models'
    first layer is one GEMM. Several streams: group-major
    (:func:`network.to_groups`), entered once per epoch and left at its end,
    so that each step's first layer is a batched GEMM. The update is
    elementwise, so its result does not depend on the layout.
    """

    G: int
    L: int

    @property
    def grouped(self) -> bool:
        return self.G > 1

    def enter(self, tree):
        return network.to_groups(tree, self.G) if self.grouped else tree

    def leave(self, tree, like):
        return network.from_groups(tree, like) if self.grouped else tree

    def loss(self, params, x, y, w, spec):
        return grouped_loss(params, x, y, w, spec) if self.grouped else batch_loss(params, x, y, w, spec, self.L)

    def live(self, active, w):
        """Models that take this step: active, with examples left in their group's batch."""
        if self.grouped:
            return (active.reshape(self.G, self.L) & (w.sum(1) > 0)[:, None])[:, None, :, None]  # (G, 1, L, 1)
        return (active & (per_model(w, self.L).sum(0) > 0))[:, None]  # (K, 1)


# ---------------------------------------------------------------- one step, one epoch


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


@dataclass(frozen=True)
class Stepper:
    """One training step of a whole stack; the body of every epoch's scan.

    ``block`` > 0: the epoch takes the blocked path instead
    (:func:`l2reg.core.blocked.blocked_epoch`: plain SGD, the first layer written
    once per ``block`` steps), the same update to float32 rounding.
    """

    spec: NetworkSpec
    opt: OptimizerSpec
    layout: Layout
    block: int = 0

    def __call__(self, carry, batch, *, X, Y, hyper, active, terms=False):
        """``carry`` = (params, opt_state); ``batch`` = (idx, valid) ``(G, m)`` each.

        Returns the new carry and, with ``terms``, ``(params, u, d, g)`` of the
        step (the parameters before it and the update split by
        :func:`step_terms`); else None.
        """
        params, opt_state = carry
        b_idx, b_valid = batch
        w = b_valid.astype(X.dtype)
        grads = jax.grad(self.layout.loss)(params, X[b_idx], Y[b_idx], w, self.spec)
        optimizer = make_optimizer(self.opt, hyper)
        if terms:
            data_only = make_optimizer(self.opt, decay_free_hyper(hyper))
            u, d, g, opt_state = step_terms(
                optimizer, data_only, grads, carry[1], params, linear=self.opt.name == "sgd",
                decays=(hyper["lmbda_over_n"] > 0) | (hyper.get("weight_decay", 0) > 0))
        else:
            u, opt_state = optimizer.update(grads, opt_state, params)
        live = self.layout.live(active, w)
        updates = jax.tree.map(lambda a: jnp.where(live, a, 0), u)
        return (optax.apply_updates(params, updates), opt_state), ((params, u, d, g) if terms else None)


def epoch(params, opt_state, hyper, X, Y, idx, valid, keys, epoch_no, active, rec_state=None, *,
          stepper: Stepper, m: int, recorder=None):
    """One epoch of every model of the stack; ``active`` ``(K,)`` freezes models without stopping the others.

    Returns ``(params, opt_state, rec_state, records)``; the last two are None
    without a ``recorder``.
    """
    lay = stepper.layout
    batches = shuffle(keys, epoch_no, idx, valid, m)
    if stepper.block and recorder is None:
        from .blocked import blocked_epoch

        params = blocked_epoch(params, hyper, X, Y, batches, active, spec=stepper.spec, opt=stepper.opt, L=lay.L,
                               block=stepper.block)
        return params, opt_state, rec_state, None  # plain SGD keeps no optimizer state
    like_p, like_s = params, opt_state
    params, opt_state, hyper = lay.enter(params), lay.enter(opt_state), lay.enter(hyper)
    body = partial(stepper, X=X, Y=Y, hyper=hyper, active=active)
    if recorder is None:
        (params, opt_state), _ = jax.lax.scan(lambda c, b: body(c, b), (params, opt_state), batches)
        records = None
    else:
        params, opt_state, rec_state, records = _recorded_scan(body, params, opt_state, rec_state, batches, recorder)
    return lay.leave(params, like_p), lay.leave(opt_state, like_s), rec_state, records


def _recorded_scan(body, params, opt_state, rec_state, batches, recorder):
    """The epoch's scan with a recorder: every step's terms go to ``recorder.step``; every
    ``recorder.every``-th step (the last of each chunk) to ``recorder.record``, and the
    epoch's last recorded step to ``recorder.snapshot`` as well."""
    n_batches = batches[0].shape[0]
    every = min(recorder.every, n_batches)
    n_rec = n_batches // every
    head = n_rec * every

    def plain(carry, batch):
        (p, s, acc) = carry
        (p, s), (p0, u, d, g) = body((p, s), batch, terms=True)
        return (p, s, recorder.step(acc, p0, u, d, g)), None

    def recorded(carry, batch):
        (p, s, acc) = carry
        (p, s), (p0, u, d, g) = body((p, s), batch, terms=True)
        return (p, s, recorder.step(acc, p0, u, d, g)), (p0, u, d, g)

    def chunk(carry, chunk_batches):
        carry, _ = jax.lax.scan(plain, carry, jax.tree.map(lambda a: a[:-1], chunk_batches))
        carry, terms = recorded(carry, jax.tree.map(lambda a: a[-1], chunk_batches))
        return carry, recorder.record(*terms)

    chunks = jax.tree.map(lambda a: a[:head].reshape(n_rec, every, *a.shape[1:]), batches)
    carry = (params, opt_state, rec_state)
    # The last chunk apart, so that only its full terms leave the scan.
    carry, recs = jax.lax.scan(chunk, carry, jax.tree.map(lambda a: a[:-1], chunks))
    last = jax.tree.map(lambda a: a[-1], chunks)
    carry, _ = jax.lax.scan(plain, carry, jax.tree.map(lambda a: a[:-1], last))
    carry, terms = recorded(carry, jax.tree.map(lambda a: a[-1], last))
    recs = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), recs, recorder.record(*terms))
    if head < n_batches:
        carry, _ = jax.lax.scan(plain, carry, jax.tree.map(lambda a: a[head:], batches))
    params, opt_state, rec_state = carry
    return params, opt_state, rec_state, {"records": recs, "snapshot": recorder.snapshot(*terms)}


# ---------------------------------------------------------------- monitoring


def metrics(params, hyper, n, sets, *, spec, which, penalty="l2", penalize_biases=False):
    """Per-model monitoring numbers, each ``(K,)``; costs include the penalty (``"penalty"``).

    ``hyper["lmbda"]`` is ``(K,)`` or ``(K, n_layers)``; ``hyper["l1_ratio"]``
    (elastic-net) defaults to 0.5. Decoupled weight decay is not in the cost.
    """
    out = {}
    pen = penalties.penalty_cost(penalty, params, hyper["lmbda"], n, l1_ratio=hyper.get("l1_ratio", 0.5),
                                 penalize_biases=penalize_biases)
    for name, (X, Y, member) in sets.items():
        if f"{name}_cost" in which or f"{name}_accuracy" in which:
            c0, acc = network.evaluate(spec, params, X, Y, member)
            out[f"{name}_cost"] = c0 + pen
            out[f"{name}_accuracy"] = acc
    out["penalty"] = pen
    out["zero_weight_fraction"] = penalties.zero_fraction(params)
    out["weight_sq_norm_per_layer"] = network.weight_sq_norms(params)
    return out


class EarlyStopping:
    """Per-model early stopping: a model stops once ``patience`` epochs pass without a new best.

    Nielsen's "no improvement in 10 epochs" rule, applied to each of the K
    models on its own. A NaN value never counts as an improvement.
    """

    def __init__(self, K: int, patience: int, *, higher_is_better: bool, key: str):
        self.patience = int(patience)
        self.sign = 1.0 if higher_is_better else -1.0
        self.key = key
        self.best = np.full(K, -np.inf)
        self.best_epoch = np.full(K, -1)
        self.stopped_epoch = np.zeros(K, int)  # 0 = still training

    def update(self, epoch: int, value, active) -> np.ndarray:
        """Record epoch ``epoch`` (0-based) values ``(K,)``; return the new ``active`` mask."""
        score = self.sign * np.asarray(value, np.float64)
        better = active & (score > self.best)  # NaN compares False
        self.best = np.where(better, score, self.best)
        self.best_epoch = np.where(better, epoch, self.best_epoch)
        stop = active & (epoch - self.best_epoch >= self.patience)
        self.stopped_epoch = np.where(stop, epoch + 1, self.stopped_epoch)
        return active & ~stop

    def state(self) -> dict:
        return {"best": self.best.tolist(), "best_epoch": self.best_epoch.tolist(),
                "stopped_epoch": self.stopped_epoch.tolist()}

    def load(self, state: dict) -> None:
        self.best = np.asarray(state["best"], np.float64)
        self.best_epoch = np.asarray(state["best_epoch"], int)
        self.stopped_epoch = np.asarray(state["stopped_epoch"], int)


def diverged(metrics_: dict, active, bound: float) -> np.ndarray:
    """Active models whose monitored cost or Σw² is NaN/inf, or whose cost exceeds ``bound``: ``(K,)`` bool."""
    costs = [metrics_[k] for k in metrics_ if k.endswith("_cost")]
    watched = np.stack(costs + [metrics_["weight_sq_norm"]])
    costs = np.stack(costs or [np.zeros_like(watched[0])])
    return active & (~np.isfinite(watched).all(axis=0) | (costs > bound).any(axis=0))


# ---------------------------------------------------------------- a stack


@dataclass(frozen=True)
class Members:
    """The per-model numbers of a stack of K = G·L models, model k = g·L + l in group g.

    ``lmbda`` ``(K,)`` (or ``(K, n_layers)``, a λ per weight layer), ``eta``
    ``(K,)``; ``momentum`` and ``weight_decay`` ``(K,)`` where the optimizer
    uses them.
    """

    lmbda: np.ndarray
    eta: np.ndarray
    momentum: np.ndarray | None = None
    weight_decay: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.lmbda)

    @classmethod
    def of(cls, opts: TrainOptions, *, lmbda, eta, momentum=None, weight_decay=None) -> "Members":
        """The one way to build a stack's members: K models differing by ``lmbda`` ``(K,)`` (or ``(K, n_layers)``)
        and ``eta`` (``(K,)``, or one η for all); ``momentum`` and ``weight_decay`` ``(K,)`` where they differ
        too (the train grid), else ``opts``' one value each where the optimizer uses it."""
        lmbda = np.asarray(lmbda, np.float64)
        K = len(lmbda)
        eta = np.broadcast_to(np.asarray(eta, np.float64), (K,)).copy()
        one = lambda given, values: (None if values is None and given is None  # noqa: E731
                                     else np.asarray(given, np.float64) if given is not None else np.full(K, values[0]))
        return cls(lmbda=lmbda, eta=eta, momentum=one(momentum, opts.momentum),
                   weight_decay=one(weight_decay, opts.weight_decay))


@dataclass
class StackResult:
    """What :func:`fit_stack` returns. ``history[name]`` is ``(epochs, K)``."""

    params: list  # the stack, as numpy arrays
    history: dict
    train_seconds: float
    compile_seconds: float
    epoch_seconds: list = field(default_factory=list)
    stopped_epoch: np.ndarray | None = None  # (K,) epochs each model trained (early stopping)
    best_epoch: np.ndarray | None = None  # (K,) 1-based epoch of the best monitored value
    diverged_epoch: np.ndarray | None = None  # (K,) 1-based epoch a model diverged at; 0 = never
    records: list | None = None  # per epoch, the recorder's output (numpy)
    rec_state: object = None  # the recorder's running state after the last epoch


@dataclass
class Plan:
    """Everything fixed before the first epoch: shapes, data on the device, the compiled functions."""

    spec: NetworkSpec
    opts: TrainOptions
    G: int
    L: int
    dtype: object
    n_per_model: np.ndarray  # (K,)
    args: tuple  # hyper, X, Y, idx, valid, keys: the epoch's fixed arguments
    sets: dict
    metric_hyper: dict
    stopper: EarlyStopping | None = None
    epoch_c: Callable | None = None
    metrics_c: Callable | None = None
    compile_seconds: float = 0.0

    @property
    def K(self) -> int:
        return self.G * self.L


def streams_of(groups):
    """Index and validity arrays ``(G, n_max)`` of the G streams (padded), and each stream's length."""
    n_g = np.array([len(g) for g in groups])
    idx = np.zeros((len(groups), int(n_g.max())), np.int32)
    valid = np.zeros_like(idx, bool)
    for g, ix in enumerate(groups):
        idx[g, : len(ix)] = ix
        valid[g, : len(ix)] = True
    return idx, valid, n_g


def _eval_sets(X, Y, streams, L, eval_sets, monitor, dtype) -> dict:
    """Device copies of the sets monitored each epoch; the training set is each group's own rows."""
    idx, valid, n_g = streams
    sets = {}
    if any(w.startswith("training") for w in monitor):
        if np.all(n_g == X.shape[0]):  # one stream, or seeds: every group trains on every row
            member = None
        else:  # folds: each group is scored on its own rows only
            member = network.Rows(to_device(idx), to_device(valid))
        sets["training"] = (X, Y, member)
    for name, (Xe, Ye, me) in (eval_sets or {}).items():
        if me is not None and not isinstance(me, network.Rows):
            me = to_device(me, dtype)
        sets[name] = (to_device(Xe, dtype), to_device(Ye), me)
    return sets


def make_plan(spec, X, Y, opts: TrainOptions, *, groups, group_seeds, members: Members, eval_sets=None,
              monitor=MONITORS) -> Plan:
    """The plan of one stack: its shapes, per-model numbers and monitored sets on the device."""
    G, K = len(groups), len(members)
    L = K // G
    dtype = jnp.float32 if X.dtype != np.float64 else jnp.float64
    X, Y = to_device(X, dtype), to_device(Y)
    streams = streams_of(groups)
    idx, valid, n_g = streams
    n_per_model = np.repeat(n_g, L).astype(np.float64)
    keys = to_device(np.stack([seed_keys(s)[1] for s in group_seeds]))  # stacked in NumPy: no compile
    hyper = make_hyper(members.eta, members.lmbda, n_per_model, dtype, penalty=opts.penalty,
                       optimizer=opts.optimizer, momentum=members.momentum, weight_decay=members.weight_decay,
                       l1_ratio=opts.l1_ratio if opts.l1_ratio is not None else 0.5)
    sets = _eval_sets(X, Y, streams, L, eval_sets, monitor, dtype)
    metric_hyper = {"lmbda": to_device(members.lmbda, dtype)}
    if opts.penalty == "elastic-net":
        metric_hyper["l1_ratio"] = to_device(np.broadcast_to(np.asarray(opts.l1_ratio, np.float64), (K,)), dtype)
    stopper = None
    if opts.early_stopping:
        if "evaluation" not in sets:
            raise ConfigError("early stopping monitors the evaluation set; give eval_sets={'evaluation': ...}.")
        stopper = EarlyStopping(K, opts.patience, higher_is_better=opts.stop_on == "accuracy",
                                key=f"evaluation_{opts.stop_on}")
    plan = Plan(spec, opts, G, L, dtype, n_per_model, (hyper, X, Y, to_device(idx), to_device(valid), keys),
                sets, metric_hyper, stopper)
    return plan


#: ``L2REG_ENGINE``: ``auto`` (the blocked path where it applies and pays), ``per-step`` or ``blocked``.
ENGINE_ENV = "L2REG_ENGINE"
#: The blocked path pays from this many models on (bench/bench_blocked.py: slower at K = 1, even at K = 4).
BLOCKED_MIN_MODELS = 4


def choose_block(opt: OptimizerSpec, hyper: dict, K: int, *, recorder=None) -> int:
    """B for the blocked first-layer path (:mod:`l2reg.core.blocked`), or 0 for the per-step path."""
    from . import blocked

    path = os.environ.get(ENGINE_ENV, "auto")
    if path == "per-step" or recorder is not None:
        return 0
    exact = blocked.applies_to(opt, jax.tree.map(np.asarray, hyper), block=blocked.DEFAULT_BLOCK)
    if not exact and path == "blocked":
        log.warning("%s=blocked: the blocked path needs plain SGD with L2 (or none) and a constant η; "
                    "using the per-step path.", ENGINE_ENV)
    return blocked.DEFAULT_BLOCK if exact and (path == "blocked" or K >= BLOCKED_MIN_MODELS) else 0


def compile_plan(plan: Plan, params, opt_state, *, recorder=None, rec_state=None, monitor=MONITORS) -> None:
    """Compile the epoch and the monitoring of ``plan`` (ahead of the loop, so compile time is measured apart)."""
    opts = plan.opts
    steps = -(-int(plan.args[3].shape[1]) // opts.batch_size)  # optimizer steps per epoch
    opt = OptimizerSpec.from_options(opts, steps)
    stepper = Stepper(plan.spec, opt, Layout(plan.G, plan.L), choose_block(opt, plan.args[0], plan.K,
                                                                           recorder=recorder))
    which = tuple(monitor) + ((plan.stopper.key,) if plan.stopper is not None else ())
    epoch_fn = jax.jit(partial(epoch, stepper=stepper, m=opts.batch_size, recorder=recorder), donate_argnums=(0, 1))
    metrics_fn = jax.jit(partial(metrics, spec=plan.spec, which=which, penalty=opts.penalty,
                                 penalize_biases=opts.penalize_biases))
    n_dev = to_device(plan.n_per_model, plan.dtype)
    t0 = time.perf_counter()
    epoch_c = epoch_fn.lower(params, opt_state, *plan.args, to_device(np.int32(0)), to_device(np.ones(plan.K, bool)),
                              rec_state).compile()
    metrics_c = metrics_fn.lower(params, plan.metric_hyper, n_dev, plan.sets).compile()
    plan.compile_seconds = time.perf_counter() - t0
    plan.epoch_c = epoch_c
    plan.metrics_c = lambda p: metrics_c(p, plan.metric_hyper, n_dev, plan.sets)


def initial_state(plan: Plan, group_seeds, params0=None):
    """``(params, opt_state)`` before the first epoch: the seeds' weights (or ``params0``) and a fresh optimizer state."""
    if params0 is None:
        params = init_stack(plan.spec, group_seeds, plan.L, plan.opts.init, plan.dtype)
    else:
        params = jax.tree.map(lambda a: to_device(np.array(a), plan.dtype), params0)  # a copy: the epoch donates it
    steps = -(-int(plan.args[3].shape[1]) // plan.opts.batch_size)
    opt_state = make_optimizer(OptimizerSpec.from_options(plan.opts, steps), plan.args[0]).init(params)
    return params, opt_state


# ---------------------------------------------------------------- the loop


@dataclass
class LoopState:
    """What the loop over epochs keeps besides the parameters: histories, masks, timings."""

    K: int
    history: dict = field(default_factory=dict)
    epoch_seconds: list = field(default_factory=list)
    active: np.ndarray = None
    diverged_epoch: np.ndarray = None
    records: list = field(default_factory=list)
    start: int = 0
    seconds_before: float = 0.0

    def __post_init__(self):
        self.active = np.ones(self.K, bool) if self.active is None else self.active
        self.diverged_epoch = np.zeros(self.K, int) if self.diverged_epoch is None else self.diverged_epoch

    def after_epoch(self, epoch: int, metrics_: dict, seconds: float, *, bound: float, stopper) -> None:
        """Freeze diverged models, append the epoch's numbers, then apply early stopping."""
        bad = diverged(metrics_, self.active, bound)
        if bad.any():
            self.diverged_epoch[bad] = epoch + 1
            self.active = self.active & ~bad
            log.warning("%d configuration(s) diverged at epoch %d and were frozen", int(bad.sum()), epoch + 1)
        metrics_["diverged"] = self.diverged_epoch > 0
        self.epoch_seconds.append(seconds)
        for k, v in metrics_.items():
            self.history.setdefault(k, []).append(v)
        if stopper is not None:
            self.active = stopper.update(epoch, metrics_[stopper.key], self.active)
            if not self.active.any():
                log.info("early stopping: every model stopped by epoch %d", epoch + 1)

    def meta(self, epoch: int, epochs: int, seconds: float, config: dict, stopper) -> dict:
        """The JSON part of a checkpoint after epoch ``epoch`` (0-based)."""
        return {
            "config": config, "epoch": epoch + 1, "epochs": epochs, "train_seconds": seconds,
            # JSON keeps every float32 exactly as a double; the dtype brings the arrays back bit for bit.
            "history": {k: {"dtype": str(np.asarray(vs[0]).dtype), "values": np.stack(vs).tolist()}
                        for k, vs in self.history.items()},
            "epoch_seconds": self.epoch_seconds, "active": self.active.tolist(),
            "diverged_epoch": self.diverged_epoch.tolist(), "stopper": None if stopper is None else stopper.state(),
        }

    def restore(self, meta: dict, stopper) -> None:
        self.start, self.seconds_before = meta["epoch"], meta["train_seconds"]
        self.history = {k: list(np.asarray(h["values"], h["dtype"])) for k, h in meta["history"].items()}
        self.epoch_seconds = list(meta["epoch_seconds"])
        self.active = np.asarray(meta["active"], bool)
        self.diverged_epoch = np.asarray(meta["diverged_epoch"], int)
        if stopper is not None:
            stopper.load(meta["stopper"])


def _resume(plan: Plan, checkpoint: Checkpointing, state: LoopState, params, opt_state):
    saved, meta = ckpt.load(checkpoint.path, {"params": params, "opt_state": opt_state})
    ckpt.check_same_config(meta.get("config", {}), checkpoint.config or {}, ignore=())
    state.restore(meta, plan.stopper)
    log.info("resuming from epoch %d of %d (%s)", state.start, plan.opts.epochs, checkpoint.path)
    return jax.tree.map(to_device, saved["params"]), jax.tree.map(to_device, saved["opt_state"])


def compile_stack(spec: NetworkSpec, X, Y, opts: TrainOptions, *, groups: Sequence[np.ndarray],
                  group_seeds: Sequence[int], members: Members, eval_sets: dict | None = None,
                  monitor: Sequence[str] = MONITORS) -> bool:
    """Compile what :func:`fit_stack` with these arguments would (its epoch and monitoring) into JAX's
    persistent compilation cache, training nothing, so that fit_stack then loads them; another thread may
    run this while this one trains another stack. Returns False (and does nothing) with the cache off."""
    if compile_cache.configure() is None:
        return False
    plan = make_plan(spec, X, Y, opts, groups=groups, group_seeds=group_seeds, members=members,
                     eval_sets=eval_sets, monitor=monitor)
    params, opt_state = initial_state(plan, group_seeds)
    compile_plan(plan, params, opt_state, monitor=monitor)
    return True


def fit_stack(spec: NetworkSpec, X, Y, opts: TrainOptions, *, groups: Sequence[np.ndarray],
              group_seeds: Sequence[int], members: Members, eval_sets: dict | None = None,
              monitor: Sequence[str] = MONITORS, on_epoch: Callable | None = None,
              checkpoint: Checkpointing | None = None, params0=None, recorder=None,
              divergence_bound: float = DIVERGENCE_BOUND) -> StackResult:
    """Train K = G·L models in one pass over the data per epoch. Arguments are trusted (``opts`` checked).

    * ``groups``: G index arrays into ``X``; group g's models train on those
      examples, n = its length, in a data order drawn from ``group_seeds[g]``
      (which also draws the initial weights, shared by the group's L models).
    * ``members``: the per-model λ, η, μ, wd (:class:`Members`); everything
      else (epochs, m, optimizer, penalty, schedule, early stopping) from ``opts``.
    * ``eval_sets``: name -> ``(X, Y, member)``, evaluated after every epoch
      (``member`` ``(n, K)`` or None). The training set is added as
      ``"training"`` with each group's own examples when ``monitor`` asks.
    * ``on_epoch(epoch, metrics)``: called with ``(None, None)`` before compiling, then after every epoch.
    * ``checkpoint``: rewritten atomically as :class:`Checkpointing` says (:mod:`l2reg.base.checkpoint`);
      with ``resume`` the run continues from it, to the same result as an
      uninterrupted run. Ctrl-C then stops after the current epoch and raises
      :class:`~l2reg.errors.Interrupted`.
    * ``recorder``: rides along every step (``l2reg explain``); see :func:`epoch`.
    * Divergence: a model whose monitored cost or Σw² becomes NaN/inf, or whose
      cost exceeds ``divergence_bound``, is frozen and ``diverged_epoch[k]`` records the epoch.
    """
    compile_cache.configure()  # the first compile of the process turns the persistent cache on
    plan = make_plan(spec, X, Y, opts, groups=groups, group_seeds=group_seeds, members=members,
                     eval_sets=eval_sets, monitor=monitor)
    params, opt_state = initial_state(plan, group_seeds, params0)
    rec_state = None if recorder is None else recorder.init(params)
    interrupts.phase("compile")
    if on_epoch is not None:
        on_epoch(None, None)  # about to compile
    compile_plan(plan, params, opt_state, recorder=recorder, rec_state=rec_state, monitor=monitor)
    state = LoopState(plan.K)
    if checkpoint is not None and checkpoint.resume:
        params, opt_state = _resume(plan, checkpoint, state, params, opt_state)
    # Ctrl-C stops cleanly after an epoch when there is a checkpoint to continue from (or the CLI asked).
    with interrupts.graceful() if checkpoint is not None else nullcontext():
        t_start = time.perf_counter() - state.seconds_before
        for epoch_no in range(state.start, opts.epochs):
            if interrupts.requested() or not state.active.any():
                break
            t0 = time.perf_counter()
            params, opt_state, rec_state, recs = plan.epoch_c(
                params, opt_state, *plan.args, to_device(np.int32(epoch_no)), to_device(state.active), rec_state)
            metrics_ = {k: np.asarray(v) for k, v in plan.metrics_c(params).items()}
            metrics_["weight_sq_norm"] = metrics_["weight_sq_norm_per_layer"].sum(axis=1)
            if recs is not None:
                state.records.append(jax.tree.map(np.asarray, recs))
            state.after_epoch(epoch_no, metrics_, time.perf_counter() - t0, bound=divergence_bound,
                              stopper=plan.stopper)
            if on_epoch is not None:
                on_epoch(epoch_no, metrics_)
            interrupts.pause_point("epoch")
            if checkpoint is not None and checkpoint.due(epoch_no == opts.epochs - 1 or not state.active.any()):
                interrupts.pause_point("checkpoint")
                ckpt.save(checkpoint.path, {"params": params, "opt_state": opt_state}, state.meta(
                    epoch_no, opts.epochs, time.perf_counter() - t_start, checkpoint.config, plan.stopper))
                checkpoint.saved()
        done = len(state.epoch_seconds)
        if interrupts.requested() and done < opts.epochs and state.active.any():
            raise Interrupted(f"stopped after epoch {done} of {opts.epochs}.", epoch=done,
                              checkpoint=None if checkpoint is None else checkpoint.path)
    return _result(plan, state, params, rec_state, time.perf_counter() - t_start)


def _result(plan: Plan, state: LoopState, params, rec_state, train_seconds: float) -> StackResult:
    runs = len(state.epoch_seconds)
    stopper = plan.stopper
    return StackResult(
        params=jax.tree.map(np.asarray, params),
        history={k: np.stack(v) for k, v in state.history.items()},
        train_seconds=train_seconds, compile_seconds=plan.compile_seconds, epoch_seconds=state.epoch_seconds,
        stopped_epoch=np.full(plan.K, runs) if stopper is None else np.where(
            stopper.stopped_epoch > 0, stopper.stopped_epoch, runs),
        best_epoch=None if stopper is None else stopper.best_epoch + 1,
        diverged_epoch=state.diverged_epoch, records=state.records or None,
        rec_state=None if rec_state is None else jax.tree.map(np.asarray, rec_state),
    )
