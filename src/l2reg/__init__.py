"""l2reg: L2 regularization of neural networks, made real.

The cost is C = C0 + (λ/2n)·Σw² (weights only; n = training-set size) and
the update w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w (:mod:`l2reg.update`).

The public functions, each with its own signature and docstring:

* :func:`l2reg.train` — train networks, every λ (η, seed, ...) at once;
* :func:`l2reg.sweep` — choose λ by vectorized k-fold cross-validation;
* :func:`l2reg.explain` — record the decay and data terms of every weight;
* :func:`l2reg.convert` — λ in the conventions of PyTorch, Keras, scikit-learn, optax.

They load lazily, so that ``import l2reg`` and ``l2reg --help`` stay fast and
no JAX is imported before the options are checked. ``l2reg.train`` is always
the function: the implementation module of the same name is imported as
``from l2reg.train import ...`` (or ``importlib.import_module("l2reg.train")``).
"""

from __future__ import annotations

import importlib
import sys
import types

from .errors import ConfigError, DataError, L2RegError

__version__ = "0.2.0"

# Public name -> the module that defines it.
_LAZY = {
    "train": "train", "sweep": "sweep", "explain": "explain", "convert": "conventions",
    "Dataset": "data", "load_dataset": "data", "TrainResult": "train", "SweepResult": "sweep",
    "ExplainResult": "explain", "TrainOptions": "options", "SweepOptions": "options", "ExplainOptions": "options",
}
# Functions that share their name with the module defining them.
_FUNCTIONS = ("train", "sweep", "explain")

__all__ = ["ConfigError", "DataError", "L2RegError", "__version__", *_LAZY]


class _Package(types.ModuleType):
    """The package: importing the submodule ``l2reg.train`` never replaces the function ``l2reg.train``.

    (Python binds every imported submodule as an attribute of its package.)
    """

    def __setattr__(self, name, value):
        if name in _FUNCTIONS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        setattr(sys.modules[__name__], name, value)
        return value
    raise AttributeError(f"module 'l2reg' has no attribute {name!r}")
