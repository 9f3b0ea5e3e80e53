"""Load the user's model factory from ``"package.module:function"`` (or ``"path/to/file.py:function"``).

Every failure is one line (:class:`~l2reg.errors.ConfigError`): not
importable, no such attribute, not callable, raises, or does not return an
``nn.Module``. The command line turns it into ``error: ...`` and exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError, ConfigTypeError
from ..models.factories import import_factory
from ..models.factories import one_line as _one_line


def _checked(fn: Callable, spec: str) -> Callable[[], nn.Module]:
    def factory() -> nn.Module:
        try:
            model = fn()
        except Exception as e:
            raise ConfigError(f"factory {spec!r} raised {_one_line(e)}.") from None
        if not isinstance(model, nn.Module):
            raise ConfigTypeError(f"factory {spec!r} must return a torch.nn.Module; got {type(model).__name__}.")
        return model

    factory.__name__ = getattr(fn, "__name__", "factory")
    factory.__doc__ = getattr(fn, "__doc__", None)
    return factory


def load_factory(spec: str) -> Callable[[], nn.Module]:
    """Import ``spec`` (``"module:function"``), check it once, and return it as a checked no-argument factory.

    ``module`` is a dotted module name (the working directory is searched
    too) or a ``.py`` file. The function is called once here (under a
    forked RNG, so the caller's random state is untouched) to check that it
    returns an ``nn.Module``; each later call of the returned factory checks
    again. ``load_factory(spec)()`` is the model.
    """
    fn = import_factory(spec)
    factory = _checked(fn, spec)
    with torch.random.fork_rng(devices=[]):
        factory()
    return factory
