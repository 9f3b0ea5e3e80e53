"""The JAX MLP's sweep: choose λ (and η) by k-fold cross-validation, every λ × fold in one stack.

The front of :func:`l2reg.sweep`. The grid, folds, blocks, selection and
refit are the shared orchestration's (:mod:`l2reg.fronts.cv`,
:mod:`l2reg.fronts.orchestration`); this module supplies what trains one
block with l2reg's engine (:func:`l2reg.core.engine.fit_stack`):

* :func:`train_block`: some folds × some (η, λ) pairs as one vectorized
  stack; the folds are its groups (group g trains on every training example
  outside fold g, so n = that fold's training size in the penalty
  (λ/2n)·Σw² and in the decay factor 1 − ηλ/n), the pairs the members of
  every group; each model is scored on its own held-out fold only;
* :func:`refit_block`: a run of the λ path at the chosen η on all n
  training rows, evaluated on the test set each epoch (which is used only
  for that final report, never for selection).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..base import interrupts
from ..core import network
from ..core.device import to_device
from ..core.engine import ONCE, Members, compile_stack, fit_stack, streams_of
from ..core.network import NetworkSpec
from ..core.terms import final_terms
from ..data import Dataset
from ..errors import ConfigError
from ..options import (CV_MONITOR, DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_ETA, DEFAULT_FOLDS, MONITORS,
                       SweepOptions, TrainOptions, documented)
from .cv import Block, BlockResult, CVRun, RefitBlock, SweepResult, cv_folds_for, default_grid, fold_seeds
from .orchestration import Blocks, LocalExecutor, make_executor, run_sweep
from .prepare import Prepared, decay_warnings, prepare

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CVTask:
    """Everything a block needs besides its indices (what a cluster worker receives once)."""

    spec: NetworkSpec
    opts: TrainOptions
    X: np.ndarray
    y: np.ndarray
    folds: list
    seeds: list  # one per fold
    pair_eta: np.ndarray  # (P,)
    pair_lmbda: np.ndarray  # (P,)
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


@partial(jax.jit, static_argnums=0, compiler_options=ONCE)
def _evaluate_sets(spec, params, sets):
    return {name: network.evaluate(spec, params, X, Y, member) for name, (X, Y, member) in sets.items()}


def evaluate_stack(spec: NetworkSpec, params, sets: dict) -> dict:
    """Mean C0 and accuracy ``(K,)`` of a stack on each set, in one compiled call.

    ``sets``: name -> ``(X, Y, member)``, ``member`` ``(n, K)`` weighting the
    examples per model, or None. Returns name -> ``(c0, accuracy)``.
    """
    if not sets:
        return {}
    dtype = jnp.float32
    p = jax.tree.map(lambda a: to_device(a, dtype), params)
    dev = {name: (to_device(X, dtype), to_device(Y),
                  m if m is None or isinstance(m, network.Rows) else to_device(m, dtype))
           for name, (X, Y, m) in sets.items()}
    return {name: (np.asarray(c0), np.asarray(acc)) for name, (c0, acc) in _evaluate_sets(spec, p, dev).items()}


def _monitor(monitor, evaluated: str) -> tuple:
    """The options' monitor names with "evaluation" named for what it is here: a CV model's held-out fold
    ("validation") or the refit's test set ("test")."""
    return tuple(m.replace("evaluation", evaluated) for m in monitor)


def train_block(task: CVTask, block: Block, *, on_epoch=None, checkpoint=None, keep_params: bool = False
                ) -> BlockResult:
    """Train one block (its folds × its pairs) as one stack; its final scores ``(P_b, k_b)`` and histories.

    Model k = g·L_b + l is the block's fold g, pair l; it trains on
    ``folds[g][0]`` (n = its length) and is validated on ``folds[g][1]`` only.
    """
    folds = [task.folds[g] for g in block.folds]
    pairs = list(block.pairs)
    Lb, kb = len(pairs), len(folds)
    # Each fold's models are scored on their own rows only: held out, and trained on.
    held_out = network.Rows(*map(to_device, streams_of([va for _, va in folds])[:2]))
    trained = network.Rows(*map(to_device, streams_of([tr for tr, _ in folds])[:2]))
    members = Members.of(task.opts, lmbda=np.tile(task.pair_lmbda[pairs], kb), eta=np.tile(task.pair_eta[pairs], kb))
    result = fit_stack(task.spec, task.X, task.y, task.opts, groups=[tr for tr, _ in folds],
                       group_seeds=[task.seeds[g] for g in block.folds], members=members,
                       eval_sets={"validation": (task.X, task.y, held_out)}, monitor=_monitor(task.opts.monitor, "validation"),
                       on_epoch=on_epoch, checkpoint=checkpoint)
    by_fold = lambda a: np.asarray(a).reshape(*np.shape(a)[:-1], kb, Lb).swapaxes(-1, -2)  # noqa: E731  (..., P_b, k_b)
    pen = _penalty_history(result.history, members.lmbda, np.repeat([len(tr) for tr, _ in folds], Lb))  # (epochs, K)
    sets = {"training": (task.X, task.y, trained), "validation": (task.X, task.y, held_out)}
    if task.X_test is not None:
        sets["test"] = (task.X_test, task.y_test, None)
    final = _final_metrics(task.spec, result.params, result.history, pen[-1], sets)
    history = {name: by_fold(h - pen if name.endswith("_cost") else h)
               for name, h in result.history.items() if name not in ("weight_sq_norm_per_layer", "penalty")}
    return BlockResult(final={name: by_fold(v) for name, v in final.items()}, history=history,
                       diverged=by_fold(result.diverged_epoch > 0), train_seconds=result.train_seconds,
                       compile_seconds=result.compile_seconds, params=result.params if keep_params else None)


def _cv_block(task: CVTask, block: Block, *, on_epoch=None, checkpoint=None) -> BlockResult:
    # in process the whole grid is one block, whose stack CVRun keeps
    return train_block(task, block, on_epoch=on_epoch, checkpoint=checkpoint, keep_params=len(block.folds) == len(task.folds))


def refit_block(task: CVTask, block: RefitBlock, *, on_epoch=None, checkpoint=None) -> BlockResult:
    """The λ path ``block.lmbdas`` at ``block.eta`` refit on all n training rows, evaluated on the test set
    each epoch: final C0, accuracy and Σw² per set ``(R,)``, the ``history`` (``test_*`` for the test set),
    ``terms`` (:func:`l2reg.core.terms.final_terms`) and one model each."""
    t, opts = task, task.opts
    n, R = len(t.X), len(block.lmbdas)
    members = Members.of(opts, lmbda=list(block.lmbdas), eta=block.eta)
    r = fit_stack(t.spec, t.X, t.y, opts, members=members, **_refit_stack(task), on_epoch=on_epoch,
                  checkpoint=checkpoint)
    pen = _penalty_history(r.history, members.lmbda, np.full(R, n))  # (epochs, R)
    final = _final_metrics(t.spec, r.params, r.history, pen[-1], {"training": (t.X, t.y, None),
                                                                   "test": (t.X_test, t.y_test, None)})
    history = {name: (h - pen if name.endswith("_cost") else h) for name, h in r.history.items() if name != "penalty"}
    terms = final_terms(t.spec, r.params, t.X, t.y, members=members, n=n, opts=opts)
    return BlockResult(final=final, history=history, diverged=r.diverged_epoch > 0, train_seconds=r.train_seconds,
                       compile_seconds=r.compile_seconds, params=[network.unstack(r.params, i) for i in range(R)],
                       terms=terms)


def _refit_stack(task: CVTask) -> dict:
    """The refit's stack, whatever its η and λs: every training row, the options' seed, the test set."""
    return dict(groups=[np.arange(len(task.X))], group_seeds=list(task.opts.seed),
                eval_sets={"test": (task.X_test, task.y_test, None)}, monitor=_monitor(MONITORS, "test"))


def compile_refit(task: CVTask) -> None:
    """Compile the refit's programs (:func:`l2reg.core.engine.compile_stack`) while the CV trains: the
    refit's shapes are known before the choice (one λ path of the grid, every η traced alike)."""
    eta = float(task.pair_eta[0])
    lmbdas = [float(v) for v, e in zip(task.pair_lmbda, task.pair_eta) if e == eta]
    compile_stack(task.spec, task.X, task.y, task.opts, members=Members.of(task.opts, lmbda=lmbdas, eta=eta),
                  **_refit_stack(task))


#: The JAX MLP's block functions, for the orchestration and a cluster.
MLP_BLOCKS = Blocks(cv=_cv_block, refit=refit_block, compile_refit=compile_refit)


def cross_validate(spec: NetworkSpec, X, y, opts: TrainOptions, folds, *, pair_lmbda, pair_eta, group_seeds,
                   X_test=None, y_test=None, on_epoch=None, checkpoint=None) -> CVRun:
    """Every pair on every fold in one stack (in process). Arguments are trusted (``opts`` checked).

    Pair l is ``(pair_eta[l], pair_lmbda[l])``; its model on fold g trains
    on ``folds[g][0]`` with n = its length.
    """
    task = CVTask(spec, opts, X, y, list(folds), list(group_seeds), np.asarray(pair_eta, np.float64),
                  np.asarray(pair_lmbda, np.float64), X_test, y_test)
    return LocalExecutor().cv(partial(MLP_BLOCKS.cv, checkpoint=checkpoint), task, on_epoch)


def _final_metrics(spec, params, history, penalty_last, sets: dict) -> dict:
    """Last-epoch C0 and accuracy per set, ``(K,)``: from the history when it was recorded, else computed.

    ``penalty_last`` ``(K,)`` is the penalty, which the history's costs include.
    """
    out, todo = {}, {}
    for name, s in sets.items():
        if f"{name}_cost" in history:
            out[f"{name}_cost"] = history[f"{name}_cost"][-1] - penalty_last
            out[f"{name}_accuracy"] = history[f"{name}_accuracy"][-1]
        else:
            todo[name] = s
    for name, (c0, acc) in evaluate_stack(spec, params, todo).items():
        out[f"{name}_cost"], out[f"{name}_accuracy"] = c0, acc
    out["weight_sq_norm"] = history["weight_sq_norm"][-1]
    return out


def _penalty_history(history, lmbda, n):
    """The penalty term in the history's costs, ``(epochs, K)``: recorded, else (λ/2n)·Σw²."""
    if "penalty" in history:
        return np.asarray(history["penalty"], np.float64)
    return 0.5 * np.asarray(lmbda, np.float64) / np.asarray(n, np.float64) * history["weight_sq_norm"]


# ---------------------------------------------------------------- the API


@documented()
def sweep(
    dataset: str | Dataset = "digits", *,
    lmbda: float | Sequence[float] | None = None, eta: float | Sequence[float] = DEFAULT_ETA,
    folds: int = DEFAULT_FOLDS, select: str = "min", lmbda_grid: str | None = None,
    epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
    sizes: Sequence[int] | str | None = None, activation: str = "sigmoid", cost: str = "cross-entropy",
    init: str = "default", train_size: int | None = None, data_dir: str | None = None,
    label_column: str = "label", standardize: bool = False,
    optimizer: str = "sgd", momentum: float | None = None, weight_decay: float | None = None,
    decay_scaling: str | None = None, schedule: str = "constant", warmup_epochs: int = 0,
    step_epochs: int | None = None, step_gamma: float = 0.1, penalty: str = "l2", l1_ratio: float | None = None,
    l1_update: str = "subgradient", penalize_biases: bool = False, monitor: Sequence[str] = CV_MONITOR,
    backend: str = "local", address: str | None = None, block_size: int | None = None,
    on_epoch: Callable[[int | None, dict | None], None] | None = None,
    checkpoint_dir: str | Path | None = None, resume: bool = False,
) -> SweepResult:
    """Choose λ (and η) by stratified k-fold cross-validation on the training set.

    ``lmbda`` (a list) or ``lmbda_grid`` (``"LO:HI:K"``: 0 plus K log-spaced
    values) give the grid; by default λ = 0 plus 12 values with λ/n from
    1e-5 to 3e-2 (n = training-set size). ``eta`` may be a list too: the grid
    is then the pairs η × λ. All pairs × ``folds`` models train in one
    vectorized run (fold g: n = its training size, seed from
    :func:`fold_seeds`), ``select`` picks the pair (``min`` or ``1se``:
    :func:`choose`; diverged pairs are ignored), then the whole λ path at
    the chosen η is refit on the whole training set (n = training-set size,
    seed ``seed``) and evaluated on the test set, which plays no part in the
    choice. A dataset without a test split (a CSV file, say) gets one held
    out. ``monitor`` is what the CV models record per epoch ("evaluation" =
    each model's held-out fold); selection uses the last epoch either way.
    ``on_epoch`` sees 2·epochs epochs: the CV run, then the refit. The other
    options are :func:`l2reg.fronts.training.train`'s (one momentum, one weight
    decay); CV models and refit use them alike; the decay is coupled except
    adamw's.

    ``backend="ray"`` trains the grid in blocks on a Ray cluster
    (:mod:`l2reg.fronts.distributed`; ``address`` "auto" or HOST:PORT, default a
    local cluster; ``block_size`` pairs per task), to the same result.

    ``checkpoint_dir``: write ``checkpoint-cv.npz`` and ``checkpoint-refit.npz``
    there after every epoch of each stage (on Ray: every finished block); ``resume=True`` continues from them
    (the options must be the ones the checkpoint holds; the first that
    differs is named). With checkpoints, Ctrl-C stops after the current epoch
    and raises :class:`~l2reg.errors.Interrupted`.
    """
    opts = SweepOptions.from_flat(locals()).checked()
    return sweep_with(opts, on_epoch=on_epoch, checkpoint_dir=checkpoint_dir, resume=resume)



@dataclass(frozen=True)
class SweepPlan:
    """The CV grid of a sweep, fixed before training: data, folds, pairs."""

    prep: Prepared
    task: CVTask
    grid: list
    etas: list
    regression: bool
    config: dict  # the options as given (SweepOptions.to_config): what checkpoints and a resume compare


def plan_sweep(opts: SweepOptions) -> SweepPlan:
    """Load the data and lay out the grid × folds of checked ``opts`` (the data-dependent checks)."""
    prep = prepare(opts)
    data, regression = prep.data, prep.regression
    cv_folds = cv_folds_for(opts, data.y_train, not regression)
    k, n_min = len(cv_folds), min(len(tr) for tr, _ in cv_folds)
    grid = list(opts.lmbda) if opts.lmbda is not None else default_grid(prep.n)
    etas = list(opts.eta)
    for line in decay_warnings(replace(opts, lmbda=tuple(grid)), n_min, grid=True):
        log.warning("%s", line)
    task = CVTask(prep.spec, opts, data.X_train, data.y_train, cv_folds, fold_seeds(opts.seed[0], k),
                  np.repeat(np.asarray(etas, np.float64), len(grid)), np.tile(np.asarray(grid, np.float64), len(etas)),
                  prep.X_eval, prep.y_eval)
    log.info("sweep: %d η × %d λ × %d folds = %d models, n = %d", len(etas), len(grid), k,
             len(etas) * len(grid) * k, prep.n)
    return SweepPlan(prep, task, grid, etas, regression, opts.to_config())


def sweep_with(opts: SweepOptions, *, on_epoch=None, checkpoint_dir=None, resume: bool = False,
               executor=None, on_block=None) -> SweepResult:
    """:func:`sweep` for an options object (checked). ``executor`` trains the two stages
    (default :class:`~l2reg.fronts.orchestration.LocalExecutor`; ``opts.backend="ray"``:
    :class:`l2reg.fronts.distributed.RayExecutor`, which reports each finished block to
    ``on_block(done, total, cluster)``)."""
    if resume and checkpoint_dir is None:
        raise ConfigError("resume needs checkpoint_dir (the folder of the interrupted sweep).")
    if executor is None:
        executor = make_executor(opts, checkpoint_dir, resume=resume, on_block=on_block)
    plan = plan_sweep(opts)
    interrupts.phase("data")
    return run_sweep(plan.task, MLP_BLOCKS, executor, select=opts.select, regression=plan.regression, n=plan.prep.n,
                     config=_result_config(opts, plan), on_epoch=on_epoch, notes=plan.prep.data.notes,
                     options=plan.config)


def _result_config(opts: SweepOptions, plan: SweepPlan) -> dict:
    """``sweep.json``'s config: every option, the grid (``lmbda``, ``etas``) and what the data fixed (the
    orchestration adds the chosen ``eta``)."""
    t = plan.task
    config = opts.to_config()
    config.update(lmbda=list(plan.grid), etas=list(plan.etas), seed=opts.seed[0],
                  momentum=opts.momentum and opts.momentum[0], weight_decay=opts.weight_decay and opts.weight_decay[0],
                  sizes=list(t.spec.sizes),
                  folds=len(t.folds), fold_seeds=list(t.seeds), n=plan.prep.n,
                  n_fold=[int(len(tr)) for tr, _ in t.folds], n_test=int(len(t.X_test)), regression=plan.regression,
                  models_cv=len(t.pair_lmbda) * len(t.folds), models_refit=len(plan.grid))
    return config
