"""What every front's ensemble shares: members, fold seeds, batch order, argument checks, the result record.

A front (``l2reg.torch``, ``l2reg.jax``) trains K members of a user's model
at once; member k is ``Member(lmbda, eta, fold, weight_decay)``. Members of
fold f start from the model built with the fold's seed
``fold_seeds(seed, F)[f]`` and see the fold's training rows in the order
``epoch_order(seed_f, n, e)`` in epoch e, so that the fronts agree with each
other and with l2reg's own sweep. NumPy only: no front's library is imported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..base import interrupts
from ..base import validation as V
from ..errors import ConfigError, ConfigTypeError, DataError, Interrupted
from ..options import OPTIMIZERS  # noqa: F401  (re-exported)
from ..fronts.cv import epoch_order, fold_seeds  # noqa: F401  (the fronts share them; re-exported)

METRICS = ("training_cost", "training_accuracy", "validation_cost", "validation_accuracy", "penalty",
           "weight_sq_norm")


@dataclass(frozen=True)
class Member:
    """One model of the ensemble: its λ (coupled; ``weight_decay`` = λ/n), η, fold, and AdamW's decoupled wd."""

    lmbda: float = 0.0
    eta: float = 0.1
    fold: int = 0
    weight_decay: float = 0.0


@dataclass
class EnsembleRecord:
    """The fields every front's ensemble result has (see ``l2reg.torch.EnsembleResult``).

    ``history[name]`` is ``(epochs, K)`` (:data:`METRICS`); ``state_dicts[k]``
    member k's final tensors by name, as NumPy arrays; ``diverged_epoch[k]``
    the 1-based epoch whose training cost was not finite (0: never).
    """

    members: list
    history: dict
    state_dicts: list
    decayed: list
    config: dict
    train_seconds: float
    diverged_epoch: np.ndarray
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "config": self.config,
            "members": [asdict(m) for m in self.members],
            "history": {k: [[x if math.isfinite(x) else None for x in row] for row in np.asarray(v, np.float64).T.tolist()]
                        for k, v in self.history.items()},  # per member, per epoch; NaN (no validation) → None
            "decayed": list(self.decayed),
            "train_seconds": self.train_seconds,
            "diverged_epoch": [int(x) for x in self.diverged_epoch],
            "notes": list(self.notes),
        }


class EpochLog:
    """Each epoch's metrics of K members, who diverged (a non-finite training cost) and when; ``on_epoch``."""

    def __init__(self, K: int, on_epoch=None):
        self.live, self.diverged = np.ones(K, bool), np.zeros(K, np.int64)
        self.history: dict[str, list] = {}
        self.on_epoch = on_epoch

    def record(self, e: int, metrics: dict) -> None:
        newly = self.live & ~np.isfinite(metrics["training_cost"])
        self.diverged[newly] = e + 1
        self.live = self.live & ~newly
        for k, v in metrics.items():
            self.history.setdefault(k, []).append(v)
        if self.on_epoch is not None:
            self.on_epoch(e, metrics)

    def stacked(self) -> dict:
        return {k: np.stack(v) for k, v in self.history.items()}

    def state(self) -> dict:
        """What a checkpoint keeps (JSON: a float64 round-trips exactly, the dtype brings the arrays back)."""
        return {"history": {k: {"dtype": str(np.asarray(v[0]).dtype), "values": np.stack(v).tolist()}
                            for k, v in self.history.items()},
                "live": self.live.tolist(), "diverged": self.diverged.tolist()}

    def restore(self, state: dict) -> None:
        """Back to :meth:`state`'s epochs (nothing is re-announced to ``on_epoch``)."""
        self.history = {k: list(np.asarray(h["values"], h["dtype"])) for k, h in state["history"].items()}
        self.live = np.asarray(state["live"], bool)
        self.diverged = np.asarray(state["diverged"], np.int64)

    def notes(self) -> list[str]:
        return [f"member {k} diverged in epoch {self.diverged[k]} and took no further steps."
                for k in np.flatnonzero(self.diverged)]


class Position:
    """Where an ensemble's training is, ``epoch`` epochs done and ``step`` of the next one's ``steps`` (a
    front's unit: a PyTorch step, a JAX compiled call of steps), saved to its ``checkpoint``
    (:class:`~l2reg.base.checkpoint.Checkpointing`) when that says so; Ctrl-C raises
    :class:`~l2reg.errors.Interrupted` at the next step. ``save(meta)`` writes the front's state with
    :meth:`meta`; ``load()`` puts it back and returns that meta."""

    def __init__(self, checkpoint, *, epochs: int, steps: int, unit: str, save: Callable, load: Callable):
        self.checkpoint, self.epochs, self.steps, self.unit = checkpoint, epochs, steps, unit
        self._save, self._load = save, load
        self.epoch, self.step, self.t0 = 0, 0, time.perf_counter()

    def begin(self) -> dict | None:
        """On a resume, load the checkpoint and continue from its position (and its seconds); returns what
        ``load()`` returned (None: a fresh start)."""
        meta, before = None, 0.0
        if self.checkpoint is not None and self.checkpoint.resume:
            meta = self._load()
            self.epoch, self.step, before = meta["epoch"], meta["step"], meta["train_seconds"]
        if self.checkpoint is not None:
            self.checkpoint.start()
        self.t0 = time.perf_counter() - before
        return meta

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def first_step(self, epoch: int) -> int:
        """The steps of ``epoch`` already taken (a resumed epoch's)."""
        return self.step if epoch == self.epoch else 0

    def meta(self, epoch: int, step: int) -> dict:
        return {"config": self.checkpoint.config, "epoch": epoch, "epochs": self.epochs, "step": step,
                "steps": self.steps, "unit": self.unit, "train_seconds": self.seconds()}

    def after_step(self, epoch: int, step: int) -> None:
        """``step`` of epoch ``epoch``'s (0-based) steps are done, not all."""
        interrupts.pause_point("step")
        stop = interrupts.requested()  # read once: a stop is always saved first
        if self.checkpoint is not None and (stop or self.checkpoint.due_within_epoch()):
            self._write(epoch, step)
        if stop:
            raise self._stopped(f"stopped in epoch {epoch + 1} of {self.epochs}, after {step} of its {self.steps} "
                                f"{self.unit}s.", epoch)

    def after_epoch(self, epoch: int) -> None:
        """Epoch ``epoch`` (0-based) is done and recorded."""
        interrupts.pause_point("epoch")
        stop = interrupts.requested()
        if self.checkpoint is not None and (stop or self.checkpoint.due(epoch == self.epochs - 1)):
            interrupts.pause_point("checkpoint")
            self._write(epoch + 1, 0)
        if stop and epoch < self.epochs - 1:
            raise self._stopped(f"stopped after epoch {epoch + 1} of {self.epochs}.", epoch + 1)

    def _write(self, epoch: int, step: int) -> None:
        self._save(self.meta(epoch, step))
        self.checkpoint.saved()

    def _stopped(self, message: str, epoch: int) -> Interrupted:
        return Interrupted(message, epoch=epoch, checkpoint=None if self.checkpoint is None else self.checkpoint.path)


#: How the model fronts (l2reg.torch, l2reg.jax) word the options they take in their own way (no ``lbfgs``);
#: the rest of their docstrings' parameters come from :data:`l2reg.options.HELP`.
MODEL_HELP = {"epochs": "training epochs.",
              "optimizer": "``sgd``, ``momentum``, ``nesterov``, ``adam`` (coupled L2: λ) or ``adamw`` (decoupled "
                           "``weight_decay``)."}


def base_config(*, optimizer, mu, epochs, m, policy, seed, seeds, folds, classification, device) -> dict:
    """The config entries every front's ensemble result has."""
    return {
        "optimizer": optimizer, "momentum": mu, "epochs": epochs, "batch_size": m, "policy": policy,
        "seed": seed if isinstance(seed, int) else list(seed), "fold_seeds": seeds,
        "n_train": [len(tr) for tr, _ in folds], "n_validation": [len(va) for _, va in folds], "device": device,
        "task": "classification" if classification else "regression",
        "loss": "cross_entropy" if classification else "mse",
    }


# ---------------------------------------------------------------- checks


def feature_array(X) -> np.ndarray:
    """X as the model receives it: integer X (token ids: int8…int64, uint16…) as int64 — an ``nn.Embedding``
    takes ``torch.long`` —, float X and uint8 X (pixels) as float32."""
    X = np.asarray(X)
    if X.dtype.kind == "i" or (X.dtype.kind == "u" and X.dtype.itemsize > 1):
        return X.astype(np.int64)
    return X.astype(np.float32)


def check_arrays(X, y) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(X, y, classification)``: X as :func:`feature_array` makes it ``(n, ...)``; y int64 labels ``(n,)`` or
    float32 targets ``(n, ...)``."""
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 2 or not np.issubdtype(X.dtype, np.number):
        raise DataError(f"X must be a numeric array of shape (n, ...) with n examples; got shape {X.shape}, "
                        f"dtype {X.dtype}.")
    if y.ndim < 1 or len(y) != len(X):
        raise DataError(f"y must have one entry per example of X: shape ({len(X)},); got shape {y.shape}.")
    if not np.all(np.isfinite(X)):
        raise DataError("X contains NaN or infinite values.")
    classification = bool(np.issubdtype(y.dtype, np.integer))
    if classification:
        if y.ndim != 1 or y.min() < 0:
            raise DataError(f"integer y must be class labels 0..C−1 of shape (n,); got shape {y.shape}, "
                            f"min {y.min()}.")
        return feature_array(X), y.astype(np.int64), True
    if not np.issubdtype(y.dtype, np.floating):
        raise DataError(f"y must be integer class labels or float targets; got dtype {y.dtype}.")
    if not np.all(np.isfinite(y)):
        raise DataError("y contains NaN or infinite values.")
    return feature_array(X), y.astype(np.float32), False


def output_error(shape: tuple, r: int, y_shape: tuple, classification: bool, classes: int) -> str | None:
    """Why a model's output of ``shape`` for r examples does not fit the targets (None: it fits)."""
    if classification:
        if len(shape) != 2 or shape[0] != r or shape[1] < classes:
            return (f"the model's output has shape {tuple(shape)} for {r} examples; classification with labels "
                    f"0..{classes - 1} needs logits of shape ({r}, C) with C >= {classes}.")
    elif math.prod(shape) != math.prod(y_shape):
        return (f"the model's output has shape {tuple(shape)} for {r} examples; the targets y have shape "
                f"{tuple(y_shape)}.")
    return None


def check_members(members, n_folds: int, optimizer: str) -> list[Member]:
    if isinstance(members, (Member, dict)) or not isinstance(members, Sequence) or len(members) == 0:
        raise ConfigTypeError(f"members must be a non-empty list of Member (or dicts); got {members!r}.")
    out = []
    for i, m in enumerate(members):
        if isinstance(m, dict):
            try:
                m = Member(**m)
            except TypeError:
                raise ConfigTypeError(f"members[{i}] has keys {sorted(m)}; expected lmbda, eta, fold, "
                                      f"weight_decay.") from None
        if not isinstance(m, Member):
            raise ConfigTypeError(f"members[{i}] must be a Member or a dict; got {type(m).__name__}.")
        lmbda = V.number(f"members[{i}].lmbda", m.lmbda, low=0)
        eta = V.number(f"members[{i}].eta", m.eta, low=0, strict=True)
        wd = V.number(f"members[{i}].weight_decay", m.weight_decay, low=0)
        fold = V.integer(f"members[{i}].fold", m.fold, low=0, high=n_folds - 1)
        if optimizer == "adamw" and lmbda != 0:
            raise ConfigError(f"with optimizer 'adamw' members differ by weight_decay (decoupled); "
                              f"members[{i}].lmbda must be 0; got {lmbda!r}.")
        if optimizer != "adamw" and wd != 0:
            raise ConfigError(f"weight_decay is AdamW's decoupled decay; with optimizer {optimizer!r} give "
                              f"lmbda (coupled, weight_decay = λ/n); members[{i}].weight_decay is {wd!r}.")
        out.append(Member(lmbda=lmbda, eta=eta, fold=fold, weight_decay=wd))
    return out


def check_folds(folds, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if folds is None:
        return [(np.arange(n), np.arange(0))]
    if not isinstance(folds, Sequence) or len(folds) == 0:
        raise ConfigTypeError(f"folds must be a non-empty list of (train_idx, val_idx) pairs; got {folds!r}.")
    out = []
    for i, pair in enumerate(folds):
        try:
            tr, va = (np.asarray(a) for a in pair)
        except (TypeError, ValueError):
            raise ConfigTypeError(f"folds[{i}] must be a pair (train_idx, val_idx) of index arrays.") from None
        for what, a in (("train", tr), ("validation", va)):
            if a.ndim != 1 or (a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= n)):
                raise DataError(f"folds[{i}] {what} indices must be integers in [0, {n}); got {a!r:.80}.")
        if tr.size == 0:
            raise DataError(f"folds[{i}] has no training rows.")
        if np.intersect1d(tr, va).size:
            raise DataError(f"folds[{i}] uses rows for both training and validation.")
        out.append((tr.astype(np.int64), va.astype(np.int64)))
    return out


def check_seeds(seed, n_folds: int) -> list[int]:
    """One seed per fold: ``seed`` itself if it is a list of them, else :func:`fold_seeds` of it."""
    if isinstance(seed, Sequence) and not isinstance(seed, str):
        seeds = V.integers_list("seed", list(seed), low=0)
        if len(seeds) != n_folds:
            raise ConfigError(f"seed must be one integer or one per fold ({n_folds}); got {len(seeds)}.")
        return seeds
    return fold_seeds(V.integer("seed", seed, low=0), n_folds)


def check_momentum(optimizer: str, momentum) -> float | None:
    """μ for ``momentum`` and ``nesterov`` (in [0, 1)), None for the other optimizers."""
    V.choice("optimizer", optimizer, OPTIMIZERS)
    if optimizer not in ("momentum", "nesterov"):
        return None
    mu = V.number("momentum", momentum, low=0)
    if mu >= 1:
        raise ConfigError(f"momentum must be a finite number in [0, 1); got {momentum!r}.")
    return mu
