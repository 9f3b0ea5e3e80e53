"""Cross-validation, shared by every front: the grid, the folds, the blocks, the selection, the result.

For a grid λ_1 < … < λ_L (and learning rates η_1 < … < η_E: the grid is the
E·L pairs, λ fastest) and k stratified folds of the *training* set, model
(pair p, fold g) trains on every training example outside fold g (so n =
that fold's training size in the penalty (λ/2n)·Σw² and in the decay factor
1 − ηλ/n) and is scored on its own held-out fold only.

The unit of work is a *block*: some folds × some pairs (:class:`Block`), or
a run of the λ path refit on all the training rows (:class:`RefitBlock`),
trained as one stack by a front's block function, which returns a
:class:`BlockResult`. :func:`assemble` puts the CV blocks together into one
:class:`CVRun`, :func:`join_refits` the refit blocks.

Selection (:func:`choose`), over the final-epoch validation scores:

* ``min``: the pair with the best mean validation accuracy (the lowest mean
  validation C0 for regression); ties go to the later pair (the larger λ);
* ``1se``: the η of that best pair, then the largest λ at that η whose mean
  is within one standard error of the best (glmnet's ``lambda.1se``),
  SE = sample std over the folds / √k. The rule trades λ only, never η.

A pair whose model diverged on any fold takes no part. The names of every
history and score (:class:`BlockResult`), for the JAX MLP, PyTorch and JAX
models alike: ``training_*`` (each model's own training rows),
``validation_*`` (a CV model's held-out fold), ``test_*`` (the test set,
watched by the refit), ``weight_sq_norm``; costs are C0, without the penalty.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ..base import helper
from ..base import validation as V
from ..errors import ConfigError, DataError
from ..options import SELECT

log = logging.getLogger(__name__)


#: The default grid, as λ/n with n the training-set size: from no visible
#: effect (λ/n = 1e-5) to underfitting (λ/n = 3e-2), for η ≈ 0.5 and m ≈ 10.
DEFAULT_LMBDA_OVER_N = (1e-5, 3e-2)


DEFAULT_GRID_SIZE = 12


CHECKPOINT_CV = "checkpoint-cv.npz"


CHECKPOINT_REFIT = "checkpoint-refit.npz"


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
    """k ``(train_idx, val_idx)`` pairs: stratified by label for classification, shuffled by ``seed``.
    In the command line's helper process when one runs (it imports scikit-learn while this one imports JAX)."""
    return helper.call(_split, np.asarray(y), k, seed, classification)


def _split(y, k: int, seed: int, classification: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    cv = StratifiedKFold(k, shuffle=True, random_state=seed) if classification else KFold(
        k, shuffle=True, random_state=seed
    )
    X_dummy = np.zeros((len(y), 1))
    return [(np.sort(tr), np.sort(va)) for tr, va in cv.split(X_dummy, y if classification else None)]


def fold_seeds(seed: int, k: int) -> list[int]:
    """``k`` seeds, one per fold (its initial weights and data order), derived from ``seed``."""
    return [int(s) & 0x7FFFFFFF for s in np.random.SeedSequence(int(seed)).generate_state(k)]


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
    meta: dict | None = None  # the block's meta, or {"blocks": [each block's]} (:func:`stage_meta`)


@dataclass(frozen=True)
class Block:
    """A piece of the CV grid trained as one stack: some folds × some pairs (indices)."""

    folds: tuple[int, ...]
    pairs: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"f{'-'.join(map(str, self.folds))}_p{self.pairs[0]}-{self.pairs[-1]}"


@dataclass
class BlockResult:
    """What a front's block function returns for one block, the model axes last.

    A CV block (:class:`Block`) has its models as ``(..., P_b, k_b)`` (pair
    by fold), a refit block (:class:`RefitBlock`) as ``(..., R_b)``:
    ``final[name]`` at the last epoch and ``history[name]`` ``(epochs, ...)``
    under the names of this module's docstring, ``diverged``, the seconds,
    and for a refit ``params`` (one model each, the report's layers) and
    ``terms`` (the decay and data terms at the end, ``(R_b,)`` each).
    """

    final: dict
    history: dict
    diverged: np.ndarray
    train_seconds: float
    compile_seconds: float = 0.0
    params: list | None = None
    terms: dict | None = None
    meta: dict | None = None  # how the front trained the block (JSON-able; a PyTorch ensemble's strategy)

    def to_dict(self) -> dict:
        """Plain dicts, lists and arrays (what a cluster worker sends and a block file stores)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, doc: dict) -> "BlockResult":
        return cls(**{name: doc.get(name) for name in cls.__dataclass_fields__})


def assemble(task, blocks: Sequence[Block], results: Sequence[BlockResult]) -> CVRun:
    """The CV blocks' results as one :class:`CVRun` over every pair × fold of ``task``'s grid."""
    P, k = len(task.pair_lmbda), len(task.folds)

    def place(get):
        first = np.asarray(get(results[0]))
        out = np.zeros(first.shape[:-2] + (P, k), first.dtype)
        for b, r in zip(blocks, results):
            rows, cols = np.ix_(b.pairs, b.folds)
            out[..., rows, cols] = get(r)
        return out

    final = {name: place(lambda r, n=name: r.final[n]) for name in results[0].final}
    history = {name: place(lambda r, n=name: r.history[n]) for name in results[0].history}
    diverged = place(lambda r: r.diverged).astype(bool)
    params = results[0].params if len(blocks) == 1 else None
    return CVRun(list(map(float, task.pair_lmbda)), list(task.folds), final, history,
                 sum(r.train_seconds for r in results), sum(r.compile_seconds for r in results),
                 list(map(float, task.pair_eta)), diverged, params, stage_meta(results))


def stage_meta(results: Sequence[BlockResult]) -> dict | None:
    """The blocks' meta as one: the block's own for one block, ``{"blocks": [...]}`` for several, None if none."""
    metas = [r.meta for r in results]
    if all(m is None for m in metas):
        return None
    return metas[0] if len(metas) == 1 else {"blocks": metas}


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
    (:func:`l2reg.core.terms.final_terms`).
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
    stages: dict = field(default_factory=dict)  # stage ("cv", "refit") -> how its blocks were trained (meta)

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
        wd = self.config.get("decay") == "weight_decay"  # AdamW's grid: "lmbda" holds each wd (λ = 0)
        extra = {"chosen_weight_decay": self.chosen_lmbda, "min_weight_decay": self.rows[self.min_index]["lmbda"],
                 "grid": "weight_decay: the rows' lmbda values are AdamW's decoupled wd; no λ is added to the cost"
                 } if wd else {}
        return {
            "config": self.config, "options": self.options, "rows": self.rows, "chosen_lmbda": self.chosen_lmbda,
            "chosen_eta": self.chosen_eta, "etas": self.etas, "min_lmbda": self.rows[self.min_index]["lmbda"],
            "min_eta": self.rows[self.min_index]["eta"], "select": self.config["select"], **extra,
            "test_set_use": f"The test set was used only for this final report, never to choose {'wd' if wd else 'λ'}.",
            "histories": histories, "refit": refit, "folds": [[int(i) for i in va] for _, va in self.cv.folds],
            "train_seconds": self.train_seconds, "compile_seconds": self.compile_seconds,
            "cv_train_seconds": self.cv.train_seconds, "cv_compile_seconds": self.cv.compile_seconds,
            "n_lmbdas": len(self.rows),
        }


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


def cv_folds_for(opts, y, classification: bool) -> list:
    """The CV folds of ``opts`` (``folds``, ``seed``) on labels ``y``, checked against ``batch_size``."""
    k = check_folds(opts.folds, y, classification)
    folds = make_folds(y, k, opts.seed[0], classification)
    n_min = min(len(tr) for tr, _ in folds)
    if opts.batch_size > n_min:
        raise ConfigError(f"batch_size must be an integer between 1 and {n_min} (the smallest fold's training "
                          f"size); got {opts.batch_size}.")
    return folds


REFIT = "refit"


@dataclass(frozen=True)
class RefitBlock:
    """The refit as a block: the λ path ``lmbdas`` (or a run of it) at ``eta`` on all the training rows."""

    eta: float
    lmbdas: tuple[float, ...]
    name: str = REFIT


def refit_blocks(eta: float, grid: Sequence[float], block_size: int | None = None) -> list[RefitBlock]:
    """The refit of the λ path ``grid`` at ``eta`` in runs of ``block_size`` λ (None: one block, "refit")."""
    grid = tuple(float(v) for v in grid)
    if block_size is None or block_size >= len(grid):
        return [RefitBlock(float(eta), grid)]
    return [RefitBlock(float(eta), grid[a : a + block_size], f"{REFIT}_p{a}-{min(a + block_size, len(grid)) - 1}")
            for a in range(0, len(grid), block_size)]


def join_refits(results: Sequence[BlockResult]) -> BlockResult:
    """The refit blocks' results as one, models in grid order (every array has the model axis last)."""
    if len(results) == 1:
        return results[0]

    def cat(key):
        return {name: np.concatenate([getattr(r, key)[name] for r in results], axis=-1)
                for name in getattr(results[0], key)}

    return BlockResult(final=cat("final"), history=cat("history"),
                       diverged=np.concatenate([r.diverged for r in results], axis=-1),
                       train_seconds=sum(r.train_seconds for r in results),
                       compile_seconds=sum(r.compile_seconds for r in results),
                       params=[p for r in results for p in r.params], terms=cat("terms"), meta=stage_meta(results))


def plan_blocks(n_pairs: int, n_folds: int, block_size: int | None = None) -> list:
    """The blocks of a P × k grid: per fold, its pairs in runs of ``block_size`` (None: all P at once)."""
    size = n_pairs if block_size is None else min(block_size, n_pairs)
    return [Block((g,), tuple(range(a, min(a + size, n_pairs)))) for g in range(n_folds)
            for a in range(0, n_pairs, size)]


def epoch_order(seed: int, n: int, epoch: int) -> np.ndarray:
    """The order of a fold's ``n`` training rows in ``epoch`` (the fold's ``seed``): a permutation of ``range(n)``."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)
