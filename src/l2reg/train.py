"""Training: mini-batch SGD on the L2-regularized cost, K models at once.

The update of every weight, per mini-batch of m examples, is

    w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w        (n = training-set size)
    b ← b − (η/m)·Σ_x ∂C0_x/∂b

built from optax transforms in :func:`make_optimizer`: the penalty's
gradient (λ/n)·w is added by ``add_decayed_weights`` (weights only), then
``sgd(η)`` scales the sum by −η.

One epoch is one jit-compiled call (:func:`_epoch`): the mini-batches are
drawn on the device from a seeded permutation and ``lax.scan`` runs the steps.
The K models of a stack (one per λ, seed, fold, ...) train in the same pass;
a single λ is K = 1.
"""

from __future__ import annotations

import itertools
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _callable_module
from . import checkpoint as ckpt
from . import network, penalties, store
from .data import Dataset, load_dataset
from .errors import ConfigError, ConfigTypeError, Interrupted
from .network import NetworkSpec
from . import validation as V

log = logging.getLogger(__name__)

MONITORS = ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy")
#: Mini-batch optimizers of :func:`make_optimizer`; ``train`` also takes
#: ``"lbfgs"`` (full batch, :mod:`l2reg.fullbatch`).
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
DECAY_SCALINGS = ("lr", "schedule")
SCHEDULES = ("constant", "step", "cosine")
STOP_ON = ("accuracy", "cost")
#: Defaults of the options that only some optimizers use (PyTorch's where it has one).
DEFAULT_MOMENTUM = 0.9
DEFAULT_WEIGHT_DECAY = 0.01
DEFAULT_PATIENCE = 10  # Nielsen's "no improvement in 10 epochs" rule
#: A cost above this (or a NaN/inf cost or Σw²) marks a configuration as diverged.
DIVERGENCE_BOUND = 1e6


# ---------------------------------------------------------------- the update


@dataclass(frozen=True)
class OptimizerSpec:
    """Static choice of update rule (hashable: it keys the jit cache).

    Per-model numbers (η, λ/n, momentum, weight decay, ρ) live in ``hyper``.
    Schedule lengths are in optimizer steps (mini-batches).
    """

    penalty: str = "l2"
    name: str = "sgd"
    l1_update: str = "subgradient"
    penalize_biases: bool = False
    decay_scaling: str = "lr"
    schedule: str = "constant"
    warmup_steps: int = 0
    decay_steps: int = 0  # cosine: steps from the end of warm-up to the end; step: steps per drop
    step_gamma: float = 0.1
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def without_decay(self) -> "OptimizerSpec":
        """The same update rule with no penalty and no weight decay (AdamW becomes Adam)."""
        return replace(self, penalty="none", name="adam" if self.name == "adamw" else self.name)


def lr_multiplier(opt: OptimizerSpec) -> Callable:
    """The schedule multiplier s_t = η_t/η_0 as a function of the step count (optax schedules).

    ``constant``: 1; ``step``: ×``step_gamma`` every ``decay_steps`` steps;
    ``cosine``: ½(1 + cos(π·t/decay_steps)), from 1 to 0. A warm-up of W steps
    goes first, linearly from 1/W to 1, and the main schedule starts after it.
    """
    if opt.schedule == "step":
        main = optax.exponential_decay(1.0, max(opt.decay_steps, 1), opt.step_gamma, staircase=True)
    elif opt.schedule == "cosine":
        main = optax.cosine_decay_schedule(1.0, max(opt.decay_steps, 1))
    else:
        main = optax.constant_schedule(1.0)
    if opt.warmup_steps <= 0:
        return main
    W = opt.warmup_steps
    return optax.join_schedules([optax.linear_schedule(1.0 / W, 1.0, W - 1), main], [W])


def make_optimizer(opt: OptimizerSpec, hyper: dict) -> optax.GradientTransformation:
    """The optax chain of one stack of models.

    ``hyper`` holds ``(K, 1)`` arrays (one value per model, broadcasting
    against every parameter leaf): ``"eta"`` and ``"lmbda_over_n"`` (or a
    list of those, one per layer), and where used ``"momentum"``,
    ``"weight_decay"``, ``"l1_ratio"``. η_t = η·s_t with s_t the schedule
    (:func:`lr_multiplier`); g = ∂C0/∂w, the mini-batch mean.

    With ``penalty="l2"`` and ``sgd`` this is coupled L2:

        g ← ∂C0/∂w + (λ/n)·w          add_decayed_weights(λ/n, weights only)
        w ← w − η·g                    sgd(η)
          = (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w

    Every coupled penalty (:func:`l2reg.penalties.coupled_penalty`: l2, l1's
    (λ/n)·sgn(w), elastic-net) is added to g first, then:

        sgd       w ← w − η_t·g
        momentum  v ← μ·v + g;  w ← w − η_t·v                (PyTorch SGD(momentum=μ))
        nesterov  v ← μ·v + g;  w ← w − η_t·(g + μ·v)
        adam      w ← w − η_t·m̂/(√v̂ + ε)    m̂, v̂ of g *including* the penalty (coupled)
        adamw     w ← w − η_t·(m̂/(√v̂ + ε) + wd·w)            decay_scaling "lr" (= optax.adamw)
                  w ← w − η_t·m̂/(√v̂ + ε) − wd·s_t·w          decay_scaling "schedule" (the paper's)

    AdamW's decay is decoupled: outside the moments of g, never in the cost.
    With ``l1_update="prox"`` the L1 part is not added to g; the step above is
    followed by the soft threshold (:func:`l2reg.penalties.l1_prox`).
    """
    eta = hyper["eta"]
    s = lr_multiplier(opt)
    lr = eta if opt.schedule == "constant" and opt.warmup_steps <= 0 else (lambda count: eta * s(count))
    mask = partial(penalties.decay_mask, penalize_biases=opt.penalize_biases)
    lmbda_over_n, l1_ratio = hyper["lmbda_over_n"], hyper.get("l1_ratio", 0.5)
    prox = opt.l1_update == "prox" and opt.penalty in ("l1", "elastic-net")
    parts = [] if prox else [penalties.coupled_penalty(opt.penalty, lmbda_over_n, l1_ratio=l1_ratio, mask=mask)]
    if opt.name in ("sgd", "momentum", "nesterov"):
        momentum = None if opt.name == "sgd" else hyper.get("momentum", DEFAULT_MOMENTUM)
        parts.append(optax.sgd(lr, momentum=momentum, nesterov=opt.name == "nesterov"))
    elif opt.name == "adam":
        parts += [optax.scale_by_adam(opt.b1, opt.b2, opt.eps), optax.scale_by_learning_rate(lr)]
    elif opt.name == "adamw":
        wd = hyper.get("weight_decay", DEFAULT_WEIGHT_DECAY)
        parts.append(optax.scale_by_adam(opt.b1, opt.b2, opt.eps))
        if opt.decay_scaling == "lr":
            parts += [penalties.decoupled_weight_decay(wd, mask), optax.scale_by_learning_rate(lr)]
        else:
            parts += [optax.scale_by_learning_rate(lr), penalties.scheduled_weight_decay(wd, s, mask)]
    else:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {opt.name!r}.")
    if prox:
        rho = 1.0 if opt.penalty == "l1" else l1_ratio
        parts.append(penalties.l1_prox(lmbda_over_n, lr, l1_ratio=rho, mask=mask))
    return optax.chain(*parts)


def make_hyper(eta, lmbda, n, dtype=jnp.float32, *, penalty="l2", optimizer="sgd", momentum=None,
               weight_decay=None, l1_ratio=0.5) -> dict:
    """The per-model numbers of :func:`make_optimizer`, each ``(K, 1)``.

    ``eta`` and ``n`` (each model's training-set size) are ``(K,)``;
    ``lmbda`` is ``(K,)``, or ``(K, n_layers)`` for a λ per layer, which gives
    ``"lmbda_over_n"`` as a list with one ``(K, 1)`` array per layer.
    ``momentum`` (momentum, nesterov), ``weight_decay`` (adamw) and
    ``l1_ratio`` (elastic-net) are numbers or ``(K,)`` and only kept where used.
    """
    K = len(eta)
    col = lambda a: jnp.asarray(np.broadcast_to(np.asarray(a, np.float64), (K,))[:, None], dtype)  # noqa: E731  (K, 1)
    n = np.asarray(n, np.float64)
    lam = np.asarray(lmbda, np.float64)
    hyper = {"eta": col(eta)}
    hyper["lmbda_over_n"] = [col(lam[:, l] / n) for l in range(lam.shape[1])] if lam.ndim == 2 else col(lam / n)
    if optimizer in ("momentum", "nesterov"):
        hyper["momentum"] = col(DEFAULT_MOMENTUM if momentum is None else momentum)
    if optimizer == "adamw":
        hyper["weight_decay"] = col(DEFAULT_WEIGHT_DECAY if weight_decay is None else weight_decay)
    if penalty == "elastic-net":
        hyper["l1_ratio"] = col(l1_ratio)
    return hyper


# ---------------------------------------------------------------- one epoch


def _per_model(a, L: int):
    """Per-group batch data ``(G, m, ...)`` to per-model ``(m, K, ...)`` (or ``(m, 1, ...)`` for G = 1)."""
    a = jnp.swapaxes(a, 0, 1)
    return a if a.shape[1] == 1 else jnp.repeat(a, L, axis=1)


def _batch_loss(params, x, y, w, spec: NetworkSpec, L: int):
    """Σ over models of each model's mean C0 on its mini-batch.

    ``w`` ``(G, m)`` is 1 for real examples and 0 for padding. Because the
    models share no parameters, the gradient of this sum with respect to a
    model's parameters is that model's own gradient of its mean C0.
    """
    z = network.logits(spec, params, x[0] if x.shape[0] == 1 else x)  # (m, K, n_out)
    t = _per_model(network.targets(spec, y, spec.sizes[-1]), L)
    wk = _per_model(w, L)  # (m, K) or (m, 1)
    c = network.cost_per_example(spec, z, t)  # (m, K)
    return jnp.sum(jnp.sum(c * wk, axis=0) / jnp.maximum(jnp.sum(wk, axis=0), 1.0))


def _shuffle(keys, epoch, idx, valid, m: int):
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


def _grouped_loss(params, x, y, w, spec: NetworkSpec):
    """As :func:`_batch_loss`, for a group-major stack: ``x`` ``(G, m, n_in)``, ``w`` ``(G, m)``."""
    z = network.logits_grouped(spec, params, x)  # (G, m, L, n_out)
    t = network.targets(spec, y, spec.sizes[-1])[:, :, None]
    c = network.cost_per_example(spec, z, t)  # (G, m, L)
    wk = w[:, :, None]
    return jnp.sum(jnp.sum(c * wk, axis=1) / jnp.maximum(jnp.sum(wk, axis=1), 1.0))


def _epoch_grouped(params, opt_state, hyper, X, Y, batches, active, *, spec, opt, L):
    """:func:`_epoch` for G > 1 data streams (seeds, folds), in group-major layout.

    The stack, the optimizer state and the hyperparameters are put in
    group-major layout once per epoch (:func:`network.to_groups`), so that
    each step's first layer is a batched GEMM; the update is the same optax
    chain, elementwise, so its result does not depend on the layout.
    """
    G = batches[0].shape[1]
    like_p, like_s = params, opt_state
    params, opt_state = network.to_groups(params, G), network.to_groups(opt_state, G)
    optimizer = make_optimizer(opt, network.to_groups(hyper, G))
    active = active.reshape(G, L)

    def step(carry, batch):
        params, opt_state = carry
        b_idx, b_valid = batch  # (G, m)
        w = b_valid.astype(X.dtype)
        grads = jax.grad(_grouped_loss)(params, X[b_idx], Y[b_idx], w, spec)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        live = (active & (w.sum(1) > 0)[:, None])[:, None, :, None]  # (G, 1, L, 1)
        updates = jax.tree.map(lambda u: jnp.where(live, u, 0), updates)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), batches)
    return network.from_groups(params, like_p), network.from_groups(opt_state, like_s)


def _epoch(params, opt_state, hyper, X, Y, idx, valid, keys, epoch, active, *, spec, opt, m, L):
    """One epoch of mini-batch training for every model of the stack.

    ``active`` ``(K,)`` freezes models (diverged, stopped early) without
    stopping the others.
    """
    if idx.shape[0] > 1:
        batches = _shuffle(keys, epoch, idx, valid, m)
        return _epoch_grouped(params, opt_state, hyper, X, Y, batches, active, spec=spec, opt=opt, L=L)
    optimizer = make_optimizer(opt, hyper)
    batches = _shuffle(keys, epoch, idx, valid, m)

    def step(carry, batch):
        params, opt_state = carry
        b_idx, b_valid = batch  # (G, m)
        w = b_valid.astype(X.dtype)
        grads = jax.grad(_batch_loss)(params, X[b_idx], Y[b_idx], w, spec, L)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        # A model whose group has no examples left this epoch takes no step.
        live = (active & (_per_model(w, L).sum(0) > 0))[:, None]  # (K, 1)
        updates = jax.tree.map(lambda u: jnp.where(live, u, 0), updates)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), batches)
    return params, opt_state


def _metrics(params, hyper, n, sets, *, spec, which, penalty="l2", penalize_biases=False):
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


# ---------------------------------------------------------------- a stack


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


def fit_stack(
    spec: NetworkSpec,
    X,
    Y,
    *,
    groups: Sequence[np.ndarray],
    group_seeds: Sequence[int],
    lmbda: np.ndarray,
    eta: np.ndarray,
    epochs: int,
    batch_size: int,
    init: str = "default",
    penalty: str = "l2",
    eval_sets: dict | None = None,
    monitor: Sequence[str] = MONITORS,
    on_epoch: Callable[[int | None, dict | None], None] | None = None,
    params0: list | None = None,
    optimizer: str = "sgd",
    momentum=None,
    weight_decay=None,
    l1_ratio=0.5,
    l1_update: str = "subgradient",
    penalize_biases: bool = False,
    decay_scaling: str = "lr",
    schedule: str = "constant",
    warmup_epochs: int = 0,
    step_epochs: int | None = None,
    step_gamma: float = 0.1,
    early_stopping: bool = False,
    patience: int = DEFAULT_PATIENCE,
    stop_on: str = "accuracy",
    checkpoint: str | Path | None = None,
    checkpoint_config: dict | None = None,
    resume: bool = False,
    divergence_bound: float = DIVERGENCE_BOUND,
) -> StackResult:
    """Train K = G·L models in one pass over the data. Arguments are trusted.

    * ``groups``: G index arrays into ``X``; group g's models train on those
      examples, n = its length, in a data order drawn from ``group_seeds[g]``
      (which also draws the initial weights, shared by the group's L models).
    * ``lmbda``, ``eta``: ``(K,)``, model k = g·L + l belonging to group g;
      ``lmbda`` may be ``(K, n_layers)``, a λ per weight layer.
    * ``eval_sets``: name -> ``(X, Y, member)``, evaluated after every epoch
      (``member`` ``(n, K)`` or None). The training set is added as
      ``"training"`` with each group's own examples.
    * ``optimizer`` and the options after it: see :func:`make_optimizer`
      and :func:`train`. ``momentum``, ``weight_decay`` and ``l1_ratio`` are
      numbers or ``(K,)`` arrays; schedule lengths are in epochs.
    * ``early_stopping``: a model stops (is frozen, the others go on) once
      its ``evaluation_{stop_on}`` has not improved for ``patience`` epochs;
      the loop ends when every model has stopped. ``stopped_epoch`` and
      ``best_epoch`` of the result say when (1-based).
    * ``checkpoint``: a file rewritten atomically after every epoch with the
      parameters and optimizer state of all K models, the histories and the
      masks (:mod:`l2reg.checkpoint`); ``checkpoint_config`` (JSON) is stored
      with it. ``resume=True`` continues from it after checking that its
      config equals ``checkpoint_config``; the result equals an uninterrupted
      run's (the data order is a pure function of seed and epoch). With a
      checkpoint, Ctrl-C stops after the current epoch, saves and raises
      :class:`~l2reg.errors.Interrupted`.
    * Divergence: a model whose monitored cost or Σw² becomes NaN/inf, or
      whose cost exceeds ``divergence_bound``, is frozen (the others go on)
      and ``diverged_epoch[k]`` records the epoch (1-based; 0 = never).
    """
    G = len(groups)
    K = len(lmbda)
    L = K // G
    dtype = jnp.float32 if X.dtype != np.float64 else jnp.float64
    X = jnp.asarray(X, dtype)
    Y = jnp.asarray(Y)

    n_g = np.array([len(g) for g in groups])
    n_max = int(n_g.max())
    idx = np.zeros((G, n_max), np.int32)
    valid = np.zeros((G, n_max), bool)
    for g, ix in enumerate(groups):
        idx[g, : len(ix)] = ix
        valid[g, : len(ix)] = True
    n_per_model = np.repeat(n_g, L).astype(np.float64)

    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(int(s)), 1) for s in group_seeds])
    if params0 is None:
        models = [network.init_params(spec, jax.random.fold_in(jax.random.PRNGKey(int(s)), 0), init, dtype)
                  for s in group_seeds]
        params = network.stack(models, repeats=L)
    else:
        params = jax.tree.map(lambda a: jnp.array(a, dtype), params0)

    hyper = make_hyper(eta, lmbda, n_per_model, dtype, penalty=penalty, optimizer=optimizer, momentum=momentum,
                       weight_decay=weight_decay, l1_ratio=l1_ratio)
    steps = -(-n_max // batch_size)  # optimizer steps per epoch
    warmup = int(warmup_epochs) * steps
    drop = (step_epochs if step_epochs is not None else max(1, epochs // 3)) * steps
    opt = OptimizerSpec(
        penalty=penalty, name=optimizer, l1_update=l1_update, penalize_biases=bool(penalize_biases),
        decay_scaling=decay_scaling, schedule=schedule, warmup_steps=warmup,
        decay_steps=drop if schedule == "step" else max(1, epochs * steps - warmup), step_gamma=float(step_gamma),
    )
    opt_state = make_optimizer(opt, hyper).init(params)
    active = np.ones(K, bool)

    sets = {}
    if any(w.startswith("training") for w in monitor):
        if G == 1 and n_g[0] == X.shape[0]:
            member = None
        else:
            member = np.zeros((X.shape[0], K), np.float32)
            for g, ix in enumerate(groups):
                member[ix, g * L : (g + 1) * L] = 1.0
        sets["training"] = (X, Y, None if member is None else jnp.asarray(member, dtype))
    for name, (Xe, Ye, me) in (eval_sets or {}).items():
        sets[name] = (jnp.asarray(Xe, dtype), jnp.asarray(Ye), None if me is None else jnp.asarray(me, dtype))
    metric_hyper = {"lmbda": jnp.asarray(lmbda, dtype)}
    if penalty == "elastic-net":
        metric_hyper["l1_ratio"] = jnp.asarray(np.broadcast_to(np.asarray(l1_ratio, np.float64), (K,)), dtype)
    n_dev = jnp.asarray(n_per_model, dtype)
    which = tuple(monitor)
    stopper = None
    if early_stopping:
        if "evaluation" not in sets:
            raise ConfigError("early stopping monitors the evaluation set; give eval_sets={'evaluation': ...}.")
        stopper = EarlyStopping(K, patience, higher_is_better=stop_on == "accuracy", key=f"evaluation_{stop_on}")
        which += (stopper.key,)

    epoch_fn = jax.jit(partial(_epoch, spec=spec, opt=opt, m=batch_size, L=L), donate_argnums=(0, 1))
    metrics_fn = jax.jit(partial(_metrics, spec=spec, which=which, penalty=penalty,
                                 penalize_biases=bool(penalize_biases)))
    args = (hyper, X, Y, jnp.asarray(idx), jnp.asarray(valid), keys)
    if on_epoch is not None:
        on_epoch(None, None)  # about to compile
    t0 = time.perf_counter()
    epoch_c = epoch_fn.lower(params, opt_state, *args, jnp.int32(0), jnp.asarray(active)).compile()
    metrics_c = metrics_fn.lower(params, metric_hyper, n_dev, sets).compile()
    compile_seconds = time.perf_counter() - t0

    history: dict[str, list] = {}
    epoch_seconds = []
    diverged_epoch = np.zeros(K, int)
    start, seconds_before = 0, 0.0
    if resume:
        state, meta = ckpt.load(checkpoint, {"params": params, "opt_state": opt_state})
        ckpt.check_same_config(meta.get("config", {}), checkpoint_config or {}, ignore=())
        params = jax.tree.map(jnp.asarray, state["params"])
        opt_state = jax.tree.map(jnp.asarray, state["opt_state"])
        start, seconds_before = meta["epoch"], meta["train_seconds"]
        # JSON keeps every float32 exactly as a double; the dtype brings the arrays back bit for bit.
        history = {k: list(np.asarray(h["values"], h["dtype"])) for k, h in meta["history"].items()}
        epoch_seconds = meta["epoch_seconds"]
        active = np.asarray(meta["active"], bool)
        diverged_epoch = np.asarray(meta["diverged_epoch"], int)
        if stopper is not None:
            stopper.load(meta["stopper"])
        log.info("resuming from epoch %d of %d (%s)", start, epochs, checkpoint)

    interrupted = []
    previous_handler = None
    if checkpoint is not None and threading.current_thread() is threading.main_thread():
        def on_sigint(signum, frame):
            if interrupted:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            interrupted.append(signum)
            log.warning("stopping after this epoch (Ctrl-C again to stop now)")

        previous_handler = signal.signal(signal.SIGINT, on_sigint)
    try:
        t_start = time.perf_counter() - seconds_before
        for epoch in range(start, epochs):
            if interrupted or not active.any():
                break
            params, opt_state, active = _run_epoch(
                epoch, epoch_c, metrics_c, params, opt_state, args, active, metric_hyper, n_dev, sets,
                history, epoch_seconds, diverged_epoch, divergence_bound, on_epoch, stopper,
            )
            if checkpoint is not None:
                ckpt.save(checkpoint, {"params": params, "opt_state": opt_state}, {
                    "config": checkpoint_config or {}, "epoch": epoch + 1, "epochs": epochs,
                    "train_seconds": time.perf_counter() - t_start,
                    "history": {k: {"dtype": str(np.asarray(vs[0]).dtype), "values": np.stack(vs).tolist()}
                                for k, vs in history.items()},
                    "epoch_seconds": epoch_seconds, "active": active.tolist(),
                    "diverged_epoch": diverged_epoch.tolist(),
                    "stopper": None if stopper is None else stopper.state(),
                })
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    if interrupted and len(epoch_seconds) < epochs and active.any():
        done = len(epoch_seconds)
        raise Interrupted(f"interrupted after epoch {done} of {epochs}; every finished epoch is saved in {checkpoint}.",
                          epoch=done, checkpoint=checkpoint)
    train_seconds = time.perf_counter() - t_start
    epochs_run = len(epoch_seconds)
    return StackResult(
        params=jax.tree.map(np.asarray, params),
        history={k: np.stack(v) for k, v in history.items()},
        train_seconds=train_seconds,
        compile_seconds=compile_seconds,
        epoch_seconds=epoch_seconds,
        stopped_epoch=np.full(K, epochs_run) if stopper is None else np.where(
            stopper.stopped_epoch > 0, stopper.stopped_epoch, epochs_run),
        best_epoch=None if stopper is None else stopper.best_epoch + 1,
        diverged_epoch=diverged_epoch,
    )


def _run_epoch(epoch, epoch_c, metrics_c, params, opt_state, args, active, metric_hyper, n_dev, sets,
               history, epoch_seconds, diverged_epoch, divergence_bound, on_epoch, stopper):
    """One epoch of the loop: train, monitor, freeze diverged models, early stopping."""
    t0 = time.perf_counter()
    params, opt_state = epoch_c(params, opt_state, *args, jnp.int32(epoch), jnp.asarray(active))
    metrics = {k: np.asarray(v) for k, v in metrics_c(params, metric_hyper, n_dev, sets).items()}
    metrics["weight_sq_norm"] = metrics["weight_sq_norm_per_layer"].sum(axis=1)
    watched = np.stack([metrics[k] for k in metrics if k.endswith("_cost")] + [metrics["weight_sq_norm"]])
    costs = np.stack([metrics[k] for k in metrics if k.endswith("_cost")] or [np.zeros_like(watched[0])])
    bad = active & (~np.isfinite(watched).all(axis=0) | (costs > divergence_bound).any(axis=0))
    if bad.any():
        diverged_epoch[bad] = epoch + 1
        active = active & ~bad
        log.warning("%d configuration(s) diverged at epoch %d and were frozen", int(bad.sum()), epoch + 1)
    metrics["diverged"] = diverged_epoch > 0
    epoch_seconds.append(time.perf_counter() - t0)
    for k, v in metrics.items():
        history.setdefault(k, []).append(v)
    if on_epoch is not None:
        on_epoch(epoch, metrics)
    if stopper is not None:
        active = stopper.update(epoch, metrics[stopper.key], active)
        if not active.any():
            log.info("early stopping: every model stopped by epoch %d", epoch + 1)
    return params, opt_state, active


# ---------------------------------------------------------------- the API


@dataclass
class TrainResult:
    """The result of :func:`train`.

    ``runs`` matches ``metrics.json``: one dict per (seed, λ) with per-epoch
    lists. ``params[r]`` is run r's list of ``{"w": (n_in, n_out), "b": (n_out,)}``.
    """

    config: dict
    runs: list
    params: list
    train_seconds: float
    compile_seconds: float
    notes: tuple = ()

    def to_json(self) -> dict:
        return {
            "config": self.config,
            "runs": self.runs,
            "train_seconds": self.train_seconds,
            "compile_seconds": self.compile_seconds,
        }

    def save(self, out) -> None:
        """Write ``out/metrics.json`` and ``out/params.npz`` (atomically, no pickle).

        ``params.npz`` holds ``w{l}`` ``(runs, n_in, n_out)`` and ``b{l}``
        ``(runs, n_out)`` for each layer l, with ``lmbda`` and ``seed`` per run.
        """
        out = Path(out)
        arrays = {"lmbda": np.array([r["lmbda"] for r in self.runs]), "seed": np.array([r["seed"] for r in self.runs])}
        for i in range(len(self.params[0])):
            arrays[f"w{i}"] = np.stack([p[i]["w"] for p in self.params])
            arrays[f"b{i}"] = np.stack([p[i]["b"] for p in self.params])
        store.write_npz(out / "params.npz", arrays)
        store.write_json(out / "metrics.json", self.to_json())


def resume_kwargs(run_dir, given: dict, explicit: set) -> dict:
    """Options to resume the run in ``run_dir``: the checkpoint's own, except those given explicitly.

    An explicitly given option that differs from the checkpoint's is then
    refused by :func:`train`, which names it.
    """
    meta = ckpt.read_meta(Path(run_dir) / ckpt.FILENAME)
    saved = meta.get("config", {})
    out = dict(given)
    for name in given:
        if name not in explicit and name in saved:
            out[name] = saved[name]
    return out


def _resolve_sizes(sizes, data: Dataset, regression: bool) -> tuple[int, ...]:
    n_out = data.y_train.shape[1] if regression else data.n_classes
    if sizes is None:
        return (data.n_features, 30, n_out)
    if isinstance(sizes, str):
        sizes = V.parse_list("sizes", sizes, int)
    sizes = tuple(V.integers_list("sizes", sizes, low=1))
    if len(sizes) < 2:
        raise ConfigError(f"sizes must list at least an input and an output layer; got {','.join(map(str, sizes))}.")
    if sizes[0] != data.n_features or sizes[-1] != n_out:
        what = "outputs" if regression else "classes"
        raise ConfigError(
            f"sizes {','.join(map(str, sizes))} do not fit the data: the first must be {data.n_features} "
            f"(features) and the last {n_out} ({what})."
        )
    return sizes


def check_options(*, epochs, batch_size, eta, lmbda, init, cost, activation, penalty, eval, seeds, monitor):
    """Validate the options shared by train, sweep and explain (not data-dependent ones).

    ``eta`` may be one η or a list (a grid trained at once).
    """
    V.integer("epochs", epochs, low=1)
    V.integer("batch_size", batch_size, low=1)
    V.numbers_list("eta", eta, low=0, strict=True)
    lmbdas = V.numbers_list("lmbda", lmbda, low=0)
    V.choice("init", init, network.INITS)
    V.choice("cost", cost, network.COSTS)
    V.choice("activation", activation, network.ACTIVATIONS)
    V.choice("penalty", penalty, penalties.PENALTIES)
    V.choice("eval", eval, ("validation", "test"))
    seeds = V.integers_list("seed", seeds, low=0)
    for name in monitor:
        V.choice("monitor", name, MONITORS)
    return lmbdas, seeds


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigTypeError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def check_optimizer_options(
    *, optimizer="sgd", penalty="l2", epochs=None, momentum=None, weight_decay=None, decay_scaling=None,
    l1_ratio=None, l1_update="subgradient", penalize_biases=False, schedule="constant", warmup_epochs=0,
    step_epochs=None, step_gamma=0.1, early_stopping=False, patience=DEFAULT_PATIENCE, stop_on="accuracy",
    full_batch_ok=False, lmbdas=None,
) -> dict:
    """Validate the optimizer, penalty, schedule and early-stopping options of train, sweep and explain.

    Returns :func:`fit_stack`'s keyword arguments, defaults filled in, except
    ``momentum`` and ``weight_decay``, which are lists (each value trains at
    once) or None where the optimizer does not use them. An option that the
    chosen optimizer or penalty would ignore is an error, not a silent no-op.
    ``lmbdas`` (every λ of the run, if known) is checked against ``adamw``,
    whose decay is ``weight_decay``: a coupled L2 λ > 0 on top is refused.
    """
    V.choice("optimizer", optimizer, OPTIMIZERS + (("lbfgs",) if full_batch_ok else ()))
    V.choice("penalty", penalty, penalties.PENALTIES)
    if epochs is not None:
        epochs = V.integer("epochs", epochs, low=1)
    if momentum is not None:
        if optimizer not in ("momentum", "nesterov"):
            raise ConfigError(f"momentum applies to optimizer 'momentum' or 'nesterov'; got optimizer {optimizer!r}.")
        momentum = V.numbers_list("momentum", momentum, low=0)
        if any(mu >= 1 for mu in momentum):
            raise ConfigError(f"momentum must be a number in [0, 1); got {max(momentum)!r}.")
    elif optimizer in ("momentum", "nesterov"):
        momentum = [DEFAULT_MOMENTUM]
    if weight_decay is not None:
        if optimizer != "adamw":
            raise ConfigError(
                f"weight_decay (decoupled) applies to optimizer 'adamw'; got optimizer {optimizer!r}. "
                "For coupled L2 use lmbda (PyTorch's coupled weight_decay is λ/n)."
            )
        weight_decay = V.numbers_list("weight_decay", weight_decay, low=0)
    elif optimizer == "adamw":
        weight_decay = [DEFAULT_WEIGHT_DECAY]
    if decay_scaling is not None and optimizer != "adamw":
        raise ConfigError(f"decay_scaling applies to optimizer 'adamw'; got optimizer {optimizer!r}.")
    decay_scaling = V.choice("decay_scaling", "lr" if decay_scaling is None else decay_scaling, DECAY_SCALINGS)
    if l1_ratio is not None and penalty != "elastic-net":
        raise ConfigError(f"l1_ratio applies to penalty 'elastic-net'; got penalty {penalty!r}.")
    l1_ratio = 0.5 if l1_ratio is None else V.number("l1_ratio", l1_ratio, low=0)
    if l1_ratio > 1:
        raise ConfigError(f"l1_ratio must be a number between 0 and 1; got {l1_ratio!r}.")
    V.choice("l1_update", l1_update, penalties.L1_UPDATES)
    if l1_update == "prox" and penalty not in ("l1", "elastic-net"):
        raise ConfigError(f"l1_update 'prox' applies to penalty 'l1' or 'elastic-net'; got penalty {penalty!r}.")
    V.choice("schedule", schedule, SCHEDULES)
    warmup_epochs = V.integer("warmup_epochs", warmup_epochs, low=0)
    if epochs is not None and warmup_epochs >= epochs:
        raise ConfigError(f"warmup_epochs must be an integer between 0 and {epochs - 1} (epochs - 1); got {warmup_epochs}.")
    if step_epochs is not None:
        if schedule != "step":
            raise ConfigError(f"step_epochs applies to schedule 'step'; got schedule {schedule!r}.")
        step_epochs = V.integer("step_epochs", step_epochs, low=1)
    step_gamma = V.number("step_gamma", step_gamma, low=0, strict=True)
    early_stopping = _flag("early_stopping", early_stopping)
    patience = V.integer("patience", patience, low=1)
    V.choice("stop_on", stop_on, STOP_ON)
    if optimizer == "adamw" and penalty in ("l2", "elastic-net") and lmbdas is not None and np.max(lmbdas) > 0:
        raise ConfigError(
            "optimizer 'adamw' decays the weights by weight_decay (decoupled), not by an L2 penalty; "
            "leave lmbda at 0, or use optimizer 'adam' for coupled L2."
        )
    if optimizer == "lbfgs":
        for name, value, default in (("penalty", penalty, None), ("schedule", schedule, "constant"),
                                     ("warmup_epochs", warmup_epochs, 0), ("early_stopping", early_stopping, False),
                                     ("penalize_biases", penalize_biases, False)):
            bad = penalty not in ("l2", "none") if name == "penalty" else value != default
            if bad:
                raise ConfigError(f"optimizer 'lbfgs' (full batch, penalty l2 or none) does not take {name}={value!r}.")
    return dict(
        optimizer=optimizer, momentum=momentum, weight_decay=weight_decay, l1_ratio=l1_ratio, l1_update=l1_update,
        penalize_biases=_flag("penalize_biases", penalize_biases), decay_scaling=decay_scaling, schedule=schedule,
        warmup_epochs=warmup_epochs, step_epochs=step_epochs, step_gamma=step_gamma,
        early_stopping=early_stopping, patience=patience, stop_on=stop_on,
    )


def parse_lmbda_per_layer(value) -> list[list[float]]:
    """Per-layer λ configurations: ``"5,0.5"`` or ``[5, 0.5]`` is one, ``"5,0.5;1,0.1"`` or ``[[5, 0.5], [1, 0.1]]`` two."""
    if isinstance(value, str):
        return [V.numbers_list("lmbda_per_layer", V.parse_list("lmbda_per_layer", part.strip(), float), low=0)
                for part in value.split(";")]
    if isinstance(value, (Sequence, np.ndarray)) and len(value) and all(
            isinstance(v, (Sequence, np.ndarray)) and not isinstance(v, str) for v in value):
        return [V.numbers_list("lmbda_per_layer", v, low=0) for v in value]
    return [V.numbers_list("lmbda_per_layer", value, low=0)]


def train(
    dataset: str | Dataset = "digits",
    sizes: Sequence[int] | str | None = None,
    epochs: int = 30,
    batch_size: int = 10,
    eta: float | Sequence[float] = 0.5,
    lmbda: float | Sequence[float] | None = None,
    init: str = "default",
    cost: str = "cross-entropy",
    activation: str = "sigmoid",
    penalty: str = "l2",
    train_size: int | None = None,
    eval: str = "validation",
    seed: int | Sequence[int] = 0,
    data_dir: str | None = None,
    monitor: Sequence[str] = MONITORS,
    on_epoch: Callable[[int, dict], None] | None = None,
    *,
    optimizer: str = "sgd",
    momentum: float | Sequence[float] | None = None,
    weight_decay: float | Sequence[float] | None = None,
    decay_scaling: str | None = None,
    l1_ratio: float | None = None,
    l1_update: str = "subgradient",
    lmbda_per_layer=None,
    penalize_biases: bool = False,
    schedule: str = "constant",
    warmup_epochs: int = 0,
    step_epochs: int | None = None,
    step_gamma: float = 0.1,
    early_stopping: bool = False,
    patience: int = DEFAULT_PATIENCE,
    stop_on: str = "accuracy",
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a network on C = C0 + penalty, by default (λ/2n)·Σw² with mini-batch SGD.

    ``lmbda`` may be a list: every λ trains at once, vectorized, from the same
    initial weights and in the same mini-batch order (per seed), so that the
    runs differ by λ alone. ``seed`` may be a list too: each λ is repeated per
    seed. So may ``eta``, ``momentum`` and ``weight_decay``: the runs are the
    grid seed × η × momentum × weight_decay × λ, all in one stack. See
    :func:`fit_stack` for the engine and :func:`make_optimizer` for the updates.

    * ``penalty``: ``l2`` (λ/2n)·Σw², ``l1`` (λ/n)·Σ|w|, ``elastic-net``
      (λ/n)·[ρ·Σ|w| + ((1−ρ)/2)·Σw²] with ρ = ``l1_ratio`` (default 0.5), or
      ``none``; n = training-set size. ``l1_update="prox"``: proximal soft
      threshold instead of the subgradient (weights reach exactly 0).
    * ``lmbda``: default 5, or 0 with ``adamw`` (whose decay is ``weight_decay``).
      ``lmbda_per_layer``: one λ per weight layer instead, e.g. ``[5, 0.5]``
      (``[[5, 0.5], [1, 0.1]]`` trains both at once).
    * ``penalize_biases``: penalize (or, with adamw, decay) the biases too.
    * ``optimizer``: ``sgd``, ``momentum``/``nesterov`` (``momentum`` μ,
      default 0.9), ``adam`` (coupled: the penalty's gradient goes through
      Adam's moments), ``adamw`` (decoupled ``weight_decay``, default 0.01,
      multiplied by the learning rate with ``decay_scaling="lr"``, by the
      schedule multiplier only with ``"schedule"``), or ``lbfgs``: full batch
      (:func:`l2reg.fullbatch.fit_full_batch`; ``epochs`` caps its iterations,
      ``batch_size`` and ``eta`` are ignored, penalty ``l2`` or ``none``).
    * ``schedule``: ``constant``, ``step`` (×``step_gamma`` every
      ``step_epochs``, default a third of the epochs) or ``cosine`` (to 0 at
      the end), after ``warmup_epochs`` of linear warm-up.
    * ``early_stopping``: each run stops once its evaluation ``stop_on``
      (``accuracy`` or ``cost``) has not improved for ``patience`` epochs
      (Nielsen's no-improvement-in-10 rule); the others go on, and a stopped
      run's per-epoch lists repeat its frozen values until the last one
      stops. Each run records ``stopped_epoch`` and ``best_epoch``. Needs
      ``eval="validation"``: stopping on the test set would tune on it.
      Every run records ``zero_weight_fraction`` per epoch (weights exactly 0).
    * ``checkpoint_dir``: write ``checkpoint.npz`` there after every epoch;
      ``resume=True`` continues from it (the configuration must be the same;
      the first option that differs is named). Ctrl-C then stops after the
      current epoch and raises :class:`~l2reg.errors.Interrupted`.
    * A run whose cost becomes NaN/inf or explodes is frozen and marked
      ``"diverged": true`` with its ``"diverged_epoch"``; the others go on.
    """
    opts = check_optimizer_options(
        optimizer=optimizer, penalty=penalty, epochs=epochs, momentum=momentum, weight_decay=weight_decay,
        decay_scaling=decay_scaling, l1_ratio=l1_ratio, l1_update=l1_update, penalize_biases=penalize_biases,
        schedule=schedule, warmup_epochs=warmup_epochs, step_epochs=step_epochs, step_gamma=step_gamma,
        early_stopping=early_stopping, patience=patience, stop_on=stop_on, full_batch_ok=True,
    )
    layer_cfgs = None
    if lmbda_per_layer is not None:
        if lmbda is not None:
            raise ConfigError("give lmbda or lmbda_per_layer, not both.")
        layer_cfgs = parse_lmbda_per_layer(lmbda_per_layer)
        if optimizer == "lbfgs":
            raise ConfigError("optimizer 'lbfgs' (full batch) takes one λ for all layers; drop lmbda_per_layer.")
    elif lmbda is None:
        lmbda = 0.0 if optimizer == "adamw" else 5.0
    lmbdas, seeds = check_options(
        epochs=epochs, batch_size=batch_size, eta=eta, lmbda=lmbda if layer_cfgs is None else 0.0, init=init,
        cost=cost, activation=activation, penalty=penalty, eval=eval, seeds=seed, monitor=monitor,
    )
    etas = V.numbers_list("eta", eta, low=0, strict=True)
    check_optimizer_options(optimizer=optimizer, penalty=penalty, full_batch_ok=True,
                            lmbdas=lmbdas + [x for cfg in layer_cfgs or [] for x in cfg])
    if early_stopping and eval != "validation":
        raise ConfigError("early_stopping needs eval='validation': stopping on the test set would tune on it.")
    data = dataset if isinstance(dataset, Dataset) else load_dataset(
        dataset, data_dir, train_size=train_size, eval=eval
    )
    if isinstance(dataset, Dataset) and train_size is not None:
        raise ConfigError("train_size applies when loading by name; slice the Dataset instead.")
    regression = not data.is_classification
    if regression and cost != "quadratic":
        raise ConfigError(f"real-valued targets need cost='quadratic' (linear outputs); got {cost!r}.")
    if regression and early_stopping and stop_on == "accuracy":
        raise ConfigError("early stopping on accuracy needs classification; use stop_on='cost' for real-valued targets.")
    spec = NetworkSpec(_resolve_sizes(sizes, data, regression), activation, cost, regression)
    if layer_cfgs is not None:
        for cfg in layer_cfgs:
            if len(cfg) != spec.n_layers:
                raise ConfigError(
                    f"lmbda_per_layer must give one λ per weight layer ({spec.n_layers} for sizes "
                    f"{','.join(map(str, spec.sizes))}); got {len(cfg)}."
                )
    n = data.n_train
    X_eval, y_eval = data.split("test" if eval == "test" else "validation")
    config = {
        "dataset": data.name if isinstance(dataset, Dataset) else str(dataset),
        "sizes": list(spec.sizes), "epochs": epochs, "batch_size": batch_size,
        "eta": etas[0] if len(etas) == 1 else etas, "lmbda": None if layer_cfgs is not None else lmbdas,
        "init": init, "cost": cost, "activation": activation, "penalty": penalty,
        "train_size": train_size, "eval": eval, "seed": seeds, "data_dir": None if data_dir is None else str(data_dir),
        "monitor": list(monitor), "n": n, "n_evaluation": int(X_eval.shape[0]), "regression": regression,
        "optimizer": optimizer,
    }
    if layer_cfgs is not None:
        config["lmbda_per_layer"] = layer_cfgs
    for key in ("momentum", "weight_decay"):
        if opts[key] is not None:
            config[key] = opts[key]
    for key, default in (("decay_scaling", "lr"), ("l1_update", "subgradient"), ("penalize_biases", False),
                         ("schedule", "constant"), ("warmup_epochs", 0), ("early_stopping", False)):
        if opts[key] != default or (key == "decay_scaling" and optimizer == "adamw"):
            config[key] = opts[key]
    if penalty == "elastic-net":
        config["l1_ratio"] = opts["l1_ratio"]
    if schedule == "step":
        config["step_epochs"], config["step_gamma"] = opts["step_epochs"] or max(1, epochs // 3), opts["step_gamma"]
    if early_stopping:
        config["patience"], config["stop_on"] = opts["patience"], opts["stop_on"]
    if optimizer == "lbfgs":
        return _train_full_batch(spec, data, X_eval, y_eval, lmbdas, seeds, epochs, init, penalty, config)
    V.integer("batch_size", batch_size, low=1, high=n)

    # The grid within each seed: η × momentum × weight_decay × λ, λ fastest.
    lams = layer_cfgs if layer_cfgs is not None else lmbdas
    grid = list(itertools.product(etas, opts["momentum"] or [None], opts["weight_decay"] or [None], lams))
    L = len(grid)
    K = L * len(seeds)
    col = lambda j: np.array([cfg[j] for cfg in grid] * len(seeds), np.float64)  # noqa: E731  (K,)
    kw = {k: v for k, v in opts.items() if k not in ("momentum", "weight_decay")}
    if opts["momentum"] is not None:
        kw["momentum"] = col(1)
    if opts["weight_decay"] is not None:
        kw["weight_decay"] = col(2)
    result = fit_stack(
        spec, data.X_train, data.y_train,
        groups=[np.arange(n)] * len(seeds), group_seeds=seeds,
        lmbda=col(3), eta=col(0), epochs=epochs, batch_size=batch_size, init=init, penalty=penalty,
        eval_sets={"evaluation": (X_eval, y_eval, None)}, monitor=monitor, on_epoch=on_epoch, **kw,
        checkpoint=None if checkpoint_dir is None else Path(checkpoint_dir) / ckpt.FILENAME,
        checkpoint_config=config, resume=resume,
    )
    h = result.history
    runs = []
    for k in range(K):
        e, mu, wd, lam = grid[k % L]
        run = {"lmbda": lam, "seed": seeds[k // L], "eta": e}
        if mu is not None:
            run["momentum"] = mu
        if wd is not None:
            run["weight_decay"] = wd
        for name in MONITORS:
            run[name] = [float(v) for v in h[name][:, k]] if name in monitor and name in h else []
        run["weight_sq_norm"] = [float(v) for v in h["weight_sq_norm"][:, k]]
        run["weight_sq_norm_per_layer"] = [[float(x) for x in row] for row in h["weight_sq_norm_per_layer"][:, k]]
        run["zero_weight_fraction"] = [float(v) for v in h["zero_weight_fraction"][:, k]]
        run["diverged"] = bool(result.diverged_epoch[k] > 0)
        if run["diverged"]:
            run["diverged_epoch"] = int(result.diverged_epoch[k])
        if early_stopping:
            run["stopped_epoch"] = int(result.stopped_epoch[k])
            run["best_epoch"] = int(result.best_epoch[k])
        runs.append(run)
    params = [network.unstack(result.params, k) for k in range(K)]
    return TrainResult(config, runs, params, result.train_seconds, result.compile_seconds, data.notes)


def _train_full_batch(spec, data, X_eval, y_eval, lmbdas, seeds, max_iter, init, penalty, config) -> TrainResult:
    """``train(optimizer="lbfgs")``: full-batch L-BFGS, reported as one-"epoch" runs."""
    from .fullbatch import fit_full_batch

    r = fit_full_batch(spec, data.X_train, data.y_train, lmbdas, init=init, seed=seeds, max_iter=max_iter,
                       penalty=penalty)
    dtype = jnp.float32
    p = jax.tree.map(lambda a: jnp.asarray(a, dtype), r.params)
    n = data.n_train
    pen = np.asarray(penalties.l2_cost(p, jnp.asarray(r.lmbda, dtype), n)) if penalty == "l2" else np.zeros(len(r.lmbda))
    sets = {"training": (data.X_train, data.y_train), "evaluation": (X_eval, y_eval)}
    scores = {name: [np.asarray(a) for a in network.evaluate(spec, p, jnp.asarray(Xs, dtype), jnp.asarray(Ys))]
              for name, (Xs, Ys) in sets.items()}
    sq = np.asarray(network.weight_sq_norms(p))  # (K, n_layers)
    zeros = np.asarray(penalties.zero_fraction(p))
    runs = []
    for k in range(len(r.lmbda)):
        run = {"lmbda": float(r.lmbda[k]) if penalty == "l2" else lmbdas[k % len(lmbdas)], "seed": int(r.seed[k])}
        for name, (c0, acc) in scores.items():
            run[f"{name}_cost"] = [float(c0[k] + pen[k])] if f"{name}_cost" in config["monitor"] else []
            run[f"{name}_accuracy"] = [float(acc[k])] if f"{name}_accuracy" in config["monitor"] else []
        run["weight_sq_norm"] = [float(sq[k].sum())]
        run["weight_sq_norm_per_layer"] = [[float(x) for x in sq[k]]]
        run["zero_weight_fraction"] = [float(zeros[k])]
        run.update(iterations=int(r.iterations[k]), converged=bool(r.converged[k]), grad_norm=float(r.grad_norm[k]))
        runs.append(run)
    config = dict(config, max_iter=max_iter, tol=r.tol)
    params = [network.unstack(r.params, k) for k in range(len(runs))]
    return TrainResult(config, runs, params, r.seconds, 0.0, data.notes)


_callable_module(__name__)  # l2reg.train(...) calls train()
