"""l2reg: L2 regularization of neural networks, made real.

The cost is C = C0 + (λ/2n)·Σw² (weights only; n = training-set size) and
the update w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w. See :mod:`l2reg.train`.

Submodules load lazily, so that ``import l2reg`` and ``l2reg --help`` stay fast
and :mod:`l2reg.data` works without importing JAX.
"""

from __future__ import annotations

import importlib
import sys
import types

from .errors import ConfigError, DataError, L2RegError

__version__ = "0.1.0"

class _CallableModule(types.ModuleType):
    """A module that can be called as its namesake function.

    ``l2reg.train`` is both the module :mod:`l2reg.train` (importing a
    submodule binds its name on the package) and the function
    ``l2reg.train(...)``; calling the module calls the function, whichever of
    the two the name resolves to.
    """

    def __call__(self, *args, **kwargs):
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


def _callable_module(name: str) -> None:
    sys.modules[name].__class__ = _CallableModule


_LAZY = {
    "Dataset": "data",
    "load_dataset": "data",
    "TrainResult": "train",
}
# Modules that are also the function of the same name.
_CALLABLE = ("train", "sweep", "explain")

__all__ = ["ConfigError", "DataError", "L2RegError", *_LAZY, *_CALLABLE]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _CALLABLE:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'l2reg' has no attribute {name!r}")
