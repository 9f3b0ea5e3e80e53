"""l2reg: L2 regularization of neural networks, made real.

The cost is C = C0 + (λ/2n)·Σw² (weights only; n = training-set size) and
the update w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w. See :mod:`l2reg.train`.

Submodules load lazily, so that ``import l2reg`` and ``l2reg --help`` stay fast
and :mod:`l2reg.data` works without importing JAX.
"""

from __future__ import annotations

import importlib

from .errors import ConfigError, DataError, L2RegError

__version__ = "0.1.0"

_LAZY = {
    "Dataset": "data",
    "load_dataset": "data",
    "train": "train",
    "TrainResult": "train",
}

__all__ = ["ConfigError", "DataError", "L2RegError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'l2reg' has no attribute {name!r}")
