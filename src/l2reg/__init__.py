"""l2reg: L2 regularization of neural networks, made real.

The cost is C = C0 + (λ/2n)·Σw² (weights only; n = training-set size) and
the update w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w (:mod:`l2reg.core.update`).

The public functions, each with its own signature and docstring:

* :func:`train` — train networks, every λ (η, seed, ...) at once;
* :func:`sweep` — choose λ by vectorized k-fold cross-validation;
* :func:`explain` — record the decay and data terms of every weight;
* :func:`convert` — λ in the conventions of PyTorch, Keras, scikit-learn, optax;
* :func:`save` — write a result's folder (JSON, arrays, ``report.html``).

They load on first use, so that ``import l2reg`` and ``l2reg --help`` stay
fast and no JAX is imported before the options are checked; static tools
see them through the imports below. Your own models: :mod:`l2reg.torch`
(PyTorch), :mod:`l2reg.sklearn` (estimators). The package's layers:
``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import ConfigError, DataError, L2RegError

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .data import Dataset, load_dataset
    from .fronts.conventions import convert
    from .fronts.cv import SweepResult
    from .fronts.explaining import ExplainResult, explain
    from .fronts.sweeping import sweep
    from .fronts.training import TrainResult, train
    from .options import ExplainOptions, SweepOptions, TrainOptions
    from .present.save import save

# Public name -> the module that defines it (imported on first use).
_LAZY = {
    "train": "fronts.training", "sweep": "fronts.sweeping", "explain": "fronts.explaining",
    "convert": "fronts.conventions", "save": "present.save", "Dataset": "data", "load_dataset": "data",
    "TrainResult": "fronts.training", "SweepResult": "fronts.cv", "ExplainResult": "fronts.explaining",
    "TrainOptions": "options", "SweepOptions": "options", "ExplainOptions": "options",
}

__all__ = [
    "ConfigError", "DataError", "Dataset", "ExplainOptions", "ExplainResult", "L2RegError", "SweepOptions",
    "SweepResult", "TrainOptions", "TrainResult", "__version__", "convert", "explain", "load_dataset", "save",
    "sweep", "train",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'l2reg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
