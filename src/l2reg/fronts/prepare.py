"""The step every front starts with: load the data, build the network, check them against each other.

:func:`prepare` is shared by train, sweep and explain (and the estimators'
data-dependent checks); :func:`decay_warnings` says, before any training,
which settings decay faster than the data can teach (τ_epoch < 1).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np

from ..base import validation as V
from ..core.network import NetworkSpec
from ..data import Dataset, feature_range_hint, load_dataset, standardized
from ..errors import ConfigError
from ..options import TrainOptions
from .conventions import decay_timescale

log = logging.getLogger(__name__)


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


def _regression_message(data: Dataset, cost: str) -> str:
    """Why real-valued targets were refused: whole-number targets of one column are labels of the wrong shape."""
    y = data.y_train
    if y.ndim == 2 and y.shape[1] == 1 and np.all(y == np.round(y)):
        return ("y has shape (n, 1), one column of whole numbers: class labels must be 1-D, shape (n,) "
                f"(use y.ravel()); for real-valued targets of one column use cost='quadratic' (got {cost!r}).")
    return f"real-valued targets need cost='quadratic' (linear outputs); got {cost!r}."


def prepare(opts: TrainOptions) -> Prepared:
    """Load the data of checked ``opts`` and build the network; the checks that need the data.

    Shared by train, sweep and explain: the evaluation split (``opts.eval``),
    real-valued targets needing the quadratic cost (linear outputs), sizes
    against the data, one λ per layer, and m ≤ n.
    """
    data = opts.dataset if isinstance(opts.dataset, Dataset) else load_dataset(
        opts.dataset, opts.data_dir, train_size=opts.train_size, eval=opts.eval, label_column=opts.label_column)
    if opts.standardize:
        data = standardized(data)
    elif (hint := feature_range_hint(data)) is not None:
        log.warning(hint)
    regression = not data.is_classification
    if regression and opts.cost != "quadratic":
        raise ConfigError(_regression_message(data, opts.cost))
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

    One line per (η, λ or wd) pair, with the numbers (:func:`l2reg.fronts.conventions.decay_timescale`,
    every optimizer and decay scaling); ``grid`` (a sweep's λ path) sums them up in one line.
    """

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
