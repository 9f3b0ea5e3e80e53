"""Every training option, listed and validated once.

:class:`TrainOptions` holds the options of ``l2reg train``; :class:`SweepOptions`
and :class:`ExplainOptions` add those of ``l2reg sweep`` and ``l2reg explain``.
Every front (the CLI, :func:`l2reg.train`, :func:`l2reg.sweep`,
:func:`l2reg.explain`, the scikit-learn estimators, PyTorch and Ray workers)
turns its flat keyword arguments into one of them on its first line
(:meth:`TrainOptions.from_flat`), and :meth:`~TrainOptions.checked` validates
them all at once, before any data is loaded or JAX is imported (this module
imports neither). ``to_config``/``from_config`` give the JSON ``config`` of
``metrics.json``, ``sweep.json`` and the checkpoints, so that a resumed run
compares its options with the saved ones in one place.

Lists (λ, η, μ, weight decay, seeds) are stored as tuples: each value is one
model of the stack, trained at once. The grid of ``train`` is
seed × η × momentum × weight_decay × λ (λ fastest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from .base import validation as V
from .errors import ConfigError, ConfigTypeError

# ---------------------------------------------------------------- choices and defaults

ACTIVATIONS = ("sigmoid", "tanh", "relu")
COSTS = ("cross-entropy", "log-likelihood", "quadratic")
INITS = ("default", "large")
PENALTIES = ("l2", "l1", "elastic-net", "none")
L1_UPDATES = ("subgradient", "prox")
#: Mini-batch optimizers (:func:`l2reg.core.update.make_optimizer`); ``lbfgs`` is full batch.
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
FULL_BATCH = ("lbfgs",)
DECAY_SCALINGS = ("lr", "schedule")
SCHEDULES = ("constant", "step", "cosine")
STOP_ON = ("accuracy", "cost")
EVALS = ("validation", "test")
SELECT = ("min", "1se")
#: Which parameters of a PyTorch model decay (:mod:`l2reg.torch.groups`); a callable is allowed too.
POLICIES = ("l2reg", "timm", "hf", "mingpt", "nanogpt")
#: How a PyTorch ensemble steps its members (:mod:`l2reg.torch.strategy`): measured, or one way asked.
STRATEGIES = ("auto", "vmap", "chunked", "loop")
#: ``--figures``: the formats the figures can be written in alone.
FIGURE_FORMATS = ("png", "svg")
#: Where a sweep trains: in this process, or in blocks on a Ray cluster (:mod:`l2reg.fronts.distributed`).
BACKENDS = ("local", "ray")
MONITORS = ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy")
#: What the CV models of a sweep record each epoch by default: their held-out fold.
CV_MONITOR = ("evaluation_cost", "evaluation_accuracy")

#: λ when none is given, in train, explain and the estimators alike (0 under
#: AdamW, whose decay is ``weight_decay``). The sweep's default is a grid
#: (:func:`l2reg.fronts.cv.default_grid`).
DEFAULT_LMBDA = 1.0
DEFAULT_ETA = 0.5
DEFAULT_EPOCHS = 30
DEFAULT_BATCH_SIZE = 10
DEFAULT_MOMENTUM = 0.9  # PyTorch's common choice
DEFAULT_WEIGHT_DECAY = 0.01  # PyTorch AdamW's default
DEFAULT_PATIENCE = 10  # Nielsen's "no improvement in 10 epochs" rule
DEFAULT_FOLDS = 5


def _tuple(values, check):
    return None if values is None else tuple(check(values))


@dataclass(frozen=True)
class TrainOptions:
    """The options of one training run (``l2reg train``); see :func:`l2reg.train` for each one's meaning.

    Data: ``dataset``, ``data_dir``, ``train_size``, ``eval``, ``label_column``,
    ``standardize``. Model: ``sizes``,
    ``activation``, ``cost``, ``init``. Optimizer: ``optimizer``, ``eta``,
    ``epochs``, ``batch_size``, ``momentum``, ``weight_decay``,
    ``decay_scaling``, ``schedule``, ``warmup_epochs``, ``step_epochs``,
    ``step_gamma``. Penalty: ``penalty``, ``lmbda``, ``lmbda_per_layer``,
    ``l1_ratio``, ``l1_update``, ``penalize_biases``. Stopping:
    ``early_stopping``, ``patience``, ``stop_on``. Runs: ``seed``, ``monitor``.
    """

    dataset: object = "digits"  # a name, a path, or an l2reg.data.Dataset
    data_dir: str | None = None
    train_size: int | None = None
    eval: str = "validation"
    label_column: str = "label"
    standardize: bool = False
    sizes: tuple[int, ...] | str | None = None
    activation: str = "sigmoid"
    cost: str = "cross-entropy"
    init: str = "default"
    optimizer: str = "sgd"
    eta: tuple[float, ...] = (DEFAULT_ETA,)
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    momentum: tuple[float, ...] | None = None
    weight_decay: tuple[float, ...] | None = None
    decay_scaling: str | None = None
    schedule: str = "constant"
    warmup_epochs: int = 0
    step_epochs: int | None = None
    step_gamma: float = 0.1
    penalty: str = "l2"
    lmbda: tuple[float, ...] | None = None
    lmbda_per_layer: tuple[tuple[float, ...], ...] | None = None
    l1_ratio: float | None = None
    l1_update: str = "subgradient"
    penalize_biases: bool = False
    early_stopping: bool = False
    patience: int = DEFAULT_PATIENCE
    stop_on: str = "accuracy"
    seed: tuple[int, ...] = (0,)
    monitor: tuple[str, ...] = MONITORS

    # ------------------------------------------------------------ building

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_flat(cls, kwargs: dict):
        """The options among ``kwargs`` (a function's ``locals()``, say); other keys are ignored.

        ``None`` for an option whose default is not ``None`` means its default.
        """
        defaults = {f.name: f.default for f in fields(cls)}
        picked = {name: kwargs[name] for name in defaults if name in kwargs}
        return cls(**{k: v for k, v in picked.items() if v is not None or defaults[k] is None})

    def to_config(self) -> dict:
        """The options as JSON values (tuples as lists; a Dataset by its name)."""
        out = {}
        for name in self.names():
            value = getattr(self, name)
            if name == "dataset" and not isinstance(value, str):
                value = str(getattr(value, "name", value))
            out[name] = _jsonable(value)
        return out

    @classmethod
    def from_config(cls, config: dict):
        """The options saved by :meth:`to_config` (other keys of ``config`` are ignored)."""
        return cls.from_flat(config).checked()

    # ------------------------------------------------------------ checking

    def checked(self):
        """A copy with every option validated and normalized (defaults filled in).

        Raises :class:`~l2reg.errors.ConfigError` (``ValueError``) or
        :class:`~l2reg.errors.ConfigTypeError` (``TypeError``) with a one-line
        message naming the option. Data-dependent checks (sizes against the
        data, batch size against n) come later, in :func:`l2reg.fronts.prepare.prepare`.
        """
        opts = replace(self, **_check_basics(self))
        opts = replace(opts, **_check_optimizer(opts))
        opts = replace(opts, **_check_penalty(opts))
        _check_combinations(opts)
        return opts

    # ------------------------------------------------------------ derived

    @property
    def full_batch(self) -> bool:
        return self.optimizer in FULL_BATCH

    @property
    def decay_values(self) -> tuple[float, ...]:
        """What the models differ by in their decay: wd under AdamW, else λ."""
        return self.weight_decay if self.optimizer == "adamw" else (self.lmbda or ())


def _jsonable(value):
    if callable(value):  # a user's policy or factory: by name
        return getattr(value, "__qualname__", repr(value))
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------- the checks


def _sizes(value):
    if value is None:
        return None
    if isinstance(value, str):
        value = V.parse_list("sizes", value, int)
    return tuple(V.integers_list("sizes", value, low=1))


def _check_basics(o: TrainOptions) -> dict:
    from .data import check_dataset_name

    check_dataset_name(o.dataset, o.data_dir, o.train_size)
    _check_label_column(o.dataset, o.label_column)
    if not isinstance(o.standardize, (bool, np.bool_)):
        raise ConfigTypeError(f"standardize must be True or False; got {type(o.standardize).__name__} {o.standardize!r}.")
    V.choice("eval", o.eval, EVALS)
    V.choice("activation", o.activation, ACTIVATIONS)
    V.choice("cost", o.cost, COSTS)
    V.choice("init", o.init, INITS)
    monitor = tuple(o.monitor)
    for name in monitor:
        V.choice("monitor", name, MONITORS)
    return dict(
        sizes=_sizes(o.sizes), epochs=V.integer("epochs", o.epochs, low=1),
        batch_size=V.integer("batch_size", o.batch_size, low=1),
        eta=_tuple(o.eta, lambda v: V.numbers_list("eta", v, low=0, strict=True)),
        seed=_tuple(o.seed, lambda v: V.integers_list("seed", v, low=0)), monitor=monitor,
        data_dir=None if o.data_dir is None else str(o.data_dir),
    )


def _check_label_column(dataset, label_column) -> None:
    """A non-empty column name, and only for a .csv file (the other datasets have no columns)."""
    if not isinstance(label_column, str) or not label_column.strip():
        raise ConfigTypeError(f"label_column must be a non-empty string (a CSV column name); got {label_column!r}.")
    if label_column != "label" and not str(getattr(dataset, "name", dataset)).lower().endswith(".csv"):
        raise ConfigError(f"label_column applies to a .csv dataset; got dataset {str(dataset)!r}.")


def _check_optimizer(o: TrainOptions) -> dict:
    V.choice("optimizer", o.optimizer, OPTIMIZERS + FULL_BATCH)
    momentum, weight_decay = o.momentum, o.weight_decay
    if momentum is not None:
        if o.optimizer not in ("momentum", "nesterov"):
            raise ConfigError(f"momentum applies to optimizer 'momentum' or 'nesterov'; got optimizer {o.optimizer!r}.")
        momentum = tuple(V.numbers_list("momentum", momentum, low=0))
        if max(momentum) >= 1:
            raise ConfigError(f"momentum must be a number in [0, 1); got {max(momentum)!r}.")
    elif o.optimizer in ("momentum", "nesterov"):
        momentum = (DEFAULT_MOMENTUM,)
    if weight_decay is not None:
        if o.optimizer != "adamw":
            raise ConfigError(
                f"weight_decay (decoupled) applies to optimizer 'adamw'; got optimizer {o.optimizer!r}. "
                "For coupled L2 use lmbda (PyTorch's coupled weight_decay is λ/n)."
            )
        weight_decay = tuple(V.numbers_list("weight_decay", weight_decay, low=0))
    elif o.optimizer == "adamw":
        weight_decay = (DEFAULT_WEIGHT_DECAY,)
    if o.decay_scaling is not None and o.optimizer != "adamw":
        raise ConfigError(f"decay_scaling applies to optimizer 'adamw'; got optimizer {o.optimizer!r}.")
    decay_scaling = None
    if o.optimizer == "adamw":
        decay_scaling = V.choice("decay_scaling", o.decay_scaling or "lr", DECAY_SCALINGS)
    V.choice("schedule", o.schedule, SCHEDULES)
    warmup = V.integer("warmup_epochs", o.warmup_epochs, low=0)
    if warmup >= o.epochs:
        raise ConfigError(f"warmup_epochs must be an integer between 0 and {o.epochs - 1} (epochs - 1); got {warmup}.")
    step_epochs = o.step_epochs
    if step_epochs is not None:
        if o.schedule != "step":
            raise ConfigError(f"step_epochs applies to schedule 'step'; got schedule {o.schedule!r}.")
        step_epochs = V.integer("step_epochs", step_epochs, low=1)
    return dict(momentum=momentum, weight_decay=weight_decay, decay_scaling=decay_scaling, warmup_epochs=warmup,
                step_epochs=step_epochs, step_gamma=V.number("step_gamma", o.step_gamma, low=0, strict=True),
                early_stopping=V.flag("early_stopping", o.early_stopping),
                patience=V.integer("patience", o.patience, low=1), stop_on=V.choice("stop_on", o.stop_on, STOP_ON))


def parse_lmbda_per_layer(value) -> tuple[tuple[float, ...], ...]:
    """Per-layer λ configurations: ``"5,0.5"`` or ``[5, 0.5]`` is one, ``"5,0.5;1,0.1"`` or ``[[5, 0.5], [1, 0.1]]`` two."""
    if isinstance(value, str):
        parts = [V.parse_list("lmbda_per_layer", part.strip(), float) for part in value.split(";")]
    elif isinstance(value, (Sequence, np.ndarray)) and len(value) and all(
            isinstance(v, (Sequence, np.ndarray)) and not isinstance(v, str) for v in value):
        parts = list(value)
    else:
        parts = [value]
    return tuple(tuple(V.numbers_list("lmbda_per_layer", p, low=0)) for p in parts)


def _check_penalty(o: TrainOptions) -> dict:
    V.choice("penalty", o.penalty, PENALTIES)
    lmbda, per_layer = o.lmbda, o.lmbda_per_layer
    if per_layer is not None:
        if lmbda is not None:
            raise ConfigError("give lmbda or lmbda_per_layer, not both.")
        per_layer = parse_lmbda_per_layer(per_layer)
    elif lmbda is None:
        lmbda = (0.0 if o.optimizer == "adamw" else DEFAULT_LMBDA,)
    else:
        lmbda = tuple(V.numbers_list("lmbda", lmbda, low=0))
    if o.l1_ratio is not None and o.penalty != "elastic-net":
        raise ConfigError(f"l1_ratio applies to penalty 'elastic-net'; got penalty {o.penalty!r}.")
    l1_ratio = None
    if o.penalty == "elastic-net":
        l1_ratio = 0.5 if o.l1_ratio is None else V.number("l1_ratio", o.l1_ratio, low=0)
        if l1_ratio > 1:
            raise ConfigError(f"l1_ratio must be a number between 0 and 1; got {l1_ratio!r}.")
    V.choice("l1_update", o.l1_update, L1_UPDATES)
    if o.l1_update == "prox" and o.penalty not in ("l1", "elastic-net"):
        raise ConfigError(f"l1_update 'prox' applies to penalty 'l1' or 'elastic-net'; got penalty {o.penalty!r}.")
    return dict(lmbda=lmbda, lmbda_per_layer=per_layer, l1_ratio=l1_ratio,
                penalize_biases=V.flag("penalize_biases", o.penalize_biases))


def _check_combinations(o: TrainOptions) -> None:
    every = list(o.lmbda or ()) + [x for cfg in o.lmbda_per_layer or () for x in cfg]
    if o.optimizer == "adamw" and o.penalty in ("l2", "elastic-net") and every and max(every) > 0:
        raise ConfigError(
            "optimizer 'adamw' decays the weights by weight_decay (decoupled), not by an L2 penalty; "
            "leave lmbda at 0, or use optimizer 'adam' for coupled L2."
        )
    if o.early_stopping and o.eval != "validation":
        raise ConfigError("early_stopping needs eval='validation': stopping on the test set would tune on it.")
    if o.full_batch:
        if o.lmbda_per_layer is not None:
            raise ConfigError("optimizer 'lbfgs' (full batch) takes one λ for all layers; drop lmbda_per_layer.")
        for name, default in (("schedule", "constant"), ("warmup_epochs", 0), ("early_stopping", False),
                              ("penalize_biases", False)):
            if getattr(o, name) != default:
                raise ConfigError(f"optimizer 'lbfgs' (full batch, penalty l2 or none) does not take "
                                  f"{name}={getattr(o, name)!r}.")
        if o.penalty not in ("l2", "none"):
            raise ConfigError(f"optimizer 'lbfgs' (full batch, penalty l2 or none) does not take penalty={o.penalty!r}.")


# ---------------------------------------------------------------- sweep and explain


def check_backend(backend: str, address, block_size) -> None:
    """The checks of ``backend``, ``address`` and ``block_size`` (one line each), without importing Ray."""
    V.choice("backend", backend, BACKENDS)
    for name, value in (("address", address), ("block_size", block_size)):
        if value is not None and backend != "ray":
            raise ConfigError(f"{name} applies to backend 'ray'; got backend {backend!r}.")
    if address is not None:
        parse_address(address)
    if block_size is not None:
        V.integer("block_size", block_size, low=1)
    if backend == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("backend 'ray' needs Ray: pip install -e \".[ray]\" (in your clone of l2reg).")


def parse_address(address) -> tuple[str, int] | None:
    """``(host, port)`` of a HOST:PORT address (IPv6 in brackets); None for "auto"."""
    if not isinstance(address, str):
        raise ConfigTypeError(f"address must be 'auto' or HOST:PORT; got {address!r}.")
    if address == "auto":
        return None
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or "/" in address or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"address must be 'auto' or HOST:PORT; got {address!r}.")
    return host, int(port)


@dataclass(frozen=True)
class SweepOptions(TrainOptions):
    """:class:`TrainOptions` plus the sweep's own: ``folds``, ``select``, ``lmbda_grid``, and where it
    trains: ``backend``, ``address``, ``block_size``.

    ``lmbda`` and ``eta`` are the grids (λ × η pairs, λ fastest); ``lmbda``
    None means :func:`l2reg.fronts.cv.default_grid`. One seed (it draws the folds),
    one momentum and one weight decay; no early stopping.
    """

    eval: str = "test"
    monitor: tuple[str, ...] = CV_MONITOR
    folds: int = DEFAULT_FOLDS
    select: str = "min"
    lmbda_grid: str | None = None
    backend: str = "local"
    address: str | None = None  # ray: "auto", "HOST:PORT", or None for a local cluster
    block_size: int | None = None  # ray: pairs (η, λ) per task; None: all of a fold's pairs

    def checked(self):
        check_backend(self.backend, self.address, self.block_size)
        if self.lmbda is not None and self.lmbda_grid is not None:
            raise ConfigError("give lmbda or lmbda_grid, not both.")
        V.choice("select", self.select, SELECT)
        V.integer("folds", self.folds, low=2)
        grid = None
        if self.lmbda_grid is not None:
            if not isinstance(self.lmbda_grid, str):
                raise ConfigTypeError(f"lmbda_grid must be a string LO:HI:K; got {self.lmbda_grid!r}.")
            grid = parse_grid(self.lmbda_grid)
        elif self.lmbda is not None:
            grid = tuple(sorted(set(V.numbers_list("lmbda", self.lmbda, low=0))))
        seed = V.integers_list("seed", self.seed, low=0)
        if len(seed) != 1:
            raise ConfigError(f"a sweep takes one seed (it draws the folds); got {len(seed)}.")
        if self.lmbda_per_layer is not None or self.early_stopping or self.full_batch:
            what = "lmbda_per_layer" if self.lmbda_per_layer is not None else (
                "early_stopping" if self.early_stopping else f"optimizer {self.optimizer!r}")
            raise ConfigError(f"sweep does not take {what}; use l2reg train.")
        if grid is None and self.optimizer == "adamw" and self.penalty in ("l2", "elastic-net"):
            raise ConfigError("optimizer 'adamw' decays by weight_decay, not λ: give penalty 'l1' or 'none' with "
                              "lmbda, or sweep optimizer 'adam' (coupled L2).")
        probe = replace(self, lmbda=grid if grid is not None else (0.0,), lmbda_grid=None, eval="test")
        opts = TrainOptions.checked(probe)
        for key in ("momentum", "weight_decay"):
            if getattr(opts, key) is not None and len(getattr(opts, key)) != 1:
                raise ConfigError(f"{key} must be one number in a sweep (the grid is λ); got {list(getattr(opts, key))!r}.")
        return replace(opts, lmbda=grid, eta=tuple(sorted(set(opts.eta))))


@dataclass(frozen=True)
class TorchSweepOptions(SweepOptions):
    """:class:`SweepOptions` for your own PyTorch model (:func:`l2reg.torch.sweep`): plus ``model``
    (``"module:function"``, when given by name), ``policy`` (which parameters decay), ``device`` and
    ``strategy`` (how the ensemble steps its members: :data:`STRATEGIES`, ``auto`` measures).

    The network options (sizes, activation, cost, init) do not apply: the model is the user's.
    """

    dataset: object = "arrays"
    eta: tuple[float, ...] = (0.1,)
    epochs: int = 10
    batch_size: int = 64
    model: str | None = None
    policy: str = "l2reg"
    device: str = "cpu"
    strategy: str = "auto"

    @classmethod
    def policies(cls) -> tuple:
        """The policy names this front knows (a subclass for another front names its own)."""
        return POLICIES

    @classmethod
    def strategies(cls) -> tuple:
        """The ways this front's ensemble can step its members."""
        return STRATEGIES

    def checked(self):
        from .data import check_dataset_name

        if isinstance(self.dataset, str) and self.dataset != "arrays":
            check_dataset_name(self.dataset)
        if isinstance(self.policy, str):
            V.choice("policy", self.policy, self.policies())
        elif not callable(self.policy):
            raise ConfigTypeError(f"policy must be one of {', '.join(self.policies())} or a callable; "
                                  f"got {self.policy!r}.")
        if not isinstance(self.device, str):
            raise ConfigTypeError(f"device must be a string such as 'cpu' or 'cuda'; got {self.device!r}.")
        V.choice("strategy", self.strategy, self.strategies())
        wd = self._wd_grid()
        # The data is checked when it is loaded (any array shape the model takes), not as an MLP dataset; under
        # adamw the grid is weight_decay (checked above) and nothing enters the cost (penalty none).
        adamw = self.optimizer == "adamw"
        _check_label_column(self.dataset, self.label_column)
        probe = replace(self, dataset="digits", label_column="label", weight_decay=None,
                        penalty="none" if adamw else self.penalty)
        opts = SweepOptions.checked(probe)
        return replace(opts, dataset=self.dataset, label_column=self.label_column,
                       weight_decay=wd if adamw else None)

    def _wd_grid(self) -> tuple | None:
        """Under ``adamw`` the grid is ``weight_decay`` (decoupled; None: :data:`DEFAULT_WD_GRID`'s); ``lmbda``
        is the coupled λ of the other optimizers. Each refused naming the option to give instead."""
        if self.optimizer == "adamw" and (self.lmbda is not None or self.lmbda_grid is not None):
            raise ConfigError("optimizer 'adamw' decays by weight_decay (decoupled), not λ: give its grid as "
                              "weight_decay (--weight-decay), e.g. 0,0.01,0.1, and no lmbda.")
        if self.weight_decay is None:
            return None
        if self.optimizer != "adamw":
            raise ConfigError(f"weight_decay is the decoupled grid of optimizer 'adamw' (--optimizer adamw); got "
                              f"optimizer {self.optimizer!r}, whose grid is lmbda (coupled L2).")
        return tuple(sorted(set(V.numbers_list("weight_decay", self.weight_decay, low=0))))


#: How a JAX ensemble steps its members (:mod:`l2reg.jax.ensemble`): measured, or one way asked.
JAX_STRATEGIES = ("auto", "vmap", "map", "chunked")
#: Which leaves of a JAX model's parameter tree decay (:mod:`l2reg.jax.policy`).
JAX_POLICIES = ("l2reg", "ndim")


@dataclass(frozen=True)
class JaxSweepOptions(TorchSweepOptions):
    """:class:`TorchSweepOptions` for your own JAX model (:func:`l2reg.jax.sweep`): ``policy`` one of
    :data:`JAX_POLICIES`, ``strategy`` one of :data:`JAX_STRATEGIES`; ``device`` is not used (JAX's default
    device trains)."""

    @classmethod
    def policies(cls) -> tuple:
        return JAX_POLICIES

    @classmethod
    def strategies(cls) -> tuple:
        return JAX_STRATEGIES


def parse_grid(text: str) -> tuple[float, ...]:
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
    return (0.0,) + tuple(float(v) for v in np.geomspace(lo, hi, k))


@dataclass(frozen=True)
class ExplainOptions(TrainOptions):
    """:class:`TrainOptions` plus explain's own: ``record_every``, ``track``, ``snapshots``.

    One seed, one η, one momentum; penalty ``l2``; λ = 0 (or wd = 0 under
    AdamW) is added as the companion.
    """

    record_every: int | None = None
    track: int = 4
    snapshots: int = 4

    def checked(self):
        opts = TrainOptions.checked(self)
        for name in ("seed", "eta", "momentum"):
            value = getattr(opts, name)
            if value is not None and len(value) != 1:
                raise ConfigError(f"explain takes one {name}; got {len(value)}.")
        if opts.penalty != "l2" or opts.lmbda_per_layer is not None or opts.full_batch:
            raise ConfigError("explain takes penalty 'l2' with one λ list and a mini-batch optimizer.")
        if opts.record_every is not None:
            V.integer("record_every", opts.record_every, low=1)
        V.integer("track", opts.track, low=0)
        V.integer("snapshots", opts.snapshots, low=1)
        if max(opts.decay_values) == 0:
            what = "weight_decay" if opts.optimizer == "adamw" else "lmbda"
            raise ConfigError(f"explain needs a {what} > 0 to explain (λ = 0 is added as the companion); "
                              f"got {', '.join(f'{x:g}' for x in opts.decay_values)}.")
        return opts


# ---------------------------------------------------------------- what each option means, once

#: One line per option, for the docstring of every front that takes it (:func:`parameters_doc`).
HELP = {
    "dataset": "``digits`` (built in), ``mnist``, ``fashion-mnist``, a ``.npz``/``.csv`` path, or a "
               ":class:`~l2reg.data.Dataset`.",
    "data_dir": "folder with the MNIST IDX files (else ``$L2REG_DATA``, else a download).",
    "train_size": "train on the first N training examples only (None: all).",
    "eval": "the set evaluated after every epoch: ``validation`` or ``test``.",
    "label_column": "the label column of a ``.csv`` dataset (default ``label``); string labels become classes "
                    "0..C-1 in sorted order.",
    "standardize": "z-score every feature by the training split's mean and standard deviation (raw features "
                   "far outside [0, 1], such as pixels 0–255, train poorly).",
    "sizes": "layer sizes, e.g. ``(784, 30, 10)`` or ``\"784,30,10\"`` (None: features, 30, classes).",
    "activation": "the hidden activation (:data:`ACTIVATIONS`).",
    "cost": "C0: ``cross-entropy`` (sigmoid outputs), ``log-likelihood`` (softmax) or ``quadratic``.",
    "init": "``default``: weights N(0, 1/n_in); ``large``: N(0, 1) (Nielsen's).",
    "optimizer": "the update rule (:data:`OPTIMIZERS`; ``lbfgs``: full batch): coupled L2 except ``adamw``'s "
                 "decoupled ``weight_decay``.",
    "eta": "the learning rate η, or a list (the grid η × λ).",
    "epochs": "training epochs (``lbfgs``: the most iterations).",
    "batch_size": "the mini-batch size m.",
    "momentum": f"μ of ``momentum``/``nesterov`` (default {DEFAULT_MOMENTUM}).",
    "weight_decay": f"``adamw``'s decoupled wd (default {DEFAULT_WEIGHT_DECAY}): w ← w − η·wd·w outside the moments.",
    "decay_scaling": "``adamw``: \"lr\" (wd times the learning rate, as optax and PyTorch) or \"schedule\" "
                     "(times the schedule multiplier only).",
    "schedule": "the learning-rate schedule: ``constant``, ``step`` or ``cosine``.",
    "warmup_epochs": "epochs of linear warm-up before the schedule.",
    "step_epochs": "``step`` schedule: epochs between drops (None: a third of the epochs).",
    "step_gamma": "``step`` schedule: the factor of each drop.",
    "penalty": "``l2`` (λ/2n)·Σw², ``l1`` (λ/n)·Σ|w|, ``elastic-net`` or ``none``; n = training-set size.",
    "lmbda": f"λ of the penalty, or a list (default {DEFAULT_LMBDA:g}; 0 with ``adamw``).",
    "lmbda_per_layer": "one λ per weight layer instead of ``lmbda``, e.g. ``[5, 0.5]`` (a list of them trains each).",
    "l1_ratio": "``elastic-net``: ρ in (λ/n)·[ρ·Σ|w| + ((1−ρ)/2)·Σw²] (None: 0.5).",
    "l1_update": "``l1``/``elastic-net``: ``subgradient``, or ``prox`` (the soft threshold: exact zeros).",
    "penalize_biases": "penalize (or decay) the biases too.",
    "early_stopping": "stop each model once its evaluation score has not improved for ``patience`` epochs.",
    "patience": "epochs without improvement before early stopping (Nielsen's rule: 10).",
    "stop_on": "what early stopping watches: ``accuracy`` or ``cost``.",
    "seed": "the seed of the initial weights and the mini-batch order (a list: each model once per seed).",
    "monitor": "what is computed after every epoch (:data:`MONITORS`).",
    "folds": "the number of stratified cross-validation folds of the training set.",
    "select": "``min`` (the best mean CV score) or ``1se`` (the largest λ within one standard error of it).",
    "lmbda_grid": "``\"LO:HI:K\"``: λ = 0 plus K log-spaced values from LO to HI (instead of ``lmbda``).",
    "backend": "where the grid trains: ``local`` (this process) or ``ray`` (blocks on a Ray cluster).",
    "address": "``ray``: the cluster, ``\"auto\"`` or ``\"HOST:PORT\"`` (None: a local one).",
    "block_size": "``ray``: (η, λ) pairs per task (None: all of a fold's).",
    "record_every": "record every k-th step (None: about 50 records per epoch).",
    "track": "weights per layer whose trajectories are recorded.",
    "snapshots": "epochs whose every weight, decay term and data term are kept for the figures.",
    "policy": "which parameters decay (:data:`POLICIES`, or a callable).",
    "device": "``cpu``, or ``cuda`` where available.",
    "on_epoch": "``on_epoch(epoch, metrics)`` after every epoch (epoch None once, before the first).",
    "checkpoint_dir": "a folder for checkpoints, written at most every few seconds and on Ctrl-C.",
    "resume": "continue from the checkpoints in ``checkpoint_dir`` (its options must match; the first that "
              "differs is named).",
}


def parameters_doc(names, extra: dict | None = None) -> str:
    """A docstring's "Parameters" section for ``names``, from :data:`HELP` (``extra``: the front's own)."""
    table = dict(HELP, **(extra or {}))
    return "\n\nParameters\n----------\n" + "\n".join(f"``{name}``: {table[name]}" for name in names)


def documented(extra: dict | None = None):
    """A decorator: the function's docstring gains :func:`parameters_doc` of its own signature (its options,
    from :data:`HELP` and ``extra``; a parameter that only its prose documents stays there)."""
    import inspect

    def decorate(fn):
        table = dict(HELP, **(extra or {}))
        names = [p for p in inspect.signature(fn).parameters if p != "self" and p in table]
        fn.__doc__ = (fn.__doc__ or "").rstrip() + parameters_doc(names, extra).replace("\n", "\n    ")
        return fn

    return decorate
