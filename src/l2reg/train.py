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

from . import network, penalties, store
from .data import Dataset, load_dataset
from .errors import ConfigError
from .network import NetworkSpec
from . import validation as V

log = logging.getLogger(__name__)

MONITORS = ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy")
OPTIMIZERS = ("sgd",)


# ---------------------------------------------------------------- the update


@dataclass(frozen=True)
class OptimizerSpec:
    """Static choice of update rule; per-model numbers live in ``hyper``."""

    penalty: str = "l2"
    name: str = "sgd"


def make_optimizer(opt: OptimizerSpec, hyper: dict) -> optax.GradientTransformation:
    """The optax chain of one stack of models.

    ``hyper`` holds ``(K, 1)`` arrays (one value per model, broadcasting
    against every parameter leaf): ``"eta"`` and ``"lmbda_over_n"``.

    With ``penalty="l2"`` and ``sgd`` this is coupled L2:

        g ← ∂C0/∂w + (λ/n)·w          add_decayed_weights(λ/n, weights only)
        w ← w − η·g                    sgd(η)
          = (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w
    """
    return optax.chain(
        penalties.penalty_transform(opt.penalty, hyper["lmbda_over_n"]),
        optax.sgd(hyper["eta"]),
    )


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


def _epoch(params, opt_state, hyper, X, Y, idx, valid, keys, epoch, active, *, spec, opt, m, L):
    """One epoch of mini-batch training for every model of the stack.

    ``active`` ``(K,)`` freezes models (diverged, stopped early) without
    stopping the others.
    """
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


def _metrics(params, hyper, n, sets, *, spec, which):
    """Per-model monitoring numbers, each ``(K,)``; costs include the penalty."""
    out = {}
    pen = penalties.l2_cost(params, hyper["lmbda"], n)
    for name, (X, Y, member) in sets.items():
        if f"{name}_cost" in which or f"{name}_accuracy" in which:
            c0, acc = network.evaluate(spec, params, X, Y, member)
            out[f"{name}_cost"] = c0 + pen
            out[f"{name}_accuracy"] = acc
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
) -> StackResult:
    """Train K = G·L models in one pass over the data. Arguments are trusted.

    * ``groups``: G index arrays into ``X``; group g's models train on those
      examples, n = its length, in a data order drawn from ``group_seeds[g]``
      (which also draws the initial weights, shared by the group's L models).
    * ``lmbda``, ``eta``: ``(K,)``, model k = g·L + l belonging to group g.
    * ``eval_sets``: name -> ``(X, Y, member)``, evaluated after every epoch
      (``member`` ``(n, K)`` or None). The training set is added as
      ``"training"`` with each group's own examples.
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

    col = lambda a: jnp.asarray(np.asarray(a, np.float64)[:, None], dtype)  # noqa: E731  (K, 1)
    hyper = {"eta": col(eta), "lmbda_over_n": col(np.asarray(lmbda) / n_per_model)}
    opt = OptimizerSpec(penalty=penalty)
    opt_state = make_optimizer(opt, hyper).init(params)
    active = jnp.ones(K, bool)

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
    n_dev = jnp.asarray(n_per_model, dtype)

    epoch_fn = jax.jit(partial(_epoch, spec=spec, opt=opt, m=batch_size, L=L), donate_argnums=(0, 1))
    metrics_fn = jax.jit(partial(_metrics, spec=spec, which=tuple(monitor)))
    args = (hyper, X, Y, jnp.asarray(idx), jnp.asarray(valid), keys)
    if on_epoch is not None:
        on_epoch(None, None)  # about to compile
    t0 = time.perf_counter()
    epoch_c = epoch_fn.lower(params, opt_state, *args, jnp.int32(0), active).compile()
    metrics_c = metrics_fn.lower(params, metric_hyper, n_dev, sets).compile()
    compile_seconds = time.perf_counter() - t0

    history: dict[str, list] = {}
    epoch_seconds = []
    t_start = time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        params, opt_state = epoch_c(params, opt_state, *args, jnp.int32(epoch), active)
        metrics = {k: np.asarray(v) for k, v in metrics_c(params, metric_hyper, n_dev, sets).items()}
        metrics["weight_sq_norm"] = metrics["weight_sq_norm_per_layer"].sum(axis=1)
        epoch_seconds.append(time.perf_counter() - t0)
        for k, v in metrics.items():
            history.setdefault(k, []).append(v)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    train_seconds = time.perf_counter() - t_start
    return StackResult(
        params=jax.tree.map(np.asarray, params),
        history={k: np.stack(v) for k, v in history.items()},
        train_seconds=train_seconds,
        compile_seconds=compile_seconds,
        epoch_seconds=epoch_seconds,
    )


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
    """Validate the options shared by train, sweep and explain (not data-dependent ones)."""
    V.integer("epochs", epochs, low=1)
    V.integer("batch_size", batch_size, low=1)
    V.number("eta", eta, low=0, strict=True)
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


def train(
    dataset: str | Dataset = "digits",
    sizes: Sequence[int] | str | None = None,
    epochs: int = 30,
    batch_size: int = 10,
    eta: float = 0.5,
    lmbda: float | Sequence[float] = 5.0,
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
) -> TrainResult:
    """Train a network on C = C0 + (λ/2n)·Σw² with mini-batch SGD.

    ``lmbda`` may be a list: every λ trains at once, vectorized, from the same
    initial weights and in the same mini-batch order (per seed), so that the
    runs differ by λ alone. ``seed`` may be a list too: each λ is repeated per
    seed. See :func:`fit_stack` for the engine.
    """
    lmbdas, seeds = check_options(
        epochs=epochs, batch_size=batch_size, eta=eta, lmbda=lmbda, init=init, cost=cost,
        activation=activation, penalty=penalty, eval=eval, seeds=seed, monitor=monitor,
    )
    data = dataset if isinstance(dataset, Dataset) else load_dataset(
        dataset, data_dir, train_size=train_size, eval=eval
    )
    if isinstance(dataset, Dataset) and train_size is not None:
        raise ConfigError("train_size applies when loading by name; slice the Dataset instead.")
    regression = not data.is_classification
    if regression and cost != "quadratic":
        raise ConfigError(f"real-valued targets need cost='quadratic' (linear outputs); got {cost!r}.")
    spec = NetworkSpec(_resolve_sizes(sizes, data, regression), activation, cost, regression)
    n = data.n_train
    V.integer("batch_size", batch_size, low=1, high=n)
    X_eval, y_eval = data.split("test" if eval == "test" else "validation")

    L = len(lmbdas)
    K = L * len(seeds)
    result = fit_stack(
        spec, data.X_train, data.y_train,
        groups=[np.arange(n)] * len(seeds), group_seeds=seeds,
        lmbda=np.tile(lmbdas, len(seeds)), eta=np.full(K, float(eta)),
        epochs=epochs, batch_size=batch_size, init=init, penalty=penalty,
        eval_sets={"evaluation": (X_eval, y_eval, None)}, monitor=monitor, on_epoch=on_epoch,
    )
    h = result.history
    runs = []
    for k in range(K):
        run = {"lmbda": lmbdas[k % L], "seed": seeds[k // L]}
        for name in MONITORS:
            run[name] = [float(v) for v in h[name][:, k]] if name in monitor and name in h else []
        run["weight_sq_norm"] = [float(v) for v in h["weight_sq_norm"][:, k]]
        run["weight_sq_norm_per_layer"] = [[float(x) for x in row] for row in h["weight_sq_norm_per_layer"][:, k]]
        runs.append(run)
    config = {
        "dataset": data.name if isinstance(dataset, Dataset) else str(dataset),
        "sizes": list(spec.sizes), "epochs": epochs, "batch_size": batch_size, "eta": float(eta),
        "lmbda": lmbdas, "init": init, "cost": cost, "activation": activation, "penalty": penalty,
        "train_size": train_size, "eval": eval, "seed": seeds, "data_dir": None if data_dir is None else str(data_dir),
        "monitor": list(monitor), "n": n, "n_evaluation": int(X_eval.shape[0]), "regression": regression,
    }
    params = [network.unstack(result.params, k) for k in range(K)]
    return TrainResult(config, runs, params, result.train_seconds, result.compile_seconds, data.notes)
