"""What the sweeps of your own models share (:func:`l2reg.torch.sweep`, :func:`l2reg.jax.sweep`): the data, the
members, the default grid, the block results, the front's ``sweep_with``.

A model's sweep trains blocks of (η, λ) pairs × folds with its library's
``train_ensemble``, whose result has the same history keys in every library
(:mod:`l2reg.models.ensembles`); :func:`cv_outputs` and :func:`refit_outputs`
shape such a result into the :class:`~l2reg.fronts.cv.BlockResult` of the one
orchestration (:func:`l2reg.fronts.orchestration.run_sweep`), which
:func:`sweep_front` runs. Nothing here imports a model's library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base import interrupts
from ..data import _is_whole
from ..errors import ConfigError, DataError
from ..fronts.cv import DEFAULT_GRID_SIZE, BlockResult, SweepResult, _round_sig, cv_folds_for, default_grid, fold_seeds
from ..fronts.orchestration import Blocks, make_executor, run_sweep
from .ensembles import Member, feature_array

#: The default grid under AdamW: wd = 0 plus 12 log-spaced values from 1e-4 to 1.
DEFAULT_WD_GRID = (1e-4, 1.0)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class FrontData:
    """The arrays of a front's sweep (PyTorch, JAX): ``X`` ``(n, ...)`` (any shape the model takes; integer X,
    token ids, int64, else float32: :func:`~l2reg.models.ensembles.feature_array`), ``y`` ``(n,)`` integer
    labels or float targets, and the test split."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    notes: tuple = ()

    @property
    def classification(self) -> bool:
        return np.issubdtype(self.y.dtype, np.integer)


def load_data(data, label_column: str = "label") -> FrontData:
    """``data``: a ``.npz`` path (``X``, ``y``, optional ``X_test``, ``y_test``), a tuple
    ``(X, y[, X_test, y_test])``, a ``.csv`` (read as ``l2reg sweep`` reads it: ``label_column``, string labels
    → classes 0..C−1), or a built-in dataset's name (``digits``, ``mnist``, ``fashion-mnist``): the rows
    ``l2reg sweep`` cross-validates on (the training split; the validation split is not used) and its test
    split."""
    named = isinstance(data, str) and data.strip().lower() in ("digits", "mnist", "fashion-mnist")
    if named or (isinstance(data, (str, Path)) and Path(data).suffix.lower() == ".csv"):
        from ..data import load_dataset

        d = load_dataset(data, eval="test", label_column=label_column)
        return FrontData(feature_array(d.X_train), _labels(_column(d.y_train), "y", len(d.X_train)),
                         feature_array(d.X_test), _labels(_column(d.y_test), "y_test", len(d.X_test)), d.notes)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.suffix.lower() != ".npz" or not path.is_file():
            raise DataError(f"data must be a .npz file with X and y (optional X_test, y_test), a .csv, or digits, "
                            f"mnist, fashion-mnist; got {data}.")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if "X" not in arrays or "y" not in arrays:
            raise DataError(f"{path.name} must hold arrays X and y; it holds {', '.join(sorted(arrays)) or 'nothing'}.")
        parts = [arrays["X"], arrays["y"], arrays.get("X_test"), arrays.get("y_test")]
    else:
        parts = list(data) + [None] * (4 - len(data))
    X, y, X_test, y_test = (None if a is None else np.asarray(a) for a in parts[:4])
    y = _labels(y, "y", len(X))
    if X_test is None:
        return _hold_out_test(feature_array(X), y)
    return FrontData(feature_array(X), y, feature_array(X_test), _labels(y_test, "y_test", len(X_test)))


def _column(y: np.ndarray) -> np.ndarray:
    """One target column as ``(n,)`` (l2reg's datasets hold regression targets as ``(n, t)``)."""
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


def _labels(y, name: str, n: int) -> np.ndarray:
    if y is None or len(y) != n:
        raise DataError(f"{name} must have one entry per row of its X ({n}); got {None if y is None else len(y)}.")
    if y.ndim != 1 or not _is_whole(y):  # as l2reg's own data files: whole numbers are class labels
        return y.astype(np.float32)
    if len(y) and y.min() < 0:
        raise DataError(f"{name}: labels must be integers in 0..C-1; found {int(y.min())}.")
    return y.astype(np.int64)


def _hold_out_test(X: np.ndarray, y: np.ndarray) -> FrontData:
    """The test set held out of X as l2reg's data files hold it out (:mod:`l2reg.data`: 20%, stratified)."""
    from ..data import VALIDATION_FRACTION, _hold_out

    X_tr, X_te, y_tr, y_te, strat = _hold_out(X, y, np.issubdtype(y.dtype, np.integer), "X")
    note = (f"Held out {100 * VALIDATION_FRACTION:g}% of X ({len(X_te)} examples) as the test set"
            f"{', stratified by label' if strat else ''} (random_state=0); {len(X_tr)} examples train.")
    return FrontData(X_tr, y_tr, X_te, y_te, (note,))


def sweep_members(pairs, folds: Sequence[int], adamw: bool) -> list[Member]:
    """The ensemble's members: each (η, value) pair on each fold, fold-major (model k = g·P + p)."""
    return [Member(lmbda=0.0 if adamw else v, weight_decay=v if adamw else 0.0, eta=e, fold=g)
            for g in folds for e, v in pairs]


def default_wd_text() -> str:
    """The default wd grid under AdamW, in words (the help, the docstrings, the notes)."""
    lo, hi = DEFAULT_WD_GRID
    return f"wd = 0 plus {DEFAULT_GRID_SIZE} log-spaced values from {lo:g} to {hi:g}"


#: The grids' lines in a front's docstring (:func:`l2reg.options.documented`): a sweep's, not train's defaults.
GRID_HELP = {
    "lmbda": "the λ grid, coupled L2 (default: λ = 0 plus 12 values with λ/n from 1e-5 to 3e-2); not with ``adamw``.",
    "weight_decay": f"``adamw`` only: the grid of its decoupled wd, instead of ``lmbda`` (default: {default_wd_text()}).",
}


def default_front_grid(n: int, optimizer: str) -> list[float]:
    """The default grid: λ (:func:`l2reg.fronts.cv.default_grid`, by n), or under ``adamw`` the wd grid."""
    if optimizer != "adamw":
        return default_grid(n)
    return [0.0] + [_round_sig(v) for v in np.geomspace(*DEFAULT_WD_GRID, DEFAULT_GRID_SIZE)]


def _by_fold(a, P: int, k: int) -> np.ndarray:
    """``(..., k·P)`` fold-major member values as ``(..., P, k)``."""
    return np.asarray(a, np.float64).reshape(*np.shape(a)[:-1], k, P).swapaxes(-1, -2)


def cv_outputs(r, P: int, k: int, test: dict, meta: dict | None = None) -> BlockResult:
    """A CV block's result from an ensemble result ``r`` of P pairs × k folds (fold-major members) and each
    member's ``test`` ``{"cost", "accuracy"}`` ``(K,)``; ``meta``: how the block was trained."""
    h = r.history
    c0 = {name: h[name] - h["penalty"] for name in ("training_cost", "validation_cost")}
    history = {"validation_cost": _by_fold(c0["validation_cost"], P, k),
               "weight_sq_norm": _by_fold(h["weight_sq_norm"], P, k)}
    final = {"training_cost": _by_fold(c0["training_cost"][-1], P, k),
             "validation_cost": _by_fold(c0["validation_cost"][-1], P, k),
             "weight_sq_norm": _by_fold(h["weight_sq_norm"][-1], P, k),
             "test_cost": _by_fold(test["cost"], P, k), "test_accuracy": _by_fold(test["accuracy"], P, k)}
    for name in ("training_accuracy", "validation_accuracy"):
        if name in h:
            final[name] = _by_fold(h[name][-1], P, k)
            history[name] = _by_fold(h[name], P, k)
    if "validation_accuracy" not in final:  # regression: no accuracies
        final.update(training_accuracy=np.full((P, k), np.nan), validation_accuracy=np.full((P, k), np.nan))
    return BlockResult(final=final, history=history, diverged=_by_fold(r.diverged_epoch > 0, P, k),
                       train_seconds=r.train_seconds, compile_seconds=r.config.get("compile_seconds", 0.0), meta=meta)


def refit_outputs(r, n_grid: int, *, terms: dict, params: list, meta: dict | None = None) -> BlockResult:
    """A refit block's result from an ensemble result whose validation rows were the test set (its history
    named ``test_*``)."""
    h = r.history
    history = {name.replace("validation", "test"): (v - h["penalty"] if name.endswith("_cost") else v)
               for name, v in h.items() if name != "penalty"}
    final = {name: v[-1] for name, v in history.items() if name != "weight_sq_norm"}
    final["weight_sq_norm"] = history["weight_sq_norm"][-1]
    if "training_accuracy" not in final:
        final.update(training_accuracy=np.full(n_grid, np.nan), test_accuracy=np.full(n_grid, np.nan))
    return BlockResult(final=final, history=history, diverged=r.diverged_epoch > 0, train_seconds=r.train_seconds,
                       compile_seconds=r.config.get("compile_seconds", 0.0), params=params, terms=terms, meta=meta)


def as_layers(weights: Sequence[np.ndarray]) -> list[dict]:
    """Decayed weight arrays as the sweep report's "layers": ``{"w": (fan_in, fan_out)}`` each (PyTorch
    ``(out, in, ...)`` layout; see :func:`l2reg.torch.sweep._as_layers`)."""
    out = []
    for w in weights:
        w = np.asarray(w)
        out.append({"w": w.reshape(w.shape[0], -1).T if w.ndim > 1 else w.reshape(-1, 1), "b": np.zeros(0, w.dtype)})
    return out


def absolute_spec(spec: str) -> str:
    """``"file.py:function"`` with the file's absolute path, so a worker elsewhere finds it."""
    module, _, fn = spec.rpartition(":")
    return f"{Path(module).resolve()}:{fn}" if module.endswith(".py") else spec


def sweep_front(model_fn, data, opts, *, load_factory: Callable, task_cls, blocks: Blocks, config_fn: Callable,
                on_epoch=None, on_block=None, engine: str | None = None, checkpoint_dir=None,
                resume: bool = False) -> SweepResult:
    """A model's ``sweep_with`` on the one orchestration: the factory (or its ``"module:function"``, loaded here
    by ``load_factory`` and by name on Ray workers), the data, the grid, the task (``task_cls(model, data, opts,
    folds, seeds, pair_eta, pair_lmbda)``), then :func:`~l2reg.fronts.orchestration.run_sweep` with the front's
    ``blocks``; ``config_fn(opts, name, d, task, grid, model_fn)`` is sweep.json's config. ``checkpoint_dir``:
    the executor's checkpoints (``resume``: continue from them), marked with the front's ``engine``
    (:data:`l2reg.base.checkpoint.ENGINES`)."""
    if resume and checkpoint_dir is None:
        raise ConfigError("resume needs checkpoint_dir (the folder of the interrupted sweep).")
    executor = make_executor(opts, checkpoint_dir, resume=resume, on_block=on_block, engine=engine)
    name = model_fn if isinstance(model_fn, str) else getattr(model_fn, "__qualname__", "model_fn")
    spec = absolute_spec(model_fn) if isinstance(model_fn, str) else None
    model_fn = load_factory(model_fn) if isinstance(model_fn, str) else model_fn
    d = load_data(data, opts.label_column)
    interrupts.phase("data")
    # a worker elsewhere loads the factory by name; in this process it is loaded once, above
    model = spec if spec is not None and opts.backend == "ray" else model_fn
    cv_folds = cv_folds_for(opts, d.y, d.classification)
    given = opts.weight_decay if opts.optimizer == "adamw" else opts.lmbda
    grid = list(given) if given is not None else default_front_grid(len(d.X), opts.optimizer)
    pairs = [(e, v) for e in opts.eta for v in grid]
    task = task_cls(model, d, opts, cv_folds, fold_seeds(opts.seed[0], len(cv_folds)),
                    np.array([e for e, _ in pairs]), np.array([v for _, v in pairs]))
    config = config_fn(opts, name, d, task, grid, model_fn)
    notes = d.notes
    if opts.optimizer == "adamw":  # the grid is the decoupled wd; nothing is added to the cost
        config.update(weight_decay=list(grid), decay="weight_decay")
        if given is None:
            notes += (f"The weight_decay grid is the default under adamw: {default_wd_text()}.",)
    return run_sweep(task, blocks, executor, select=opts.select, regression=not d.classification, n=len(d.X),
                     config=config, on_epoch=on_epoch, notes=notes, options=opts.to_config())
