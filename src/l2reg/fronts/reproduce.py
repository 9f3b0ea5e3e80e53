"""Reproducing published results: Nielsen's chapter-3 experiments on MNIST.

Nielsen's *Neural Networks and Deep Learning*, chapter 3, trains network2.py
(784-30-10, sigmoid + cross-entropy, the ``large`` N(0, 1) initialization,
m = 10, η = 0.5) on the regularized cost C = C0 + (λ/2n)·Σw² (weights only,
n = training-set size, coupled L2: w ← (1 − ηλ/n)·w − (η/m)·Σ∂C0/∂w). His
result files (``fig/*.json`` of the book's repository) give the test
accuracies in :data:`EXPERIMENTS`. λ/n is 1e-4 in both experiments.

:func:`nielsen` runs both experiments; in each, the two λ train together in
one vectorized stack, over several seeds (K = 2·seeds models in one pass over
the data). It then goes beyond the book: λ for the 1,000-image experiment is
chosen by 5-fold cross-validation on those 1,000 images alone
(:func:`l2reg.fronts.sweeping.sweep`; the test set plays no part in the choice), and
that λ is trained with the same seeds and reported next to Nielsen's
hand-picked λ = 0.1.

"Peak" accuracy is the best test accuracy over the epochs: it is what
Nielsen's files report, but it is chosen on the test set, so it is an
optimistic number; "final" is the last epoch.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base import validation as V
from ..data import Dataset, load_dataset
from ..errors import ConfigError

log = logging.getLogger(__name__)

SIZES = (784, 30, 10)
SETTINGS = {"sizes": SIZES, "cost": "cross-entropy", "activation": "sigmoid", "init": "large",
            "batch_size": 10, "eta": 0.5}
CV_FOLDS = 5


@dataclass(frozen=True)
class Experiment:
    """One of Nielsen's runs: n training images, epochs, λ = 0 and one λ > 0.

    ``nielsen`` gives, per λ, his (final, peak) test accuracy in percent
    (``None`` where his files do not give it).
    """

    key: str
    train_size: int
    epochs: int
    lmbdas: tuple
    nielsen: tuple

    @property
    def title(self) -> str:
        return f"{self.train_size:,} training images, {self.epochs} epochs"


EXPERIMENTS = (
    Experiment("small", 1_000, 400, (0.0, 0.1), ((82.23, 82.27), (86.95, 87.10))),
    Experiment("full", 50_000, 30, (0.0, 5.0), ((95.31, None), (95.61, 96.49))),
)

#: ``--quick``: (train_size, epochs) per experiment, for a smoke test in seconds.
QUICK = {"small": (100, 5), "full": (500, 1)}


# ---------------------------------------------------------------- results


def _mean_sd(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "values": [float(x) for x in v]}


@dataclass
class ExperimentResult:
    """One experiment: the :class:`~l2reg.fronts.training.TrainResult` and its summary.

    ``rows``: one dict per λ with ``final`` and ``peak`` test accuracy (%) as
    ``{"mean", "sd", "values"}`` over the seeds, ``peak_epoch``, the final
    training accuracy, Nielsen's numbers and ``final_minus_nielsen``.
    ``gain``: final accuracy of λ > 0 minus λ = 0, paired by seed (%).
    ``seconds``: wall time of the whole experiment (compiling included).
    """

    experiment: Experiment
    train: object
    rows: list
    gain: dict
    nielsen_gain: float
    seconds: float

    def curves(self) -> dict:
        """Per-epoch histories as ``(seeds, epochs)`` arrays per λ index: ``{name: [array per λ]}``."""
        runs = self.train.runs
        out = {}
        for name in ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy"):
            out[name] = [np.array([r[name] for r in runs if r["lmbda"] == lm]) for lm in self.experiment.lmbdas]
        return out

    def to_json(self) -> dict:
        e = self.experiment
        return {
            "key": e.key, "title": e.title, "train_size": e.train_size, "epochs": e.epochs,
            "lmbdas": list(e.lmbdas), "rows": self.rows, "gain": self.gain, "nielsen_gain": self.nielsen_gain,
            "seconds": self.seconds, "train_seconds": self.train.train_seconds,
            "compile_seconds": self.train.compile_seconds, "n_models": len(self.train.runs),
        }


@dataclass
class CVChoice:
    """λ chosen by cross-validation on the small experiment's images alone.

    ``grid``, ``cv_mean`` and ``cv_se`` (%): the CV path (no refit: the
    choice is all the reproduction needs); ``lmbda`` the choice; ``test``,
    ``peak``: the chosen λ's final and peak test accuracy (%) over the seeds,
    trained in the same stack as the experiment's own λ (same seeds, initial
    weights and mini-batches), ``hand`` that of Nielsen's λ, ``difference``
    paired by seed.
    """

    lmbda: float
    hand_lmbda: float
    folds: int
    select: str
    grid: list
    cv_mean: list
    cv_se: list
    seconds: float
    test: dict | None = None
    peak: dict | None = None
    hand: dict | None = None
    difference: dict | None = None

    def to_json(self) -> dict:
        return {
            "lmbda": self.lmbda, "hand_lmbda": self.hand_lmbda, "folds": self.folds, "grid": self.grid,
            "select": self.select, "cv_accuracy": [m / 100 for m in self.cv_mean],
            "cv_accuracy_se": [x / 100 for x in self.cv_se], "test": self.test, "peak": self.peak,
            "hand": self.hand, "difference": self.difference, "seconds": self.seconds,
            "test_set_use": "λ was chosen on the training images alone; the test set only reports.",
        }


@dataclass
class Reproduction:
    """What :func:`nielsen` returns."""

    config: dict
    experiments: list
    cv: CVChoice | None
    seconds: float
    notes: tuple = ()

    def to_json(self) -> dict:
        return {
            "config": self.config,
            "experiments": [e.to_json() for e in self.experiments],
            "cv": None if self.cv is None else self.cv.to_json(),
            "seconds": self.seconds,
        }


# ---------------------------------------------------------------- running


def _summarize(exp: Experiment, result, seconds: float) -> ExperimentResult:
    rows = []
    finals = []
    for lm, (nf, npk) in zip(exp.lmbdas, exp.nielsen):
        runs = [r for r in result.runs if r["lmbda"] == lm]
        test = 100 * np.array([r["evaluation_accuracy"] for r in runs])  # (seeds, epochs)
        train_acc = 100 * np.array([r["training_accuracy"][-1] for r in runs])
        final = _mean_sd(test[:, -1])
        finals.append(test[:, -1])
        rows.append({
            "lmbda": lm,
            "final": final,
            "peak": _mean_sd(test.max(axis=1)),
            "peak_epoch": [int(i) + 1 for i in test.argmax(axis=1)],
            "training_accuracy": _mean_sd(train_acc),
            "nielsen_final": nf,
            "nielsen_peak": npk,
            "final_minus_nielsen": None if nf is None else final["mean"] - nf,
        })
    nielsen_gain = exp.nielsen[1][0] - exp.nielsen[0][0]
    return ExperimentResult(exp, result, rows, _mean_sd(finals[1] - finals[0]), nielsen_gain, seconds)


def _slice(data: Dataset, n: int) -> Dataset:
    if n > data.n_train:
        raise ConfigError(f"the experiment needs {n} training images; the dataset has {data.n_train}.")
    return dataclasses.replace(data, X_train=data.X_train[:n], y_train=data.y_train[:n])


def nielsen(
    data_dir: str | Path | None = None,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    quick: bool = False,
    experiments: Sequence[str] = ("small", "full"),
    cv: bool = True,
    cv_lmbdas: Sequence[float] | None = None,
    dataset: str = "mnist",
    progress: Callable[[str, int], object] | None = None,
) -> Reproduction:
    """Run Nielsen's chapter-3 experiments (and the CV choice of λ) on MNIST.

    * ``data_dir``: the folder with the IDX files (else ``$L2REG_DATA``, else
      the cache, downloading).
    * ``seeds``: every λ of an experiment trains once per seed, all in one
      vectorized stack; the seed draws the initial weights and the
      mini-batch order, shared by the two λ.
    * ``quick``: the sizes and epochs of :data:`QUICK` (a smoke test).
    * ``experiments``: which of ``"small"`` (1,000 images) and ``"full"``
      (50,000 images) to run.
    * ``cv``: choose λ for ``"small"`` by 5-fold cross-validation on its
      training images (grid ``cv_lmbdas``, default the sweep's: 0 plus
      λ/n from 1e-5 to 3e-2; no refit: the choice is all it needs), then
      train that λ with ``seeds`` in the small experiment's own stack.
    * ``progress``: ``progress(label, epochs)`` returns a context manager
      that yields a per-epoch callback (``on_epoch`` of :func:`~l2reg.fronts.training.train`)
      or None; the CLI passes its progress bar.
    """
    from .training import train

    seeds = V.integers_list("seeds", list(seeds) if not isinstance(seeds, int) else seeds, low=0)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct; got {','.join(map(str, seeds))}.")
    keys = [e.key for e in EXPERIMENTS]
    if isinstance(experiments, str):
        experiments = [experiments]
    for k in experiments:
        V.choice("experiments", k, keys)
    if cv and "small" not in experiments:
        raise ConfigError("the cross-validated λ is compared with the 'small' experiment; run it too, or turn cv off "
                          "(--no-cv).")
    progress = progress or (lambda label, total: nullcontext(None))

    t_all = time.perf_counter()
    data = load_dataset(dataset, data_dir, eval="test")
    chosen = [_sized(e, quick) for e in EXPERIMENTS if e.key in experiments]
    choice = None
    if cv:  # first: the CV λ then trains in the small experiment's own stack
        small = next(e for e in chosen if e.key == "small")
        choice = _cv_choice(small, _slice(data, small.train_size), seeds[0], cv_lmbdas, progress)
    results = []
    for exp in chosen:
        extra = [choice.lmbda] if choice is not None and exp.key == "small" and choice.lmbda not in exp.lmbdas else []
        log.info("nielsen: %s, λ = %s, seeds %s", exp.title, list(exp.lmbdas) + extra, seeds)
        t0 = time.perf_counter()
        with progress(f"{exp.train_size} images", exp.epochs) as on_epoch:
            result = train(dataset=_slice(data, exp.train_size), epochs=exp.epochs, lmbda=list(exp.lmbdas) + extra,
                           seed=seeds, eval="test", on_epoch=on_epoch, **SETTINGS)
        results.append(_summarize(exp, result, time.perf_counter() - t0))
    if choice is not None:
        _cv_test(choice, results[0])

    config = {"dataset": dataset, "data_dir": None if data_dir is None else str(data_dir), "seeds": seeds,
              "quick": quick, "experiments": [e.experiment.key for e in results], "cv": cv,
              **{k: list(v) if isinstance(v, tuple) else v for k, v in SETTINGS.items()}}
    return Reproduction(config, results, choice, time.perf_counter() - t_all, data.notes)


def _sized(exp: Experiment, quick: bool) -> Experiment:
    return dataclasses.replace(exp, train_size=QUICK[exp.key][0], epochs=QUICK[exp.key][1]) if quick else exp


def _cv_choice(exp: Experiment, data: Dataset, seed: int, cv_lmbdas, progress) -> CVChoice:
    """λ by 5-fold CV on the experiment's training images (the CV stage of a sweep; no refit is needed)."""
    from ..options import SweepOptions
    from .cv import choose
    from .orchestration import LocalExecutor
    from .sweeping import MLP_BLOCKS, plan_sweep

    t0 = time.perf_counter()
    opts = SweepOptions(dataset=data, epochs=exp.epochs, lmbda=cv_lmbdas, folds=CV_FOLDS, seed=seed,
                        **SETTINGS).checked()
    plan = plan_sweep(opts)
    with progress(f"{CV_FOLDS}-fold CV", exp.epochs) as on_epoch:
        cv = LocalExecutor().cv(MLP_BLOCKS.cv, plan.task, on_epoch)
    c = choose(cv.final["validation_accuracy"], cv.diverged, E=len(plan.etas), rule=opts.select)
    return CVChoice(lmbda=float(plan.grid[c.index]), hand_lmbda=exp.lmbdas[1], folds=CV_FOLDS, select=opts.select,
                    grid=[float(x) for x in plan.grid], cv_mean=list(100 * c.mean), cv_se=list(100 * c.se),
                    seconds=time.perf_counter() - t0)


def _cv_test(choice: CVChoice, small: ExperimentResult) -> None:
    """The CV λ's test accuracy, from the small experiment's stack (paired with the hand-picked λ by seed)."""
    runs = [r for r in small.train.runs if r["lmbda"] == choice.lmbda]
    test = 100 * np.array([r["evaluation_accuracy"] for r in runs])  # (seeds, epochs)
    hand = np.array(small.rows[1]["final"]["values"])
    choice.test, choice.peak = _mean_sd(test[:, -1]), _mean_sd(test.max(axis=1))
    choice.hand, choice.difference = small.rows[1]["final"], _mean_sd(test[:, -1] - hand)
