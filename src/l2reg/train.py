"""``l2reg.train``: train networks on C = C0 + (λ/2n)·Σw², every λ at once.

:func:`train` is the public function; :func:`prepare` (data, network sizes,
the checks that need the data) is shared with :mod:`l2reg.sweep` and
:mod:`l2reg.explain`; the training itself is :func:`l2reg.engine.fit_stack`,
whose steps apply the update assembled in :mod:`l2reg.update`:

    w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w        (n = training-set size, m = batch size)
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import checkpoint as ckpt
from . import interrupts
from . import store
from . import validation as V
from .data import Dataset, load_dataset
from .errors import ConfigError
from .network import NetworkSpec
from .options import (DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_ETA, DEFAULT_PATIENCE, MONITORS,
                      TrainOptions)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- data and network


@dataclass(frozen=True)
class Prepared:
    """A run's data and network, checked against each other."""

    data: Dataset
    spec: NetworkSpec
    X_eval: np.ndarray  # the evaluation split (opts.eval)
    y_eval: np.ndarray

    @property
    def n(self) -> int:
        return self.data.n_train

    @property
    def regression(self) -> bool:
        return not self.data.is_classification


def resolve_sizes(sizes, data: Dataset, regression: bool) -> tuple[int, ...]:
    """The layer sizes: given ones checked against the data, else (features, 30, outputs)."""
    n_out = data.y_train.shape[1] if regression else data.n_classes
    if sizes is None:
        return (data.n_features, 30, n_out)
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


def prepare(opts: TrainOptions) -> Prepared:
    """Load the data of checked ``opts`` and build the network; the checks that need the data.

    Shared by train, sweep and explain: the evaluation split (``opts.eval``),
    real-valued targets needing the quadratic cost (linear outputs), sizes
    against the data, one λ per layer, and m ≤ n.
    """
    data = opts.dataset if isinstance(opts.dataset, Dataset) else load_dataset(
        opts.dataset, opts.data_dir, train_size=opts.train_size, eval=opts.eval)
    regression = not data.is_classification
    if regression and opts.cost != "quadratic":
        raise ConfigError(f"real-valued targets need cost='quadratic' (linear outputs); got {opts.cost!r}.")
    if regression and opts.early_stopping and opts.stop_on == "accuracy":
        raise ConfigError("early stopping on accuracy needs classification; use stop_on='cost' for real-valued targets.")
    spec = NetworkSpec(resolve_sizes(opts.sizes, data, regression), opts.activation, opts.cost, regression)
    for cfg in opts.lmbda_per_layer or ():
        if len(cfg) != spec.n_layers:
            raise ConfigError(f"lmbda_per_layer must give one λ per weight layer ({spec.n_layers} for sizes "
                              f"{','.join(map(str, spec.sizes))}); got {len(cfg)}.")
    if not opts.full_batch:
        V.integer("batch_size", opts.batch_size, low=1, high=data.n_train)
    X_eval, y_eval = data.split(opts.eval)
    return Prepared(data, spec, X_eval, y_eval)


def decay_warnings(opts: TrainOptions, n: int, *, grid: bool = False) -> list[str]:
    """Settings whose decay alone shrinks the weights by more than a factor e within an epoch (τ_epoch < 1).

    One line per (η, λ or wd) pair, with the numbers (:func:`l2reg.conventions.decay_timescale`,
    every optimizer and decay scaling); ``grid`` (a sweep's λ path) sums them up in one line.
    """
    from .conventions import decay_timescale

    if opts.full_batch or opts.lmbda_per_layer is not None:
        return []
    key = "weight_decay" if opts.optimizer == "adamw" else "lmbda"
    bad = []
    for eta, mu, value in itertools.product(opts.eta, opts.momentum or [None], opts.decay_values):
        ts = decay_timescale(optimizer=opts.optimizer, n=n, batch_size=min(opts.batch_size, n), eta=eta,
                             momentum=mu, decay_scaling=opts.decay_scaling or "lr", **{key: value})
        if ts.tau_epoch is not None and ts.tau_epoch < 1:
            bad.append((eta, value, ts))
    if not bad:
        return []
    name = "wd" if key == "weight_decay" else "λ"
    if grid:
        low = min(v for _, v, _ in bad)
        eta, value, ts = bad[0]
        return [f"{len(bad)} of the {len(opts.eta) * len(opts.decay_values)} (η, {name}) pairs (from {name} = {low:g}) "
                f"decay faster than the data can teach: τ_epoch < 1, the weights forget everything within an epoch "
                f"(η = {eta:g}, {name} = {value:g}: τ = {ts.tau_iter:.3g} steps, {ts.tau_epoch:.3g} epochs)."]
    return [f"η = {eta:g}, {name} = {value:g}: τ_epoch = {ts.tau_epoch:.3g} < 1 epoch ({ts.tau_iter:.3g} steps, "
            f"{ts.steps_per_epoch} steps per epoch): the decay alone shrinks the weights by more than a factor e "
            f"within an epoch, so they forget everything the data taught them; lower {name}"
            + (" (this scaling does not multiply the decay by η)." if opts.decay_scaling == "schedule" else " or η.")
            for eta, value, ts in bad]


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

    def save(self, out) -> None:
        """Write ``out/metrics.json``, ``out/params.npz`` (atomically, no pickle; :func:`store.write_params`)
        and ``out/report.html``."""
        from .report import train_report_html

        out = Path(out)
        store.write_params(out / "params.npz", self.params, self.runs)
        store.write_json(out / "metrics.json", self.to_json())
        store.write_text(out / "report.html", train_report_html(self))


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


def members_of(runs: list[dict]):
    """The engine's per-model arrays (:class:`l2reg.engine.Members`) of a list of runs."""
    from .engine import Members

    col = lambda key: None if key not in runs[0] else np.array([r[key] for r in runs], np.float64)  # noqa: E731
    return Members(lmbda=col("lmbda"), eta=col("eta"), momentum=col("momentum"), weight_decay=col("weight_decay"))


def history_of(history: dict, k: int, monitor) -> dict:
    """Run k's per-epoch lists from a stack's ``(epochs, K)`` history."""
    out = {name: [float(v) for v in history[name][:, k]] if name in monitor and name in history else []
           for name in MONITORS}
    out["weight_sq_norm"] = [float(v) for v in history["weight_sq_norm"][:, k]]
    out["weight_sq_norm_per_layer"] = [[float(x) for x in row] for row in history["weight_sq_norm_per_layer"][:, k]]
    out["zero_weight_fraction"] = [float(v) for v in history["zero_weight_fraction"][:, k]]
    return out


# ---------------------------------------------------------------- the API


def train(
    dataset: str | Dataset = "digits", *,
    lmbda: float | Sequence[float] | None = None, eta: float | Sequence[float] = DEFAULT_ETA,
    epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE, seed: int | Sequence[int] = 0,
    sizes: Sequence[int] | str | None = None, activation: str = "sigmoid", cost: str = "cross-entropy",
    init: str = "default", train_size: int | None = None, eval: str = "validation", data_dir: str | None = None,
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
      ``epochs`` caps its iterations). The update rules: :func:`l2reg.update.make_optimizer`.
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
    from .engine import Checkpointing, fit_stack

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
                       group_seeds=list(opts.seed), members=members_of(runs), eval_sets=eval_sets,
                       monitor=opts.monitor, on_epoch=on_epoch, checkpoint=checkpoint)
    for k, run in enumerate(runs):
        run.update(history_of(result.history, k, opts.monitor))
        run["diverged"] = bool(result.diverged_epoch[k] > 0)
        if run["diverged"]:
            run["diverged_epoch"] = int(result.diverged_epoch[k])
        if opts.early_stopping:
            run["stopped_epoch"] = int(result.stopped_epoch[k])
            run["best_epoch"] = int(result.best_epoch[k])
    from .network import unstack

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

    from . import network, penalties
    from .fullbatch import fit_full_batch

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


def resume_options(run_dir, opts_given: dict, explicit: set, *, cls=TrainOptions, filename=ckpt.FILENAME):
    """The options to resume the run in ``run_dir``: the checkpoint's own, except those given explicitly.

    An explicitly given option that differs from the checkpoint's is then
    refused, by name, when the checkpoint is loaded.
    """
    saved = ckpt.read_meta(Path(run_dir) / filename).get("config", {})
    merged = {name: saved[name] if name not in explicit and name in saved else value
              for name, value in opts_given.items()}
    return cls.from_flat(merged)
