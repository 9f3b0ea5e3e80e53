"""The regularization path: choose λ by k-fold cross-validation, every λ × fold at once.

For a grid λ_1 < … < λ_L and k stratified folds of the *training* set, the
L·k models train in one call of :func:`l2reg.train.fit_stack`: the folds are
its G = k groups (group g trains on every training example outside fold g,
so n = that fold's training size in the penalty (λ/2n)·Σw² and in the decay
factor 1 − ηλ/n), the λs are the L members of every group. Each model is then
scored on its own held-out fold through a ``(n, K)`` membership mask over the
training set, so the whole path × folds is a single vectorized run.

Selection, over the final-epoch validation scores of the k folds:

* ``min``: the λ with the best mean validation accuracy (the lowest mean
  validation C0 for regression); ties go to the larger λ;
* ``1se``: the largest λ whose mean is within one standard error of the best
  (glmnet's ``lambda.1se``), SE = sample std over the folds / √k.

The chosen λ, its grid neighbours and the baseline (the smallest λ, normally
0) are then refit on the whole training set (n = the training-set size) in a
second vectorized run, evaluated on the test set. The test set is used only
for that final report, never for selection.

Learning rates (``etas``): the grid becomes the pairs η × λ (λ fastest), the
E·L pairs being the members of every fold, K = k·E·L in the same single run.
Selection is over pairs: ``min`` takes the pair with the best mean (ties go
to the later pair in (η, λ) order); ``1se`` first takes the η of that best
pair, then the largest λ at that η within one SE of the best mean, so the
"one SE" rule trades λ only, never η. The refit uses the chosen η.

Divergence: a pair whose model diverged (cost NaN/inf or past a bound) on
any fold is marked ``"diverged": true`` and takes no part in selection.

Checkpoints (``checkpoint_dir``): the CV run writes ``checkpoint-cv.npz`` and
the refit ``checkpoint-refit.npz`` after every epoch; ``resume=True``
continues from them (a finished CV stage goes straight to the refit).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import checkpoint as ckpt
from . import network, store
from . import validation as V
from .data import Dataset, load_dataset
from .errors import ConfigError, ConfigTypeError, DataError
from .network import NetworkSpec
from .train import MONITORS, _resolve_sizes, check_options, check_optimizer_options, fit_stack

log = logging.getLogger(__name__)

SELECT = ("min", "1se")
#: The default grid, as λ/n with n the training-set size: from no visible
#: effect (λ/n = 1e-5) to underfitting (λ/n = 3e-2), for η ≈ 0.5 and m ≈ 10.
DEFAULT_LMBDA_OVER_N = (1e-5, 3e-2)
DEFAULT_GRID_SIZE = 12
#: Grid neighbours refit on each side of the chosen λ.
NEIGHBOURS = 1
#: What the CV models record each epoch by default: their held-out fold
#: ("evaluation"). Each extra set costs a forward pass of all λ × folds
#: models over the whole training set per epoch.
CV_MONITOR = ("evaluation_cost", "evaluation_accuracy")
CHECKPOINT_CV = "checkpoint-cv.npz"
CHECKPOINT_REFIT = "checkpoint-refit.npz"


# ---------------------------------------------------------------- the grid


def _round_sig(x: float, digits: int = 2) -> float:
    return float(f"{x:.{digits}g}")


def default_grid(n: int, size: int = DEFAULT_GRID_SIZE) -> list[float]:
    """λ = 0 plus ``size`` log-spaced values with λ/n from 1e-5 to 3e-2 (2 significant digits)."""
    lo, hi = DEFAULT_LMBDA_OVER_N
    return [0.0] + sorted({_round_sig(v) for v in np.geomspace(lo * n, hi * n, size)})


def parse_grid(text: str) -> list[float]:
    """``"LO:HI:K"`` → λ = 0 plus K log-spaced values from LO to HI (0 < LO ≤ HI)."""
    bad = ConfigError(f"lmbda_grid must be LO:HI:K with 0 < LO <= HI and an integer K >= 1; got {text!r}.")
    parts = str(text).split(":")
    if len(parts) != 3:
        raise bad
    try:
        lo, hi, k = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise bad from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi and k >= 1) or (k > 1 and lo == hi):
        raise bad
    return [0.0] + [float(v) for v in np.geomspace(lo, hi, k)]


def check_grid(lmbdas) -> list[float]:
    """A non-empty list of finite λ ≥ 0, returned sorted with repeats removed."""
    values = V.numbers_list("lmbdas", lmbdas, low=0)
    return sorted(set(values))


def check_folds(folds, y, classification: bool) -> int:
    """``folds`` as an int in [2, what the data allow]: the smallest class count (stratified), else n."""
    k = V.integer("folds", folds, low=2)
    n = len(y)
    if classification:
        counts = np.bincount(np.asarray(y, np.int64))
        counts = counts[counts > 0]
        smallest = int(counts.min())
        label = int(np.flatnonzero(np.bincount(np.asarray(y, np.int64)) == smallest)[0])
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


def fold_seeds(seed: int, k: int) -> list[int]:
    """One seed per fold (its initial weights and data order), derived from ``seed``."""
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


# ---------------------------------------------------------------- the CV run


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
    dev = {name: (jnp.asarray(X, dtype), jnp.asarray(Y), None if m is None else jnp.asarray(m, dtype))
           for name, (X, Y, m) in sets.items()}
    return {name: (np.asarray(c0), np.asarray(acc)) for name, (c0, acc) in _evaluate_sets(spec, p, dev).items()}


def _final_metrics(spec, params, history, penalty_last, sets: dict, monitored: dict) -> dict:
    """Last-epoch C0 and accuracy per set, ``(K,)``: from the history when it was recorded, else computed.

    ``monitored`` maps a set name to its name in ``history``; ``penalty_last``
    ``(K,)`` is (λ/2n)·Σw², which the history's costs include.
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


@dataclass
class CVRun:
    """The λ × fold stack after training.

    ``final[name]`` is ``(L, k)`` (λ by fold) at the last epoch: ``training_*``
    on the fold's own training examples, ``validation_*`` on its held-out
    fold, ``test_*`` when a test set was given, and ``weight_sq_norm``.
    Costs are C0 (no penalty). ``history[name]`` is ``(epochs, L, k)`` for
    the monitored quantities (validation in place of "evaluation").
    """

    lmbdas: list
    folds: list
    final: dict
    history: dict
    params: list
    train_seconds: float
    compile_seconds: float
    etas: list | None = None  # η of each of the L members
    diverged: np.ndarray | None = None  # (L, k) True where the model diverged


def cross_validate(
    spec: NetworkSpec,
    X,
    y,
    lmbdas: Sequence[float],
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    group_seeds: Sequence[int],
    eta,
    epochs: int,
    batch_size: int,
    init: str = "default",
    penalty: str = "l2",
    monitor: Sequence[str] = MONITORS,
    X_test=None,
    y_test=None,
    on_epoch: Callable | None = None,
    **fit_kwargs,
) -> CVRun:
    """Train every λ on every fold in one :func:`fit_stack` call. Arguments are trusted.

    Model k = g·L + l is fold g, member l (λ_l, and η_l when ``eta`` is a
    sequence of L values, one per member; else one η for all); it trains on
    ``folds[g][0]`` with n = its length. Validation goes through ``eval_sets`` as the training set
    with a ``(n, K)`` mask marking each fold's held-out examples.
    ``fit_kwargs`` (optimizer, schedule, penalty options) go to :func:`fit_stack`.
    """
    L, k = len(lmbdas), len(folds)
    K = L * k
    member_eta = np.broadcast_to(np.asarray(eta, np.float64), (L,))
    held_out = np.zeros((len(X), K), np.float32)  # (n, K)
    trained = np.zeros((len(X), K), np.float32)  # (n, K)
    for g, (tr, va) in enumerate(folds):
        held_out[va, g * L : (g + 1) * L] = 1.0
        trained[tr, g * L : (g + 1) * L] = 1.0
    result = fit_stack(
        spec, X, y,
        groups=[tr for tr, _ in folds], group_seeds=list(group_seeds),
        lmbda=np.tile(np.asarray(lmbdas, np.float64), k), eta=np.tile(member_eta, k),
        epochs=epochs, batch_size=batch_size, init=init, penalty=penalty,
        eval_sets={"evaluation": (X, y, held_out)}, monitor=monitor, on_epoch=on_epoch, **fit_kwargs,
    )
    by_fold = lambda a: np.asarray(a).reshape(*np.shape(a)[:-1], k, L).swapaxes(-1, -2)  # noqa: E731  (..., L, k)
    pen = _penalty_history(result.history, np.tile(np.asarray(lmbdas, np.float64), k),
                           np.repeat([len(tr) for tr, _ in folds], L))  # (epochs, K)
    sets = {"training": (X, y, trained), "validation": (X, y, held_out)}
    if X_test is not None:
        sets["test"] = (X_test, y_test, None)
    final = _final_metrics(spec, result.params, result.history, pen[-1], sets,
                           {"training": "training", "validation": "evaluation"})
    final = {name: by_fold(v) for name, v in final.items()}
    history = {}
    for name, h in result.history.items():
        if name in ("weight_sq_norm_per_layer", "penalty"):
            continue
        if name.endswith("_cost"):
            h = h - pen  # report C0, comparable across λ
        history[name.replace("evaluation", "validation")] = by_fold(h)
    return CVRun(list(lmbdas), list(folds), final, history, result.params,
                 result.train_seconds, result.compile_seconds, [float(e) for e in member_eta],
                 by_fold(result.diverged_epoch > 0))


# ---------------------------------------------------------------- the result


@dataclass
class SweepResult:
    """The result of :func:`sweep`.

    ``rows``: one dict per (η, λ) pair (η then λ ascending; one η unless
    ``etas`` was given) with ``eta``, ``lmbda``, ``cv_accuracy_mean``,
    ``cv_accuracy_se``, ``cv_cost_mean``, ``cv_cost_se``, ``training_accuracy``,
    ``test_accuracy``, ``gap`` (training − test accuracy), ``weight_sq_norm``,
    ``refit`` (True: those numbers come from the model refit on the whole
    training set; False: the mean of the k fold models), ``diverged`` (on
    some fold, or in the refit: no part in selection) and ``chosen``.
    ``cv`` is the :class:`CVRun` (its members are the pairs, in row order);
    ``refit_history[name]`` is ``(epochs, R)`` over ``refit_lmbdas``, all at
    the chosen η (``test_*`` is the test set), and ``refit_params[r]`` the
    refit model r.
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

    @property
    def lmbdas(self) -> list:
        """λ of every row (repeated per η when several)."""
        return [r["lmbda"] for r in self.rows]

    @property
    def etas(self) -> list:
        return list(self.config.get("etas") or [self.config["eta"]])

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
        L = len(self.rows)
        histories = []
        for l, row in enumerate(self.rows):
            folds = []
            for g, (tr, va) in enumerate(self.cv.folds):
                f = {"fold": g, "n": int(len(tr)), "n_validation": int(len(va)),
                     "diverged": bool(self.cv.diverged[l, g])}
                for name, h in self.cv.history.items():
                    if name != "diverged":
                        f[name] = [float(v) for v in h[:, l, g]]
                folds.append(f)
            histories.append({"eta": row["eta"], "lmbda": row["lmbda"], "folds": folds})
        refit = []
        for r, lm in enumerate(self.refit_lmbdas):
            run = {"eta": self.chosen_eta, "lmbda": lm}
            for name, h in self.refit_history.items():
                if name not in ("weight_sq_norm_per_layer", "diverged"):
                    run[name] = [float(v) for v in h[:, r]]
            refit.append(run)
        return {
            "config": self.config,
            "rows": self.rows,
            "chosen_lmbda": self.chosen_lmbda,
            "chosen_eta": self.chosen_eta,
            "etas": self.etas,
            "min_lmbda": self.rows[self.min_index]["lmbda"],
            "min_eta": self.rows[self.min_index]["eta"],
            "select": self.config["select"],
            "summary": self.gap_summary(),
            "test_set_use": "The test set was used only for this final report, never to choose λ.",
            "histories": histories,
            "refit": refit,
            "folds": [[int(i) for i in va] for _, va in self.cv.folds],
            "train_seconds": self.train_seconds,
            "compile_seconds": self.compile_seconds,
            "cv_train_seconds": self.cv.train_seconds,
            "cv_compile_seconds": self.cv.compile_seconds,
            "n_lmbdas": L,
        }

    def save(self, out) -> None:
        """Write ``out/sweep.json``, ``out/report.html`` and ``out/params.npz`` (the refit models)."""
        from .report import sweep_report_html

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        arrays = {"lmbda": np.array(self.refit_lmbdas), "eta": np.full(len(self.refit_lmbdas), self.chosen_eta)}
        for i in range(len(self.refit_params[0])):
            arrays[f"w{i}"] = np.stack([p[i]["w"] for p in self.refit_params])
            arrays[f"b{i}"] = np.stack([p[i]["b"] for p in self.refit_params])
        store.write_npz(out / "params.npz", arrays)
        store.write_json(out / "sweep.json", self.to_json())
        store.write_text(out / "report.html", sweep_report_html(self))


# ---------------------------------------------------------------- the API


def _summary_rows(cv: CVRun, refit_eta, refit_lmbdas, refit_final, refit_diverged, chosen, regression) -> list[dict]:
    """One row per member (η, λ) of the CV run; refit numbers where the pair was refit."""
    k = len(cv.folds)
    f = cv.final
    rows = []
    for l, (eta, lm) in enumerate(zip(cv.etas, cv.lmbdas)):
        se = lambda a: float(np.std(a, ddof=1) / math.sqrt(k))  # noqa: E731
        row = {"eta": eta, "lmbda": lm, "lmbda_over_n": None}
        if regression:
            row.update(cv_accuracy_mean=None, cv_accuracy_se=None)
        else:
            row.update(cv_accuracy_mean=float(np.mean(f["validation_accuracy"][l])),
                       cv_accuracy_se=se(f["validation_accuracy"][l]))
        row.update(cv_cost_mean=float(np.mean(f["validation_cost"][l])), cv_cost_se=se(f["validation_cost"][l]))
        refit = eta == refit_eta and lm in refit_lmbdas
        if refit:
            src = {name: v[refit_lmbdas.index(lm)] for name, v in refit_final.items()}
        else:
            src = {name: float(np.mean(v[l])) for name, v in f.items()}
        for name in ("training_accuracy", "test_accuracy"):
            row[name] = None if regression else float(src[name])
        row["training_cost"], row["test_cost"] = float(src["training_cost"]), float(src["test_cost"])
        row["gap"] = (row["test_cost"] - row["training_cost"]) if regression else (
            row["training_accuracy"] - row["test_accuracy"])
        row["weight_sq_norm"] = float(src["weight_sq_norm"])
        row["refit"] = refit
        row["diverged"] = bool(cv.diverged[l].any()) or (refit and bool(refit_diverged[refit_lmbdas.index(lm)]))
        row["chosen"] = l == chosen
        rows.append(row)
    return rows


def _jsonable(obj):
    """``obj`` as it reads back from JSON (tuples as lists, numpy scalars as Python), for config checks."""
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, (Path, np.ndarray)):
            return str(o) if isinstance(o, Path) else o.tolist()
        raise TypeError(type(o).__name__)

    return json.loads(json.dumps(obj, default=default))


def resume_kwargs(run_dir, given: dict, explicit: set) -> dict:
    """Options to resume the sweep in ``run_dir``: the CV checkpoint's own, except those given explicitly.

    An explicitly given option that differs from the checkpoint's is then
    refused by :func:`sweep`, which names it.
    """
    saved = ckpt.read_meta(Path(run_dir) / CHECKPOINT_CV).get("config", {})
    return {name: saved[name] if name not in explicit and name in saved else value for name, value in given.items()}


def sweep(
    dataset: str | Dataset = "digits",
    sizes: Sequence[int] | str | None = None,
    epochs: int = 30,
    batch_size: int = 10,
    eta: float = 0.5,
    lmbdas: Sequence[float] | None = None,
    lmbda_grid: str | None = None,
    folds: int = 5,
    select: str = "min",
    init: str = "default",
    cost: str = "cross-entropy",
    activation: str = "sigmoid",
    penalty: str = "l2",
    train_size: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    monitor: Sequence[str] = CV_MONITOR,
    on_epoch: Callable[[int | None, dict | None], None] | None = None,
    *,
    etas: Sequence[float] | None = None,
    optimizer: str = "sgd",
    momentum: float | None = None,
    weight_decay: float | None = None,
    decay_scaling: str | None = None,
    l1_ratio: float | None = None,
    l1_update: str = "subgradient",
    penalize_biases: bool = False,
    schedule: str = "constant",
    warmup_epochs: int = 0,
    step_epochs: int | None = None,
    step_gamma: float = 0.1,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> SweepResult:
    """Choose λ (and η) by stratified k-fold cross-validation on the training set.

    ``lmbdas`` (a list) or ``lmbda_grid`` (``"LO:HI:K"``: 0 plus K log-spaced
    values) give the grid; by default λ = 0 plus 12 values with λ/n from
    1e-5 to 3e-2 (n = training-set size). ``etas`` (a list of η > 0, in place
    of ``eta``) makes the grid η × λ. All pairs × ``folds`` models train in one
    vectorized run (fold g: n = its training size, seed from
    :func:`fold_seeds`), ``select`` picks the pair (``min`` or ``1se``, see the
    module docstring; diverged pairs are ignored), then the chosen λ, its
    neighbours and the smallest λ are refit at the chosen η on the whole
    training set (n = training-set size, seed ``seed``) and evaluated on the
    test set, which plays no part in the choice. ``monitor`` is what the CV
    models record per epoch ("evaluation" = each model's held-out fold);
    selection uses the last epoch either way, and the refit always records
    training and test (the learning curves). ``on_epoch`` sees 2·epochs
    epochs: the CV run, then the refit. ``optimizer`` and the options after
    it are :func:`l2reg.train.train`'s (one momentum, one weight decay); CV
    models and refit use them alike; the decay is coupled except adamw's.

    ``checkpoint_dir``: write ``checkpoint-cv.npz`` and ``checkpoint-refit.npz``
    there after every epoch of each stage; ``resume=True`` continues from them
    (the options must be the ones the checkpoint holds; the first that
    differs is named). With checkpoints, Ctrl-C stops after the current epoch
    and raises :class:`~l2reg.errors.Interrupted`.
    """
    if lmbdas is not None and lmbda_grid is not None:
        raise ConfigError("give lmbdas or lmbda_grid, not both.")
    V.choice("select", select, SELECT)
    seed = V.integer("seed", seed, low=0)
    grid = None
    if lmbda_grid is not None:
        if not isinstance(lmbda_grid, str):
            raise ConfigTypeError(f"lmbda_grid must be a string LO:HI:K; got {lmbda_grid!r}.")
        grid = parse_grid(lmbda_grid)
    elif lmbdas is not None:
        grid = check_grid(lmbdas)
    given_lmbdas = None if lmbdas is None else list(grid)
    V.number("eta", eta, low=0, strict=True)
    eta_list = [float(eta)] if etas is None else sorted(set(V.numbers_list("etas", etas, low=0, strict=True)))
    check_options(
        epochs=epochs, batch_size=batch_size, eta=eta_list, lmbda=grid or [0.0], init=init, cost=cost,
        activation=activation, penalty=penalty, eval="test", seeds=seed, monitor=monitor,
    )
    fit_kw = check_optimizer_options(
        optimizer=optimizer, penalty=penalty, epochs=epochs, momentum=momentum, weight_decay=weight_decay,
        decay_scaling=decay_scaling, l1_ratio=l1_ratio, l1_update=l1_update, penalize_biases=penalize_biases,
        schedule=schedule, warmup_epochs=warmup_epochs, step_epochs=step_epochs, step_gamma=step_gamma,
        lmbdas=grid,
    )
    for key in ("momentum", "weight_decay"):
        if fit_kw[key] is not None:
            if len(fit_kw[key]) != 1:
                raise ConfigError(f"{key} must be one number in a sweep (the grid is λ); got {fit_kw[key]!r}.")
            fit_kw[key] = fit_kw[key][0]
    if resume and checkpoint_dir is None:
        raise ConfigError("resume needs checkpoint_dir (the folder of the interrupted sweep).")
    if isinstance(dataset, Dataset) and train_size is not None:
        raise ConfigError("train_size applies when loading by name; slice the Dataset instead.")
    data = dataset if isinstance(dataset, Dataset) else load_dataset(
        dataset, data_dir, train_size=train_size, eval="test"
    )
    if data.X_test is None:
        raise DataError(f"dataset {data.name!r} has no test split; the sweep reports on the test set.")
    regression = not data.is_classification
    if regression and cost != "quadratic":
        raise ConfigError(f"real-valued targets need cost='quadratic' (linear outputs); got {cost!r}.")
    spec = NetworkSpec(_resolve_sizes(sizes, data, regression), activation, cost, regression)
    n = data.n_train
    k = check_folds(folds, data.y_train, not regression)
    cv_folds = make_folds(data.y_train, k, seed, not regression)
    n_min = min(len(tr) for tr, _ in cv_folds)
    if batch_size > n_min:
        raise ConfigError(
            f"batch_size must be an integer between 1 and {n_min} (the smallest fold's training size); "
            f"got {batch_size}."
        )
    if grid is None:
        grid = default_grid(n)
        if optimizer == "adamw" and penalty in ("l2", "elastic-net"):
            raise ConfigError("optimizer 'adamw' decays by weight_decay, not λ: give penalty 'l1' or 'none' with "
                              "lmbdas, or sweep optimizer 'adam' (coupled L2).")
    L, E = len(grid), len(eta_list)
    P = E * L  # pairs (η, λ), λ fastest: the members of every fold
    X, y, X_test, y_test = data.X_train, data.y_train, data.X_test, data.y_test
    log.info("sweep: %d η × %d λ × %d folds = %d models, n = %d", E, L, k, P * k, n)
    # The options as given (JSON-normalized): what a resume must match, and its defaults.
    options = _jsonable({
        "dataset": data.name if isinstance(dataset, Dataset) else str(dataset), "sizes": list(spec.sizes),
        "epochs": epochs, "batch_size": batch_size, "eta": float(eta),
        "etas": None if etas is None else eta_list, "lmbdas": given_lmbdas, "lmbda_grid": lmbda_grid, "folds": k,
        "select": select, "init": init, "cost": cost, "activation": activation, "penalty": penalty,
        "train_size": train_size, "seed": seed, "data_dir": None if data_dir is None else str(data_dir),
        "monitor": list(monitor), "optimizer": optimizer, "momentum": momentum, "weight_decay": weight_decay,
        "decay_scaling": decay_scaling, "l1_ratio": l1_ratio, "l1_update": l1_update,
        "penalize_biases": bool(penalize_biases), "schedule": schedule, "warmup_epochs": warmup_epochs,
        "step_epochs": step_epochs, "step_gamma": step_gamma,
    })
    ckdir = None if checkpoint_dir is None else Path(checkpoint_dir)

    cv = cross_validate(
        spec, X, y, grid * E, cv_folds, group_seeds=fold_seeds(seed, k), eta=np.repeat(eta_list, L),
        epochs=epochs, batch_size=batch_size, init=init, penalty=penalty, monitor=monitor, X_test=X_test,
        y_test=y_test, on_epoch=on_epoch, **fit_kw,
        checkpoint=None if ckdir is None else ckdir / CHECKPOINT_CV, checkpoint_config=options, resume=resume,
    )
    score = cv.final["validation_cost" if regression else "validation_accuracy"]
    mean, se = score.mean(axis=1), score.std(axis=1, ddof=1) / math.sqrt(k)  # (P,)
    diverged = cv.diverged.any(axis=1)  # (P,)
    if diverged.all():
        raise DataError("every configuration diverged in cross-validation; lower eta or the largest lmbdas.")
    if diverged.any():
        log.warning("%d of %d (η, λ) pairs diverged on some fold; selection ignores them", diverged.sum(), P)
    usable = np.where(diverged, np.nan, mean)
    e, l = select_pair(usable.reshape(E, L), se.reshape(E, L), select, higher_is_better=not regression)
    be, bl = select_pair(usable.reshape(E, L), se.reshape(E, L), "min", higher_is_better=not regression)
    chosen, best = e * L + l, be * L + bl
    refit_eta = eta_list[e]

    picks = {0, *range(max(0, l - NEIGHBOURS), min(L, l + NEIGHBOURS + 1))} | ({bl} if be == e else set())
    refit_lmbdas = [grid[i] for i in sorted(picks)]
    R = len(refit_lmbdas)
    stage2 = None if on_epoch is None else (
        lambda ep, m: on_epoch(None if ep is None else epochs + ep, m))  # noqa: E731
    refit_ckpt = None if ckdir is None else ckdir / CHECKPOINT_REFIT
    refit = fit_stack(
        spec, X, y, groups=[np.arange(n)], group_seeds=[seed], lmbda=np.asarray(refit_lmbdas),
        eta=np.full(R, refit_eta), epochs=epochs, batch_size=batch_size, init=init, penalty=penalty,
        eval_sets={"evaluation": (X_test, y_test, None)}, monitor=MONITORS, on_epoch=stage2, **fit_kw,
        checkpoint=refit_ckpt, resume=bool(resume and refit_ckpt.exists()),
        checkpoint_config=dict(options, stage="refit", refit_eta=refit_eta, refit_lmbdas=refit_lmbdas),
    )
    pen = _penalty_history(refit.history, np.asarray(refit_lmbdas), np.full(R, n))  # (epochs, R)
    refit_final = _final_metrics(spec, refit.params, refit.history, pen[-1],
                                 {"training": (X, y, None), "test": (X_test, y_test, None)},
                                 {"training": "training", "test": "evaluation"})
    refit_history = {}
    for name, h in refit.history.items():
        if name == "penalty":
            continue
        if name.endswith("_cost"):
            h = h - pen
        refit_history[name.replace("evaluation", "test")] = h

    rows = _summary_rows(cv, refit_eta, refit_lmbdas, refit_final, refit.diverged_epoch > 0, chosen, regression)
    for row in rows:
        row["lmbda_over_n"] = row["lmbda"] / n
    config = {
        "dataset": options["dataset"],
        "sizes": list(spec.sizes), "epochs": epochs, "batch_size": batch_size, "eta": refit_eta, "etas": eta_list,
        "lmbdas": grid, "lmbda_grid": lmbda_grid, "folds": k, "select": select, "init": init, "cost": cost,
        "activation": activation, "penalty": penalty, "train_size": train_size, "seed": seed,
        "fold_seeds": fold_seeds(seed, k), "data_dir": None if data_dir is None else str(data_dir),
        "monitor": list(monitor), "n": n, "n_fold": [int(len(tr)) for tr, _ in cv_folds],
        "n_test": int(len(X_test)), "regression": regression, "models_cv": P * k, "models_refit": R,
        "optimizer": optimizer,
    }
    config.update({key: v for key, v in fit_kw.items() if key != "optimizer" and v is not None
                   and not key.startswith(("early", "patience", "stop_on"))})
    refit_params = [network.unstack(refit.params, r) for r in range(R)]
    return SweepResult(
        config=config, rows=rows, chosen_index=chosen, min_index=best, cv=cv, refit_lmbdas=refit_lmbdas,
        refit_history=refit_history, refit_params=refit_params,
        train_seconds=cv.train_seconds + refit.train_seconds,
        compile_seconds=cv.compile_seconds + refit.compile_seconds, notes=data.notes,
    )
