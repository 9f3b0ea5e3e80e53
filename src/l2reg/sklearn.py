"""scikit-learn estimators over the l2reg engine.

* :class:`L2MLPClassifier` and :class:`L2MLPRegressor`: one network trained
  by mini-batch SGD on C = C0 + (λ/2n)·Σw² (coupled L2, weights only, n = the
  number of samples passed to ``fit``), i.e. per mini-batch of m examples

      w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w

* :class:`L2MLPClassifierCV`: chooses λ (or the pair (η, λ) when ``eta`` is
  a list) by k-fold cross-validation with every pair × fold trained at once
  (:func:`l2reg.fronts.sweeping.cross_validate`, :func:`l2reg.fronts.cv.choose`), then
  refits, in the manner of ``LogisticRegressionCV``.

scikit-learn's ``MLPClassifier(solver="sgd")`` divides its penalty by the batch
size instead of n: ``alpha = λ·m/n`` gives the same update.

Parameters follow scikit-learn's names where one exists
(``hidden_layer_sizes``, ``batch_size``, ``random_state``) and the CLI's
otherwise (``lmbda``, ``eta``, ``epochs``); they are listed once, in
:data:`PARAMS`, and ``fit`` turns them into the one options object of every
front (:class:`l2reg.options.TrainOptions`), which validates them.
Constructors only store them (:func:`_storing_init`).
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import check_cv
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .base import validation as V
from .errors import ConfigError, ConfigTypeError, DataError
from .options import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_ETA, DEFAULT_FOLDS, DEFAULT_PATIENCE, TrainOptions

__all__ = ["L2MLPClassifier", "L2MLPClassifierCV", "L2MLPRegressor"]

#: Every estimator parameter with its default, in signature order: the network, the options shared
#: with :class:`~l2reg.options.TrainOptions` (same names, same defaults), and early stopping.
PARAMS = {
    "hidden_layer_sizes": (30,), "lmbda": None, "eta": DEFAULT_ETA, "batch_size": DEFAULT_BATCH_SIZE,
    "epochs": DEFAULT_EPOCHS, "activation": "sigmoid", "cost": "cross-entropy", "init": "default",
    "random_state": None, "penalty": "l2", "l1_ratio": None, "l1_update": "subgradient", "penalize_biases": False,
    "optimizer": "sgd", "momentum": None, "weight_decay": None, "decay_scaling": None, "schedule": "constant",
    "warmup_epochs": 0, "early_stopping": False, "validation_fraction": 0.1, "n_iter_no_change": DEFAULT_PATIENCE,
}
_STOPPING = ("early_stopping", "validation_fraction", "n_iter_no_change")


def _storing_init(params: dict):
    """An ``__init__`` that stores each argument as given (scikit-learn's rule), with a real signature.

    scikit-learn reads an estimator's parameters from ``inspect.signature(__init__)``;
    building it from :data:`PARAMS` lists them once for every estimator.
    """
    sig = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d) for name, d in params.items()])

    def __init__(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = sig
    __init__.__doc__ = "Store the parameters (see the class docstring); ``fit`` validates them."
    return __init__


def _hidden(sizes) -> tuple[int, ...]:
    if isinstance(sizes, (numbers.Integral, np.integer)) and not isinstance(sizes, bool):
        sizes = (sizes,)
    if isinstance(sizes, str) or not isinstance(sizes, (tuple, list, np.ndarray)):
        raise ConfigTypeError(f"hidden_layer_sizes must be an integer or a tuple of integers; got {sizes!r}.")
    return tuple(V.integer("hidden_layer_sizes", s, low=1) for s in sizes)


def _seed(random_state) -> int:
    """An int seed for the engine from scikit-learn's ``random_state`` (None: a fresh one)."""
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def _forward(spec, coefs, intercepts, X) -> np.ndarray:
    """Network outputs ``(n, n_out)`` in float64 NumPy.

    Prediction does not go through JAX so that each row's result does not
    depend on the batch it came in (scikit-learn checks this to 1e-7) and
    new input shapes cost no compilation. Same formulas as
    :func:`l2reg.core.network.logits` and :func:`l2reg.core.network.outputs`.
    """
    a = np.asarray(X, np.float64)
    for i, (w, b) in enumerate(zip(coefs, intercepts)):
        z = a @ w.astype(np.float64) + b.astype(np.float64)
        if i < len(coefs) - 1:
            if spec.activation == "sigmoid":
                a = 0.5 * (1.0 + np.tanh(0.5 * z))
            elif spec.activation == "tanh":
                a = np.tanh(z)
            else:
                a = np.maximum(z, 0.0)
    if spec.output == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    if spec.output == "softmax":
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    return z


class _L2MLP(BaseEstimator):
    """Shared parameters, checks and the single-network fit."""

    _regression = False

    def _options(self, n_in: int, n_out: int, **overrides) -> TrainOptions:
        """The estimator's parameters as checked :class:`~l2reg.options.TrainOptions` (``overrides`` win)."""
        from .options import TrainOptions

        if self._regression and self.cost != "quadratic":
            raise ConfigError(f"{type(self).__name__} needs cost='quadratic' (linear outputs); got {self.cost!r}.")
        flat = {name: getattr(self, name) for name in PARAMS if hasattr(self, name) and name not in _STOPPING}
        flat.update(sizes=(n_in, *_hidden(self.hidden_layer_sizes), n_out),
                    early_stopping=getattr(self, "early_stopping", False),
                    patience=getattr(self, "n_iter_no_change", DEFAULT_PATIENCE),
                    stop_on="cost" if self._regression else "accuracy", monitor=(), **overrides)
        return TrainOptions.from_flat(flat).checked()

    def _spec(self, opts: TrainOptions):
        from .core.network import NetworkSpec

        return NetworkSpec(tuple(opts.sizes), opts.activation, opts.cost, self._regression)

    def _fit_network(self, X, Y, n_out: int, seed: int, **overrides):
        from sklearn.model_selection import train_test_split

        from .core.engine import fit_stack
        from .fronts.training import grid, members_of

        opts = self._options(X.shape[1], n_out, seed=seed, **overrides)
        if len(grid(opts)) != 1:
            raise ConfigError("this estimator trains one network: give one lmbda, eta, momentum and weight_decay.")
        train_idx, eval_sets = np.arange(len(X)), None
        if opts.early_stopping:
            frac = V.number("validation_fraction", self.validation_fraction, low=0, strict=True)
            if frac >= 1:
                raise ConfigError(f"validation_fraction must be a number in (0, 1); got {frac!r}.")
            train_idx, val_idx = train_test_split(train_idx, test_size=frac, random_state=seed,
                                                  stratify=None if self._regression else Y)
            train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
            eval_sets = {"evaluation": (X[val_idx], Y[val_idx], None)}
        from dataclasses import replace

        opts = replace(opts, batch_size=min(opts.batch_size, len(train_idx)))
        r = fit_stack(self._spec(opts), X, Y, opts, groups=[train_idx], group_seeds=[seed],
                      members=members_of(opts, grid(opts)), eval_sets=eval_sets, monitor=())
        self.spec_ = self._spec(opts)
        self.coefs_ = [np.asarray(layer["w"][:, 0, :]) for layer in r.params]
        self.intercepts_ = [np.asarray(layer["b"][0]) for layer in r.params]
        self.weight_sq_norm_curve_ = [float(v) for v in r.history["weight_sq_norm"][:, 0]]
        self.zero_weight_fraction_ = float(r.history["zero_weight_fraction"][-1, 0])
        self.n_iter_ = int(r.stopped_epoch[0])
        if not np.all([np.isfinite(w).all() for w in self.coefs_]):
            raise DataError(
                f"training diverged (non-finite weights) with eta={opts.eta[0]!r}; use a smaller eta or scale X."
            )
        return self

    def _outputs(self, X) -> np.ndarray:
        check_is_fitted(self, "coefs_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return _forward(self.spec_, self.coefs_, self.intercepts_, X)


class _ClassifierMixin:
    """fit / predict / predict_proba of the classifiers."""

    def _encode(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        enc = LabelEncoder().fit(y)
        self.classes_ = enc.classes_
        if len(self.classes_) < 2:
            raise DataError(
                f"y has only one class ({self.classes_[0]!r}); a classifier needs at least 2 classes."
            )
        return X, enc.transform(y).astype(np.int32)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``: softmax outputs, or sigmoid outputs normalized to sum to 1."""
        a = self._outputs(X)
        if self.spec_.output == "softmax":
            return a
        s = a.sum(axis=1, keepdims=True)
        return np.where(s > 0, a / np.where(s > 0, s, 1.0), 1.0 / a.shape[1])

    def predict(self, X) -> np.ndarray:
        a = self._outputs(X)
        return self.classes_[np.argmax(a, axis=1)]


class L2MLPClassifier(_ClassifierMixin, ClassifierMixin, _L2MLP):
    """A feed-forward network classifier trained on C = C0 + (λ/2n)·Σw².

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (30,)
        Hidden layer sizes; ``()`` gives no hidden layer.
    lmbda : float or None, default None
        λ ≥ 0 (None: 1.0, or 0 with optimizer "adamw"). The penalty is (λ/2n)·Σw² over the weights (not biases), n =
        the number of samples given to ``fit``; coupled decay factor 1 − ηλ/n
        per mini-batch. scikit-learn's MLP equivalent is ``alpha = λ·m/n``.
    eta : float, default 0.5
        Learning rate η.
    batch_size : int, default 10
        Mini-batch size m (capped at n).
    epochs : int, default 30
        Passes over the training data (at most, with ``early_stopping``).
    activation : {"sigmoid", "tanh", "relu"}, default "sigmoid"
    cost : {"cross-entropy", "log-likelihood", "quadratic"}, default "cross-entropy"
        Cross-entropy and quadratic use sigmoid outputs, log-likelihood softmax.
    init : {"default", "large"}, default "default"
        Weights ~ N(0, 1/n_in) or N(0, 1); biases ~ N(0, 1).
    random_state : int, RandomState or None
        Initial weights and mini-batch order.
    penalty : {"l2", "l1", "elastic-net", "none"}, default "l2"
        l2 (λ/2n)·Σw², l1 (λ/n)·Σ|w|, elastic-net (λ/n)·[ρ·Σ|w| + ((1−ρ)/2)·Σw²].
    l1_ratio : float or None, default None
        ρ of elastic-net (None: 0.5).
    l1_update : {"subgradient", "prox"}, default "subgradient"
        L1 step: subgradient (λ/n)·sgn(w), or the proximal soft threshold (exact zeros).
    penalize_biases : bool, default False
    optimizer : {"sgd", "momentum", "nesterov", "adam", "adamw"}, default "sgd"
        adam: coupled L2 through Adam's moments; adamw: decoupled ``weight_decay``.
    momentum : float or None, default None
        μ of momentum/nesterov (None: 0.9).
    weight_decay : float or None, default None
        adamw's decoupled decay (None: 0.01); λ then defaults to 0.
    decay_scaling : {"lr", "schedule"} or None, default None
        adamw: decay × learning rate (PyTorch, default) or × schedule multiplier only (the paper).
    schedule : {"constant", "step", "cosine"}, default "constant"
    warmup_epochs : int, default 0
    early_stopping : bool, default False
        Hold out ``validation_fraction`` (stratified) and stop once its
        accuracy (cost for the regressor) has not improved for
        ``n_iter_no_change`` epochs; n is then the remaining training size.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10

    Attributes
    ----------
    classes_, coefs_, intercepts_, n_features_in_, n_iter_ (epochs trained), weight_sq_norm_curve_ (Σw² per
    epoch), zero_weight_fraction_ (weights exactly 0).
    """

    __init__ = _storing_init(PARAMS)

    def fit(self, X, y):
        X, Y = self._encode(X, y)
        return self._fit_network(X, Y, len(self.classes_), _seed(self.random_state))


class L2MLPRegressor(RegressorMixin, _L2MLP):
    """A feed-forward network regressor (linear outputs, quadratic cost) trained on C = C0 + (λ/2n)·Σw².

    C0 = ½‖a − y‖² averaged over the mini-batch. Parameters as
    :class:`L2MLPClassifier`, except ``cost`` (only ``"quadratic"``) and the
    default ``eta = 0.1`` (linear outputs take smaller steps). ``y`` may be
    ``(n,)`` or ``(n, t)``.
    """

    _regression = True

    __init__ = _storing_init(dict(PARAMS, eta=0.1, cost="quadratic"))

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True, multi_output=True)
        Y = np.asarray(y, np.float32)
        self._y_1d = Y.ndim == 1
        Y = Y.reshape(len(Y), -1)
        self.n_outputs_ = Y.shape[1]
        return self._fit_network(X, Y, self.n_outputs_, _seed(self.random_state))

    def predict(self, X) -> np.ndarray:
        a = self._outputs(X)
        return a[:, 0] if self._y_1d else a

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class L2MLPClassifierCV(_ClassifierMixin, ClassifierMixin, _L2MLP):
    """:class:`L2MLPClassifier` with λ chosen by cross-validation, all λ × folds trained at once.

    Like ``LogisticRegressionCV``: ``lmbda`` is the grid of λ values (a list
    of λ ≥ 0, or one λ: ``lmbda=5`` is λ = 5, like ``lmbda=5.0``), or None
    for the default grid: 0 plus ``n_lmbdas`` log-spaced values with λ/n
    from 1e-5 to 3e-2 (None: 12 of them), ``cv`` the folds (an int for ``StratifiedKFold``, a
    splitter, or an iterable of splits, as in ``GridSearchCV``). Each fold
    model uses n = its fold's training size; every fold starts from the same
    seed, so the scores equal ``GridSearchCV(L2MLPClassifier(random_state=r),
    {"lmbda": lmbda}, cv=cv)``'s, with the whole grid in one vectorized run.
    ``select`` is ``"min"`` (best mean accuracy) or ``"1se"`` (largest λ within
    one standard error of it). The chosen λ is then refit on all of X.

    ``eta`` as a list of η > 0 makes the grid the pairs
    η × λ (η then λ ascending, λ fastest), all trained in the same run; the
    choice is :func:`l2reg.fronts.cv.select_pair`'s (``min``: best mean over every
    pair; ``1se``: that pair's η, then the ``1se`` rule along λ), and the
    scores equal ``GridSearchCV`` over ``{"eta": eta, "lmbda": lmbda}``'s.
    A pair whose model diverged on some fold is never chosen.

    Attributes
    ----------
    lmbda_, eta_ : the chosen λ and η.
    lmbdas_, etas_ : the grids, ascending.
    cv_results_ : dict of arrays as ``GridSearchCV``'s, one entry per pair: ``param_eta``, ``param_lmbda``,
        ``params`` (``{"lmbda": λ}``, or ``{"eta": η, "lmbda": λ}`` with a list of η), ``split{i}_test_score``, ``mean_test_score``,
        ``std_test_score``, ``se_test_score``, ``rank_test_score``,
        ``split{i}_train_score``, ``mean_train_score``.
    best_index_, best_score_ : the chosen λ's index and mean CV accuracy.
    classes_, coefs_, intercepts_, n_features_in_ : of the refit model.

    ``penalty``, ``optimizer`` and the options after them are
    :class:`L2MLPClassifier`'s (no early stopping); CV models and refit use them alike.

    ``backend="ray"`` trains the pairs × folds on a Ray cluster, one task per
    fold × ``block_size`` pairs (None: all of a fold's pairs), to the same
    scores within float32 tolerance (:class:`l2reg.fronts.distributed.RayExecutor`;
    ``address`` "auto", HOST:PORT, or None for this machine); the refit stays
    in process.
    """

    __init__ = _storing_init({"lmbda": None, "n_lmbdas": None, "cv": DEFAULT_FOLDS, "select": "min",
                              **{k: v for k, v in PARAMS.items() if k != "lmbda" and k not in _STOPPING},
                              "backend": "local", "address": None, "block_size": None})

    def _grid(self, n: int) -> list[float]:
        from .fronts.cv import check_grid, default_grid

        if self.n_lmbdas is not None:
            size = V.integer("n_lmbdas", self.n_lmbdas, low=1)
            if self.lmbda is not None:
                raise ConfigError(f"give lmbda (the λ values) or n_lmbdas (the default grid's size), not both; "
                                  f"got lmbda={self.lmbda!r} and n_lmbdas={self.n_lmbdas!r}.")
            return default_grid(n, size)
        if self.lmbda is None:
            return default_grid(n)
        return check_grid(self.lmbda)

    def _cross_validate(self, spec, X, Y, opts, folds, **pairs):
        """Every pair × fold: in process (one stack), or on Ray in blocks."""
        from .fronts.sweeping import MLP_BLOCKS, CVTask, cross_validate

        if self.backend == "local":
            return cross_validate(spec, X, Y, opts, folds, **pairs)
        from .fronts.distributed import RayExecutor

        executor = RayExecutor(address=self.address, block_size=self.block_size, expect_refit=False)
        task = CVTask(spec, opts, X, Y, list(folds), list(pairs["group_seeds"]),
                      np.asarray(pairs["pair_eta"], np.float64), np.asarray(pairs["pair_lmbda"], np.float64))
        return executor.cv(MLP_BLOCKS.cv, task)

    def fit(self, X, y):
        from .fronts.cv import choose
        from .options import SELECT, check_backend

        check_backend(self.backend, self.address, self.block_size)
        X, Y = self._encode(X, y)
        V.choice("select", self.select, SELECT)
        grid = self._grid(len(X))
        etas = sorted(set(V.numbers_list("eta", self.eta, low=0, strict=True)))
        E, L = len(etas), len(grid)
        pair_eta = np.repeat(np.asarray(etas, np.float64), L)  # (E·L,) η then λ, λ fastest
        pair_lmbda = list(grid) * E
        folds = [(np.asarray(tr), np.asarray(va)) for tr, va in check_cv(self.cv, Y, classifier=True).split(X, Y)]
        if len(folds) < 2:
            raise ConfigError(f"cv must give at least 2 folds; got {len(folds)}.")
        m = min(int(V.integer("batch_size", self.batch_size, low=1)), min(len(tr) for tr, _ in folds))
        opts = self._options(X.shape[1], len(self.classes_), lmbda=pair_lmbda, eta=etas, batch_size=m)
        seed = _seed(self.random_state)
        run = self._cross_validate(self._spec(opts), X, Y, opts, folds, pair_lmbda=pair_lmbda, pair_eta=pair_eta,
                                   group_seeds=[seed] * len(folds))
        val = run.final["validation_accuracy"]  # (E·L, k)
        choice = choose(val, run.diverged, E=E, rule=self.select)
        self.cv_results_ = _cv_results(val, run.final["training_accuracy"], choice, pair_eta, pair_lmbda,
                                        with_eta=len(etas) > 1 or not isinstance(self.eta, numbers.Real))
        self.lmbdas_, self.etas_ = grid, etas
        self.best_index_ = choice.index
        self.best_score_ = float(choice.mean[choice.index])
        self.lmbda_, self.eta_ = float(pair_lmbda[choice.index]), float(pair_eta[choice.index])
        return self._fit_network(X, Y, len(self.classes_), seed, lmbda=self.lmbda_, eta=self.eta_)


def _cv_results(val, train, choice, pair_eta, pair_lmbda, *, with_eta: bool) -> dict:
    """``cv_results_`` as ``GridSearchCV`` has it, one entry per (η, λ) pair, plus the standard errors."""
    params = ([{"eta": float(a), "lmbda": v} for a, v in zip(pair_eta, pair_lmbda)] if with_eta
              else [{"lmbda": v} for v in pair_lmbda])
    res = {"param_eta": np.ma.MaskedArray(np.array([float(a) for a in pair_eta], dtype=object)),
           "param_lmbda": np.ma.MaskedArray(np.array(pair_lmbda, dtype=object)), "params": params}
    for i in range(val.shape[1]):
        res[f"split{i}_test_score"] = val[:, i]
    res.update(mean_test_score=choice.mean, std_test_score=choice.std, se_test_score=choice.se,
               rank_test_score=rankdata(-choice.mean, method="min").astype(np.int32))
    for i in range(train.shape[1]):
        res[f"split{i}_train_score"] = train[:, i]
    res.update(mean_train_score=train.mean(axis=1), std_train_score=train.std(axis=1))
    return res


def _parameter_entries(names) -> str:
    """The entries of :class:`L2MLPClassifier`'s Parameters section for ``names``: the options every
    estimator shares, documented once."""
    doc = L2MLPClassifier.__doc__
    section = doc.split("Parameters\n    ----------\n", 1)[1].split("\n\n    Attributes", 1)[0]
    entries, current = {}, None
    for line in section.split("\n"):
        if line.startswith("    ") and not line.startswith("        ") and " : " in line:
            current = line.strip().split(" : ", 1)[0]
            entries[current] = [line]
        elif current is not None:
            entries[current].append(line)
    return "\n".join("\n".join(entries[name]) for name in names if name in entries)


def _document_parameters(cls, own: str = "") -> None:
    """Give ``cls``'s docstring the Parameters section of its own signature (``own``: its own entries first)."""
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    cls.__doc__ = cls.__doc__.rstrip() + "\n\n    Parameters\n    ----------\n" + own + _parameter_entries(names) + "\n"


_document_parameters(L2MLPRegressor)
_document_parameters(L2MLPClassifierCV, own="""    lmbda : list of float, float or None, default None
        The λ values of the grid (one number is a grid of one λ); None: the default grid.
    n_lmbdas : int or None, default None
        The default grid's size: λ = 0 plus this many log-spaced values (None: 12); only with lmbda=None.
    cv : int, splitter or iterable, default 5
        The folds (see above).
    select : {"min", "1se"}, default "min"
    backend : {"local", "ray"}, default "local"
    address : str or None, default None
        ray: "auto", HOST:PORT, or None for this machine.
    block_size : int or None, default None
        ray: (η, λ) pairs per task.
""")
