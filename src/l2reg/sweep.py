"""The regularization path: choose λ by k-fold cross-validation, every λ × fold at once.

For a grid λ_1 < … < λ_L (and learning rates η_1 < … < η_E: the grid is the
E·L pairs, λ fastest) and k stratified folds of the *training* set, the
pairs × folds models train as one vectorized stack
(:func:`l2reg.engine.fit_stack`): the folds are its G = k groups (group g
trains on every training example outside fold g, so n = that fold's
training size in the penalty (λ/2n)·Σw² and in the decay factor 1 − ηλ/n),
the pairs are the members of every group. Each model is then scored on its
own held-out fold only.

The unit of work is a *block*: some folds × some pairs, trained as one
stack. In process the whole grid is one block; on a cluster
(:mod:`l2reg.distributed`) each block is a task. Either way the blocks'
final scores are assembled into one :class:`CVRun`.

Selection (:func:`choose`), over the final-epoch validation scores:

* ``min``: the pair with the best mean validation accuracy (the lowest mean
  validation C0 for regression); ties go to the later pair (the larger λ);
* ``1se``: the η of that best pair, then the largest λ at that η whose mean
  is within one standard error of the best (glmnet's ``lambda.1se``),
  SE = sample std over the folds / √k. The rule trades λ only, never η.

A pair whose model diverged on any fold takes no part. The whole λ path at
the chosen η is then refit on the whole training set (n = the training-set
size) in a second vectorized run and evaluated on the test set, which is
used only for that final report, never for selection.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import interrupts
from . import network, store
from . import validation as V
from .data import Dataset
from .ensembles import fold_seeds  # noqa: F401  (l2reg.sweep.fold_seeds: the fronts share it)
from .errors import ConfigError, DataError
from .network import NetworkSpec
from .options import (CV_MONITOR, DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_ETA, DEFAULT_FOLDS, MONITORS,
                      SELECT, SweepOptions, TrainOptions)

log = logging.getLogger(__name__)

#: The default grid, as λ/n with n the training-set size: from no visible
#: effect (λ/n = 1e-5) to underfitting (λ/n = 3e-2), for η ≈ 0.5 and m ≈ 10.
DEFAULT_LMBDA_OVER_N = (1e-5, 3e-2)
DEFAULT_GRID_SIZE = 12
CHECKPOINT_CV = "checkpoint-cv.npz"
CHECKPOINT_REFIT = "checkpoint-refit.npz"


# ---------------------------------------------------------------- the grid and the folds


def _round_sig(x: float, digits: int = 2) -> float:
    return float(f"{x:.{digits}g}")


def default_grid(n: int, size: int = DEFAULT_GRID_SIZE) -> list[float]:
    """λ = 0 plus ``size`` log-spaced values with λ/n from 1e-5 to 3e-2 (2 significant digits)."""
    lo, hi = DEFAULT_LMBDA_OVER_N
    return [0.0] + sorted({_round_sig(v) for v in np.geomspace(lo * n, hi * n, size)})


def check_grid(lmbda) -> list[float]:
    """A non-empty list of finite λ ≥ 0, returned sorted with repeats removed."""
    return sorted(set(V.numbers_list("lmbda", lmbda, low=0)))


def check_folds(folds, y, classification: bool) -> int:
    """``folds`` as an int in [2, what the data allow]: the smallest class count (stratified), else n."""
    k = V.integer("folds", folds, low=2)
    n = len(y)
    if classification:
        counts = np.bincount(np.asarray(y, np.int64))
        smallest = int(counts[counts > 0].min())
        label = int(np.flatnonzero(counts == smallest)[0])
        if smallest < 2:
            raise ConfigError(
                f"folds: class {label} has only {smallest} training example; stratified cross-validation "
                f"needs at least 2 per class (use a larger train_size)."
            )
        if k > smallest:
            raise ConfigError(
                f"folds must be an integer between 2 and {smallest} (class {label}, the smallest, has "
                f"{smallest} training examples); got {k}."
            )
    elif k > n:
        raise ConfigError(f"folds must be an integer between 2 and {n} (the training-set size); got {k}.")
    return k


def make_folds(y, k: int, seed: int, classification: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """k ``(train_idx, val_idx)`` pairs: stratified by label for classification, shuffled by ``seed``."""
    from sklearn.model_selection import KFold, StratifiedKFold

    cv = StratifiedKFold(k, shuffle=True, random_state=seed) if classification else KFold(
        k, shuffle=True, random_state=seed
    )
    X_dummy = np.zeros((len(y), 1))
    return [(np.sort(tr), np.sort(va)) for tr, va in cv.split(X_dummy, y if classification else None)]


# ---------------------------------------------------------------- selection


def select_lmbda(mean, se, rule: str = "min", *, higher_is_better: bool = True) -> int:
    """Index of the chosen λ in an ascending grid.

    ``min``: the best mean (the last one on ties, i.e. the larger λ).
    ``1se``: the largest index whose mean is within ``se[best]`` of the best
    (never smaller than ``min``'s). NaN means (diverged) count as the worst.
    """
    V.choice("select", rule, SELECT)
    score = np.asarray(mean, np.float64) * (1.0 if higher_is_better else -1.0)
    score = np.where(np.isfinite(score), score, -np.inf)
    best = int(np.flatnonzero(score == score.max())[-1])
    if rule == "min":
        return best
    s = float(np.nan_to_num(np.asarray(se, np.float64)[best]))
    return int(np.flatnonzero(score >= score[best] - s)[-1])


def select_pair(mean, se, rule: str = "min", *, higher_is_better: bool = True) -> tuple[int, int]:
    """``(e, l)``: the chosen (η, λ) pair of ``(E, L)`` means and SEs (λ ascending along axis 1).

    ``min``: the best mean over every pair (ties: the later pair in row-major
    (η, λ) order). ``1se``: the η of that best pair, then :func:`select_lmbda`'s
    ``1se`` along λ at that η. NaN means (diverged) never win.
    """
    V.choice("select", rule, SELECT)
    mean = np.asarray(mean, np.float64)
    se = np.asarray(se, np.float64)
    E, L = mean.shape
    best = select_lmbda(mean.ravel(), se.ravel(), "min", higher_is_better=higher_is_better)
    e = best // L
    if rule == "min":
        return e, best % L
    return e, select_lmbda(mean[e], se[e], "1se", higher_is_better=higher_is_better)


@dataclass(frozen=True)
class Choice:
    """The outcome of :func:`choose`: the chosen pair, the ``min`` rule's pair, and the statistics per pair."""

    index: int
    best: int
    mean: np.ndarray  # (P,) mean over the folds
    se: np.ndarray  # (P,) sample std over the folds / √k
    std: np.ndarray  # (P,) population std (scikit-learn's std_test_score)
    diverged: np.ndarray  # (P,) diverged on some fold


def choose(scores, diverged, *, E: int, rule: str, higher_is_better: bool = True) -> Choice:
    """The one selection rule of :func:`sweep` and :class:`~l2reg.sklearn.L2MLPClassifierCV`.

    ``scores`` ``(P, k)`` are the pairs' final validation scores (P = E·L,
    λ fastest), ``diverged`` ``(P, k)`` or ``(P,)``; diverged pairs are
    never chosen. ``rule`` is ``min`` or ``1se`` (:func:`select_pair`).
    """
    scores = np.asarray(scores, np.float64)
    P, k = scores.shape
    bad = np.asarray(diverged, bool).reshape(P, -1).any(axis=1)
    if bad.all():
        raise DataError("every configuration diverged in cross-validation; lower eta or the largest lmbda.")
    if bad.any():
        log.warning("%d of %d (η, λ) pairs diverged on some fold; selection ignores them", bad.sum(), P)
    mean, se = scores.mean(axis=1), scores.std(axis=1, ddof=1) / math.sqrt(k)
    usable = np.where(bad, np.nan, mean).reshape(E, P // E)
    pick = partial(select_pair, usable, se.reshape(E, P // E), higher_is_better=higher_is_better)
    (e, l), (be, bl) = pick(rule), pick("min")
    L = P // E
    return Choice(e * L + l, be * L + bl, mean, se, scores.std(axis=1), bad)


# ---------------------------------------------------------------- the CV run


@dataclass
class CVRun:
    """The pairs × folds models after training.

    ``final[name]`` is ``(P, k)`` (pair by fold) at the last epoch:
    ``training_*`` on the fold's own training examples, ``validation_*`` on
    its held-out fold, ``test_*`` when a test set was given, and
    ``weight_sq_norm``. Costs are C0 (no penalty). ``history[name]`` is
    ``(epochs, P, k)`` for the monitored quantities (validation in place of
    "evaluation"). ``params`` is the trained stack when it was trained in
    one piece (in process), else None.
    """

    lmbdas: list  # λ of each pair
    folds: list
    final: dict
    history: dict
    train_seconds: float
    compile_seconds: float
    etas: list | None = None  # η of each pair
    diverged: np.ndarray | None = None  # (P, k) True where the model diverged
    params: list | None = None


@dataclass(frozen=True)
class Block:
    """A piece of the CV grid trained as one stack: some folds × some pairs (indices)."""

    folds: tuple[int, ...]
    pairs: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"f{'-'.join(map(str, self.folds))}_p{self.pairs[0]}-{self.pairs[-1]}"


@dataclass(frozen=True)
class CVTask:
    """Everything a block needs besides its indices (what a cluster worker receives once)."""

    spec: NetworkSpec
    opts: TrainOptions
    X: np.ndarray
    y: np.ndarray
    folds: list
    seeds: list
    pair_eta: np.ndarray  # (P,)
    pair_lmbda: np.ndarray  # (P,)
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


@partial(jax.jit, static_argnums=0)
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
    p = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
    dev = {name: (jnp.asarray(X, dtype), jnp.asarray(Y),
                  m if m is None or isinstance(m, network.Rows) else jnp.asarray(m, dtype))
           for name, (X, Y, m) in sets.items()}
    return {name: (np.asarray(c0), np.asarray(acc)) for name, (c0, acc) in _evaluate_sets(spec, p, dev).items()}


def train_block(task: CVTask, block: Block, *, on_epoch=None, checkpoint=None, keep_params: bool = False) -> dict:
    """Train one block (its folds × its pairs) as one stack; its final scores ``(P_b, k_b)`` and histories.

    Model k = g·L_b + l is the block's fold g, pair l; it trains on
    ``folds[g][0]`` (n = its length) and is validated on ``folds[g][1]`` only.
    """
    from .engine import Members, fit_stack

    from .engine import streams_of

    folds = [task.folds[g] for g in block.folds]
    pairs = list(block.pairs)
    Lb, kb = len(pairs), len(folds)
    K = Lb * kb
    # Each fold's models are scored on their own rows only: held out, and trained on.
    held_out = network.Rows(*map(jnp.asarray, streams_of([va for _, va in folds])[:2]))
    trained = network.Rows(*map(jnp.asarray, streams_of([tr for tr, _ in folds])[:2]))
    lmbda = np.tile(task.pair_lmbda[pairs], kb)
    members = Members(lmbda=lmbda, eta=np.tile(task.pair_eta[pairs], kb),
                      momentum=None if task.opts.momentum is None else np.full(K, task.opts.momentum[0]),
                      weight_decay=None if task.opts.weight_decay is None else np.full(K, task.opts.weight_decay[0]))
    result = fit_stack(task.spec, task.X, task.y, task.opts, groups=[tr for tr, _ in folds],
                       group_seeds=[task.seeds[g] for g in block.folds], members=members,
                       eval_sets={"evaluation": (task.X, task.y, held_out)}, monitor=task.opts.monitor,
                       on_epoch=on_epoch, checkpoint=checkpoint)
    by_fold = lambda a: np.asarray(a).reshape(*np.shape(a)[:-1], kb, Lb).swapaxes(-1, -2)  # noqa: E731  (..., P_b, k_b)
    pen = _penalty_history(result.history, lmbda, np.repeat([len(tr) for tr, _ in folds], Lb))  # (epochs, K)
    sets = {"training": (task.X, task.y, trained), "validation": (task.X, task.y, held_out)}
    if task.X_test is not None:
        sets["test"] = (task.X_test, task.y_test, None)
    final = _final_metrics(task.spec, result.params, result.history, pen[-1], sets,
                           {"training": "training", "validation": "evaluation"})
    history = {name.replace("evaluation", "validation"): by_fold(h - pen if name.endswith("_cost") else h)
               for name, h in result.history.items() if name not in ("weight_sq_norm_per_layer", "penalty")}
    return {"final": {name: by_fold(v) for name, v in final.items()}, "history": history,
            "diverged": by_fold(result.diverged_epoch > 0), "train_seconds": result.train_seconds,
            "compile_seconds": result.compile_seconds, "params": result.params if keep_params else None}


def assemble(task: CVTask, blocks: Sequence[Block], results: Sequence[dict]) -> CVRun:
    """The blocks' results as one :class:`CVRun` over every pair × fold."""
    P, k = len(task.pair_lmbda), len(task.folds)

    def place(get):
        first = np.asarray(get(results[0]))
        out = np.zeros(first.shape[:-2] + (P, k), first.dtype)
        for b, r in zip(blocks, results):
            rows, cols = np.ix_(b.pairs, b.folds)
            out[..., rows, cols] = get(r)
        return out

    final = {name: place(lambda r, n=name: r["final"][n]) for name in results[0]["final"]}
    history = {name: place(lambda r, n=name: r["history"][n]) for name in results[0]["history"]}
    diverged = place(lambda r: r["diverged"]).astype(bool)
    params = results[0]["params"] if len(blocks) == 1 else None
    return CVRun(list(map(float, task.pair_lmbda)), list(task.folds), final, history,
                 sum(r["train_seconds"] for r in results), sum(r["compile_seconds"] for r in results),
                 list(map(float, task.pair_eta)), diverged, params)


def cross_validate(spec: NetworkSpec, X, y, opts: TrainOptions, folds, *, pair_lmbda, pair_eta, group_seeds,
                   X_test=None, y_test=None, on_epoch=None, checkpoint=None) -> CVRun:
    """Every pair on every fold in one stack (in process). Arguments are trusted (``opts`` checked).

    Pair l is ``(pair_eta[l], pair_lmbda[l])``; its model on fold g trains
    on ``folds[g][0]`` with n = its length.
    """
    task = CVTask(spec, opts, X, y, list(folds), list(group_seeds), np.asarray(pair_eta, np.float64),
                  np.asarray(pair_lmbda, np.float64), X_test, y_test)
    block = Block(tuple(range(len(folds))), tuple(range(len(task.pair_lmbda))))
    result = train_block(task, block, on_epoch=on_epoch, checkpoint=checkpoint, keep_params=True)
    return assemble(task, [block], [result])


def _final_metrics(spec, params, history, penalty_last, sets: dict, monitored: dict) -> dict:
    """Last-epoch C0 and accuracy per set, ``(K,)``: from the history when it was recorded, else computed.

    ``monitored`` maps a set name to its name in ``history``; ``penalty_last``
    ``(K,)`` is the penalty, which the history's costs include.
    """
    out, todo = {}, {}
    for name, s in sets.items():
        h = monitored.get(name)
        if h is not None and f"{h}_cost" in history:
            out[f"{name}_cost"] = history[f"{h}_cost"][-1] - penalty_last
            out[f"{name}_accuracy"] = history[f"{h}_accuracy"][-1]
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


# ---------------------------------------------------------------- the result


@dataclass
class SweepResult:
    """The result of :func:`sweep`.

    ``rows``: one dict per (η, λ) pair (η then λ ascending) with ``eta``,
    ``lmbda``, ``lmbda_over_n``, ``cv_accuracy_mean``, ``cv_accuracy_se``,
    ``cv_cost_mean``, ``cv_cost_se``, ``training_accuracy``, ``test_accuracy``,
    ``training_cost``, ``test_cost``, ``gap``, ``weight_sq_norm``, ``refit``
    (True: the numbers come from the model refit on the whole training set;
    False: the mean of the k fold models), ``diverged`` and ``chosen``.
    ``cv`` is the :class:`CVRun` (its pairs in row order); ``refit_lmbdas``
    the λ path refit at the chosen η, ``refit_history[name]`` ``(epochs, R)``
    (``test_*`` is the test set), ``refit_params[r]`` the refit model r, and
    ``refit_terms[name]`` ``(R,)`` its decay and data terms at the end
    (:func:`l2reg.explain.final_terms`).
    """

    config: dict
    rows: list
    chosen_index: int
    min_index: int
    cv: CVRun
    refit_lmbdas: list
    refit_history: dict
    refit_params: list
    train_seconds: float
    compile_seconds: float
    notes: tuple = ()
    refit_terms: dict | None = None
    options: dict | None = None  # the options as given (SweepOptions.to_config), what a resume compares with

    @property
    def lmbdas(self) -> list:
        """λ of every row (repeated per η when several)."""
        return [r["lmbda"] for r in self.rows]

    @property
    def etas(self) -> list:
        return list(self.config["etas"])

    @property
    def chosen_lmbda(self) -> float:
        return self.rows[self.chosen_index]["lmbda"]

    @property
    def chosen_eta(self) -> float:
        return self.rows[self.chosen_index]["eta"]

    def rows_at_chosen_eta(self) -> list[int]:
        """Indices of the rows at the chosen η (the whole λ path there)."""
        return [i for i, r in enumerate(self.rows) if r["eta"] == self.chosen_eta]

    @property
    def baseline_index(self) -> int:
        """The row of the smallest λ (normally 0) at the chosen η."""
        return self.rows_at_chosen_eta()[0]

    @property
    def baseline_lmbda(self) -> float:
        return self.rows[self.baseline_index]["lmbda"]

    @property
    def regression(self) -> bool:
        return bool(self.config.get("regression"))

    def refit_index(self, lmbda: float) -> int:
        return self.refit_lmbdas.index(lmbda)

    def gap_summary(self) -> str:
        """One sentence: how much the chosen λ closed the train − test gap of the baseline."""
        from .report import sweep_gap_sentence

        return sweep_gap_sentence(self)

    def to_json(self) -> dict:
        histories = []
        for l, row in enumerate(self.rows):
            folds = []
            for g, (tr, va) in enumerate(self.cv.folds):
                f = {"fold": g, "n": int(len(tr)), "n_validation": int(len(va)),
                     "diverged": bool(self.cv.diverged[l, g])}
                f.update({name: [float(v) for v in h[:, l, g]] for name, h in self.cv.history.items()
                          if name != "diverged"})
                folds.append(f)
            histories.append({"eta": row["eta"], "lmbda": row["lmbda"], "folds": folds})
        refit = []
        for r, lm in enumerate(self.refit_lmbdas):
            run = {"eta": self.chosen_eta, "lmbda": lm}
            run.update({name: [float(v) for v in h[:, r]] for name, h in self.refit_history.items()
                        if name not in ("weight_sq_norm_per_layer", "diverged")})
            if self.refit_terms is not None:
                run["terms"] = {name: float(v[r]) for name, v in self.refit_terms.items()}
            refit.append(run)
        return {
            "config": self.config, "options": self.options, "rows": self.rows, "chosen_lmbda": self.chosen_lmbda,
            "chosen_eta": self.chosen_eta, "etas": self.etas, "min_lmbda": self.rows[self.min_index]["lmbda"],
            "min_eta": self.rows[self.min_index]["eta"], "select": self.config["select"],
            "summary": self.gap_summary(),
            "test_set_use": "The test set was used only for this final report, never to choose λ.",
            "histories": histories, "refit": refit, "folds": [[int(i) for i in va] for _, va in self.cv.folds],
            "train_seconds": self.train_seconds, "compile_seconds": self.compile_seconds,
            "cv_train_seconds": self.cv.train_seconds, "cv_compile_seconds": self.cv.compile_seconds,
            "n_lmbdas": len(self.rows),
        }

    def save(self, out) -> None:
        """Write ``out/sweep.json``, ``out/report.html`` and ``out/params.npz`` (the refit models)."""
        from .report import sweep_report_html

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        runs = [{"lmbda": lm, "seed": self.config["seed"], "eta": self.chosen_eta} for lm in self.refit_lmbdas]
        store.write_params(out / "params.npz", self.refit_params, runs)
        store.write_json(out / "sweep.json", self.to_json())
        store.write_text(out / "report.html", sweep_report_html(self))


def _summary_rows(cv: CVRun, choice: Choice, refit_eta, refit_lmbdas, refit_final, refit_diverged,
                  regression: bool, n: int) -> list[dict]:
    """One row per pair (η, λ) of the CV run; refit numbers where the pair was refit."""
    f = cv.final
    rows = []
    for l, (eta, lm) in enumerate(zip(cv.etas, cv.lmbdas)):
        row = {"eta": eta, "lmbda": lm, "lmbda_over_n": lm / n}
        acc = f["validation_accuracy"][l]
        row.update(cv_accuracy_mean=None if regression else float(np.mean(acc)),
                   cv_accuracy_se=None if regression else float(np.std(acc, ddof=1) / math.sqrt(acc.size)))
        cost = f["validation_cost"][l]
        row.update(cv_cost_mean=float(np.mean(cost)), cv_cost_se=float(np.std(cost, ddof=1) / math.sqrt(cost.size)))
        refit = eta == refit_eta and lm in refit_lmbdas
        src = ({name: v[refit_lmbdas.index(lm)] for name, v in refit_final.items()} if refit
               else {name: float(np.mean(v[l])) for name, v in f.items()})
        for name in ("training_accuracy", "test_accuracy"):
            row[name] = None if regression else float(src[name])
        row["training_cost"], row["test_cost"] = float(src["training_cost"]), float(src["test_cost"])
        row["gap"] = (row["test_cost"] - row["training_cost"]) if regression else (
            row["training_accuracy"] - row["test_accuracy"])
        row["weight_sq_norm"] = float(src["weight_sq_norm"])
        row["refit"] = refit
        row["diverged"] = bool(choice.diverged[l]) or (refit and bool(refit_diverged[refit_lmbdas.index(lm)]))
        row["chosen"] = l == choice.index
        rows.append(row)
    return rows


# ---------------------------------------------------------------- the API


def sweep(
    dataset: str | Dataset = "digits", *,
    lmbda: float | Sequence[float] | None = None, eta: float | Sequence[float] = DEFAULT_ETA,
    folds: int = DEFAULT_FOLDS, select: str = "min", lmbda_grid: str | None = None,
    epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
    sizes: Sequence[int] | str | None = None, activation: str = "sigmoid", cost: str = "cross-entropy",
    init: str = "default", train_size: int | None = None, data_dir: str | None = None,
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
    options are :func:`l2reg.train.train`'s (one momentum, one weight
    decay); CV models and refit use them alike; the decay is coupled except
    adamw's.

    ``backend="ray"`` trains the grid in blocks on a Ray cluster
    (:mod:`l2reg.distributed`; ``address`` "auto" or HOST:PORT, default a
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

    prep: object
    task: CVTask
    grid: list
    etas: list
    regression: bool
    config: dict  # the options as given (SweepOptions.to_config): what checkpoints and a resume compare


def cv_folds_for(opts, y, classification: bool) -> list:
    """The CV folds of ``opts`` (``folds``, ``seed``) on labels ``y``, checked against ``batch_size``."""
    k = check_folds(opts.folds, y, classification)
    folds = make_folds(y, k, opts.seed[0], classification)
    n_min = min(len(tr) for tr, _ in folds)
    if opts.batch_size > n_min:
        raise ConfigError(f"batch_size must be an integer between 1 and {n_min} (the smallest fold's training "
                          f"size); got {opts.batch_size}.")
    return folds


def plan_sweep(opts: SweepOptions) -> SweepPlan:
    """Load the data and lay out the grid × folds of checked ``opts`` (the data-dependent checks)."""
    from .train import decay_warnings, prepare

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


class LocalExecutor:
    """Trains the sweep's two stages in this process: the whole CV grid as one block, then the refit.

    With a run folder, each stage rewrites its checkpoint after every epoch
    (``checkpoint-cv.npz``, ``checkpoint-refit.npz``; ``config`` is what a
    resume must match) and ``resume`` continues from them.
    :class:`l2reg.distributed.RayExecutor` is the cluster's.
    """

    def __init__(self, run_dir=None, *, resume: bool = False, config: dict | None = None):
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.resume = resume
        self.config = config or {}

    def _checkpoint(self, name: str, config: dict):
        from .engine import Checkpointing

        if self.run_dir is None:
            return None
        path = self.run_dir / name
        return Checkpointing(path, config, bool(self.resume and path.exists()))

    def cv(self, task: CVTask, on_epoch=None) -> CVRun:
        """Every pair on every fold, as one stack."""
        return cross_validate(task.spec, task.X, task.y, task.opts, task.folds, pair_lmbda=task.pair_lmbda,
                              pair_eta=task.pair_eta, group_seeds=task.seeds, X_test=task.X_test,
                              y_test=task.y_test, on_epoch=on_epoch,
                              checkpoint=self._checkpoint(CHECKPOINT_CV, self.config))

    def refit(self, task: CVTask, grid: list, eta: float, on_epoch=None) -> dict:
        """The λ path ``grid`` at ``eta`` on all the training rows (:func:`refit_path`)."""
        config = dict(self.config, stage="refit", refit_eta=eta, refit_lmbdas=list(grid))
        return refit_path(task, grid, eta, on_epoch=on_epoch, checkpoint=self._checkpoint(CHECKPOINT_REFIT, config))


def sweep_with(opts: SweepOptions, *, on_epoch=None, checkpoint_dir=None, resume: bool = False,
               executor=None, on_block=None) -> SweepResult:
    """:func:`sweep` for an options object (checked). ``executor`` trains the two stages
    (default :class:`LocalExecutor`; ``opts.backend="ray"``: :class:`l2reg.distributed.RayExecutor`,
    which reports each finished block to ``on_block(done, total, cluster)``)."""
    if resume and checkpoint_dir is None:
        raise ConfigError("resume needs checkpoint_dir (the folder of the interrupted sweep).")
    if executor is None:
        executor = make_executor(opts, checkpoint_dir, resume=resume, on_block=on_block)
    plan = plan_sweep(opts)
    interrupts.phase("data")
    cv = executor.cv(plan.task, on_epoch)
    score = cv.final["validation_cost" if plan.regression else "validation_accuracy"]
    choice = choose(score, cv.diverged, E=len(plan.etas), rule=opts.select, higher_is_better=not plan.regression)
    stage2 = None if on_epoch is None else (lambda ep, m: on_epoch(None if ep is None else opts.epochs + ep, m))
    refit_eta = cv.etas[choice.index]
    interrupts.phase("refit")
    refit = executor.refit(plan.task, plan.grid, refit_eta, stage2)
    rows = _summary_rows(cv, choice, refit_eta, plan.grid, refit["final"], refit["diverged"], plan.regression,
                         plan.prep.n)
    return SweepResult(
        config=_result_config(opts, plan, eta=refit_eta), rows=rows, chosen_index=choice.index,
        min_index=choice.best, cv=cv, refit_lmbdas=list(plan.grid), refit_history=refit["history"],
        refit_params=refit["params"], train_seconds=cv.train_seconds + refit["train_seconds"],
        compile_seconds=cv.compile_seconds + refit["compile_seconds"], notes=plan.prep.data.notes,
        refit_terms=refit["terms"], options=plan.config)


def make_executor(opts: SweepOptions, run_dir=None, *, resume: bool = False, on_block=None):
    """The executor of ``opts.backend``: in process, or on a Ray cluster (``address``, ``block_size``)."""
    if opts.backend == "ray":
        from .distributed import RayExecutor

        return RayExecutor(run_dir, resume=resume, config=opts.to_config(), address=opts.address,
                           block_size=opts.block_size, on_block=on_block)
    return LocalExecutor(run_dir, resume=resume, config=opts.to_config())


def refit_path(task: CVTask, grid: list, eta: float, *, on_epoch=None, checkpoint=None) -> dict:
    """The λ path ``grid`` at ``eta`` refit on all n training rows, evaluated on the test set each epoch.

    Returns the final C0, accuracy and Σw² per set (``final[name]`` ``(R,)``),
    the per-epoch ``history`` (``test_*`` for the test set), ``diverged``
    ``(R,)``, ``terms`` (:func:`l2reg.explain.final_terms`), ``params`` (one
    model each) and the seconds spent.
    """
    from .engine import Members, fit_stack
    from .explain import final_terms

    t, opts = task, task.opts
    n, R = len(t.X), len(grid)
    lmbda = np.asarray(grid, np.float64)
    members = Members(lmbda=lmbda, eta=np.full(R, eta),
                      momentum=None if opts.momentum is None else np.full(R, opts.momentum[0]),
                      weight_decay=None if opts.weight_decay is None else np.full(R, opts.weight_decay[0]))
    r = fit_stack(t.spec, t.X, t.y, opts, groups=[np.arange(n)], group_seeds=list(opts.seed), members=members,
                  eval_sets={"evaluation": (t.X_test, t.y_test, None)}, monitor=MONITORS, on_epoch=on_epoch,
                  checkpoint=checkpoint)
    pen = _penalty_history(r.history, lmbda, np.full(R, n))  # (epochs, R)
    final = _final_metrics(t.spec, r.params, r.history, pen[-1], {"training": (t.X, t.y, None),
                           "test": (t.X_test, t.y_test, None)}, {"training": "training", "test": "evaluation"})
    history = {name.replace("evaluation", "test"): (h - pen if name.endswith("_cost") else h)
               for name, h in r.history.items() if name != "penalty"}
    terms = final_terms(t.spec, r.params, t.X, t.y, members=members, n=n, opts=opts)
    return {"final": final, "history": history, "diverged": r.diverged_epoch > 0, "terms": terms,
            "params": [network.unstack(r.params, i) for i in range(R)], "train_seconds": r.train_seconds,
            "compile_seconds": r.compile_seconds}


def _result_config(opts: SweepOptions, plan: SweepPlan, *, eta: float) -> dict:
    """``sweep.json``'s config: every option, the grid (``lmbda``, ``etas``), the chosen ``eta``, and what
    the data fixed."""
    t = plan.task
    config = opts.to_config()
    config.update(lmbda=list(plan.grid), eta=eta, etas=list(plan.etas), seed=opts.seed[0],
                  momentum=opts.momentum and opts.momentum[0], weight_decay=opts.weight_decay and opts.weight_decay[0],
                  sizes=list(t.spec.sizes),
                  folds=len(t.folds), fold_seeds=list(t.seeds), n=plan.prep.n,
                  n_fold=[int(len(tr)) for tr, _ in t.folds], n_test=int(len(t.X_test)), regression=plan.regression,
                  models_cv=len(t.pair_lmbda) * len(t.folds), models_refit=len(plan.grid))
    return config


def resume_options(run_dir, given: dict, explicit: set) -> SweepOptions:
    """Options to resume the sweep in ``run_dir``: the CV checkpoint's own, except those given explicitly."""
    from .train import resume_options as resume_train

    return resume_train(run_dir, given, explicit, cls=SweepOptions, filename=CHECKPOINT_CV)
