"""``l2reg.train``: train networks on C = C0 + (λ/2n)·Σw², every λ at once.

:func:`train` is the public function; :func:`prepare` (data, network sizes,
the checks that need the data) is shared with :mod:`l2reg.sweep` and
:mod:`l2reg.explain`; the training itself is :func:`l2reg.core.engine.fit_stack`,
whose steps apply the update assembled in :mod:`l2reg.core.update`:

    w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w        (n = training-set size, m = batch size)
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base import checkpoint as ckpt
from ..base import interrupts
from ..data import Dataset
from ..options import (DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_ETA, DEFAULT_PATIENCE, MONITORS, TrainOptions,
                       documented)
from .prepare import Prepared, decay_warnings, prepare

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- data and network


# ---------------------------------------------------------------- the result


@dataclass
class TrainResult:
    """The result of :func:`train`.

    ``runs`` matches ``metrics.json``: one dict per (seed, η, μ, wd, λ) with
    its settings and per-epoch lists. ``params[r]`` is run r's list of
    ``{"w": (n_in, n_out), "b": (n_out,)}``.
    """

    config: dict
    runs: list
    params: list
    train_seconds: float
    compile_seconds: float
    notes: tuple = ()
    epoch_seconds: list = ()  # wall time of each epoch (training and monitoring)

    def to_json(self) -> dict:
        return {"config": self.config, "runs": self.runs, "train_seconds": self.train_seconds,
                "compile_seconds": self.compile_seconds, "epoch_seconds": list(self.epoch_seconds)}


# ---------------------------------------------------------------- the grid


#: The settings a run may differ by, in grid order (λ fastest).
GRID = ("seed", "eta", "momentum", "weight_decay", "lmbda")
#: Their order in a run's dict (metrics.json), λ first.
RUN_KEYS = ("lmbda", "seed", "eta", "momentum", "weight_decay")


def grid(opts: TrainOptions) -> list[dict]:
    """The runs of checked ``opts``: seed × η × momentum × weight_decay × λ (λ fastest), one dict each.

    λ is a number, or a list (one per layer) with ``lmbda_per_layer``;
    ``momentum`` and ``weight_decay`` appear only where the optimizer uses them.
    """
    lams = [list(c) for c in opts.lmbda_per_layer] if opts.lmbda_per_layer is not None else list(opts.lmbda)
    axes = (opts.seed, opts.eta, opts.momentum or [None], opts.weight_decay or [None], lams)
    runs = []
    for values in itertools.product(*axes):
        run = dict(zip(GRID, values))
        runs.append({k: run[k] for k in RUN_KEYS if run[k] is not None})
    return runs


def members_of(opts: TrainOptions, runs: list[dict]):
    """The engine's per-model arrays (:meth:`l2reg.core.engine.Members.of`) of the runs of :func:`grid`."""
    from ..core.engine import Members

    col = lambda key: None if key not in runs[0] else [r[key] for r in runs]  # noqa: E731
    return Members.of(opts, lmbda=col("lmbda"), eta=col("eta"), momentum=col("momentum"),
                      weight_decay=col("weight_decay"))


def history_of(history: dict, k: int, monitor) -> dict:
    """Run k's per-epoch lists from a stack's ``(epochs, K)`` history."""
    out = {name: [float(v) for v in history[name][:, k]] if name in monitor and name in history else []
           for name in MONITORS}
    out["weight_sq_norm"] = [float(v) for v in history["weight_sq_norm"][:, k]]
    out["weight_sq_norm_per_layer"] = [[float(x) for x in row] for row in history["weight_sq_norm_per_layer"][:, k]]
    out["zero_weight_fraction"] = [float(v) for v in history["zero_weight_fraction"][:, k]]
    return out


# ---------------------------------------------------------------- the API


@documented()
def train(
    dataset: str | Dataset = "digits", *,
    lmbda: float | Sequence[float] | None = None, eta: float | Sequence[float] = DEFAULT_ETA,
    epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE, seed: int | Sequence[int] = 0,
    sizes: Sequence[int] | str | None = None, activation: str = "sigmoid", cost: str = "cross-entropy",
    init: str = "default", train_size: int | None = None, eval: str = "validation", data_dir: str | None = None,
    label_column: str = "label", standardize: bool = False,
    optimizer: str = "sgd", momentum: float | Sequence[float] | None = None,
    weight_decay: float | Sequence[float] | None = None, decay_scaling: str | None = None,
    schedule: str = "constant", warmup_epochs: int = 0, step_epochs: int | None = None, step_gamma: float = 0.1,
    penalty: str = "l2", lmbda_per_layer=None, l1_ratio: float | None = None, l1_update: str = "subgradient",
    penalize_biases: bool = False, early_stopping: bool = False, patience: int = DEFAULT_PATIENCE,
    stop_on: str = "accuracy", monitor: Sequence[str] = MONITORS,
    on_epoch: Callable[[int | None, dict | None], None] | None = None,
    checkpoint_dir: str | Path | None = None, resume: bool = False,
) -> TrainResult:
    """Train networks on C = C0 + penalty, by default (λ/2n)·Σw² with mini-batch SGD; every λ at once.

    ``lmbda`` may be a list: every λ trains at once, vectorized, from the same
    initial weights and in the same mini-batch order (per seed), so that the
    runs differ by λ alone. So may ``seed``, ``eta``, ``momentum`` and
    ``weight_decay``: the runs are the grid seed × η × momentum × weight_decay
    × λ, all in one stack (:func:`grid`).

    * ``lmbda``: default 1 (:data:`l2reg.options.DEFAULT_LMBDA`), or 0 with
      ``adamw`` (whose decay is ``weight_decay``). ``lmbda_per_layer``: one λ
      per weight layer instead, e.g. ``[5, 0.5]`` (``[[5, 0.5], [1, 0.1]]`` trains both).
    * ``penalty``: ``l2`` (λ/2n)·Σw², ``l1`` (λ/n)·Σ|w|, ``elastic-net``
      (λ/n)·[ρ·Σ|w| + ((1−ρ)/2)·Σw²] with ρ = ``l1_ratio`` (default 0.5), or
      ``none``; n = training-set size; ``l1_update="prox"``: proximal soft
      threshold (exact zeros). ``penalize_biases``: penalize (or decay) the biases too.
    * ``optimizer``: ``sgd``, ``momentum``/``nesterov`` (μ = ``momentum``,
      default 0.9), ``adam`` (coupled: the penalty's gradient goes through
      Adam's moments), ``adamw`` (decoupled ``weight_decay``, default 0.01,
      times the learning rate with ``decay_scaling="lr"``, times the schedule
      multiplier only with ``"schedule"``), or ``lbfgs`` (full batch;
      ``epochs`` caps its iterations). The update rules: :func:`l2reg.core.update.make_optimizer`.
    * ``schedule``: ``constant``, ``step`` (×``step_gamma`` every
      ``step_epochs``, default a third of the epochs) or ``cosine`` (to 0),
      after ``warmup_epochs`` of linear warm-up.
    * ``early_stopping``: each run stops once its evaluation ``stop_on``
      (``accuracy`` or ``cost``) has not improved for ``patience`` epochs
      (Nielsen's no-improvement-in-10 rule); needs ``eval="validation"``.
    * ``monitor``: what is computed after every epoch; ``on_epoch(epoch, metrics)`` sees it.
    * ``checkpoint_dir``: write ``checkpoint.npz`` there after every epoch;
      ``resume=True`` continues from it (the options must be the same; the
      first that differs is named). Ctrl-C then stops after the current epoch
      and raises :class:`~l2reg.errors.Interrupted`.
    * A run whose cost becomes NaN/inf or explodes is frozen and marked
      ``"diverged": true`` with its ``"diverged_epoch"``; the others go on.
    """
    opts = TrainOptions.from_flat(locals()).checked()
    return train_with(opts, on_epoch=on_epoch, checkpoint_dir=checkpoint_dir, resume=resume)


def train_with(opts: TrainOptions, *, on_epoch=None, checkpoint_dir=None, resume: bool = False) -> TrainResult:
    """:func:`train` for an options object (checked), as the CLI calls it."""
    from ..base.checkpoint import Checkpointing
    from ..core.engine import fit_stack

    prep = prepare(opts)
    for line in decay_warnings(opts, prep.n):
        log.warning("%s", line)
    interrupts.phase("data")
    config = run_config(opts, prep)
    if opts.full_batch:
        return _train_full_batch(opts, prep, config)
    runs = grid(opts)
    n = prep.n
    checkpoint = None if checkpoint_dir is None else Checkpointing(
        Path(checkpoint_dir) / ckpt.FILENAME, config, resume)
    eval_sets = {"evaluation": (prep.X_eval, prep.y_eval, None)}
    result = fit_stack(prep.spec, prep.data.X_train, prep.data.y_train, opts, groups=[np.arange(n)] * len(opts.seed),
                       group_seeds=list(opts.seed), members=members_of(opts, runs), eval_sets=eval_sets,
                       monitor=opts.monitor, on_epoch=on_epoch, checkpoint=checkpoint)
    for k, run in enumerate(runs):
        run.update(history_of(result.history, k, opts.monitor))
        run["diverged"] = bool(result.diverged_epoch[k] > 0)
        if run["diverged"]:
            run["diverged_epoch"] = int(result.diverged_epoch[k])
        if opts.early_stopping:
            run["stopped_epoch"] = int(result.stopped_epoch[k])
            run["best_epoch"] = int(result.best_epoch[k])
    from ..core.network import unstack

    params = [unstack(result.params, k) for k in range(len(runs))]
    return TrainResult(config, runs, params, result.train_seconds, result.compile_seconds, prep.data.notes,
                       list(result.epoch_seconds))


def run_config(opts: TrainOptions, prep: Prepared) -> dict:
    """``metrics.json``'s config: every option (:meth:`TrainOptions.to_config`) and what the data fixed."""
    config = opts.to_config()
    config.update(sizes=list(prep.spec.sizes), n=prep.n, regression=prep.regression,
                  n_evaluation=int(prep.X_eval.shape[0]))
    return config


def _train_full_batch(opts: TrainOptions, prep: Prepared, config: dict) -> TrainResult:
    """``train(optimizer="lbfgs")``: full-batch L-BFGS, reported as one-"epoch" runs."""
    import jax
    import jax.numpy as jnp

    from ..core import network, penalties
    from ..core.fullbatch import fit_full_batch

    data = prep.data
    r = fit_full_batch(prep.spec, data.X_train, data.y_train, list(opts.lmbda), init=opts.init, seed=list(opts.seed),
                       max_iter=opts.epochs, penalty=opts.penalty)
    p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), r.params)
    n = data.n_train
    pen = np.asarray(penalties.l2_cost(p, jnp.asarray(r.lmbda, jnp.float32), n)) if opts.penalty == "l2" else np.zeros(len(r.lmbda))
    sets = {"training": (data.X_train, data.y_train), "evaluation": (prep.X_eval, prep.y_eval)}
    scores = {name: [np.asarray(a) for a in network.evaluate(prep.spec, p, jnp.asarray(Xs, jnp.float32), jnp.asarray(Ys))]
              for name, (Xs, Ys) in sets.items()}
    sq = np.asarray(network.weight_sq_norms(p))  # (K, n_layers)
    zeros = np.asarray(penalties.zero_fraction(p))
    runs = []
    for k in range(len(r.lmbda)):
        lmbda = float(r.lmbda[k]) if opts.penalty == "l2" else opts.lmbda[k % len(opts.lmbda)]
        run = {"seed": int(r.seed[k]), "lmbda": lmbda}
        for name, (c0, acc) in scores.items():
            run[f"{name}_cost"] = [float(c0[k] + pen[k])] if f"{name}_cost" in opts.monitor else []
            run[f"{name}_accuracy"] = [float(acc[k])] if f"{name}_accuracy" in opts.monitor else []
        run["weight_sq_norm"] = [float(sq[k].sum())]
        run["weight_sq_norm_per_layer"] = [[float(x) for x in sq[k]]]
        run["zero_weight_fraction"] = [float(zeros[k])]
        run.update(iterations=int(r.iterations[k]), converged=bool(r.converged[k]), grad_norm=float(r.grad_norm[k]))
        runs.append(run)
    config = dict(config, max_iter=opts.epochs, tol=r.tol)
    params = [network.unstack(r.params, k) for k in range(len(runs))]
    return TrainResult(config, runs, params, r.seconds, 0.0, data.notes)

