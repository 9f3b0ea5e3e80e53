"""Load the user's model factory from ``"package.module:function"`` (or ``"path/to/file.py:function"``).

Every failure is one line (:class:`~l2reg.errors.ConfigError`): not
importable, no such attribute, not callable, raises, or does not return an
``nn.Module``. The command line turns it into ``error: ...`` and exit code 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, ConfigTypeError


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _import(module: str, spec: str):
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_file():
            raise ConfigError(f"cannot import factory {spec!r}: file {module} does not exist.")
        loader = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(loader)
        try:
            loader.loader.exec_module(mod)
        except Exception as e:  # the user's module: any failure is bad input
            raise ConfigError(f"cannot import factory {spec!r}: {module} raised {_one_line(e)}.") from None
        return mod
    # A console script does not have the working directory on sys.path; `python -m` does.
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except Exception as e:
        raise ConfigError(f"cannot import module {module!r} of factory {spec!r}: {_one_line(e)}.") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())


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
    if not isinstance(spec, str):
        raise ConfigTypeError(f"factory must be a string 'module:function'; got {type(spec).__name__}.")
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"factory must be 'module:function' (e.g. mypkg.models:make_model); got {spec!r}.")
    mod = _import(module, spec)
    fn = mod
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise ConfigError(f"module {module!r} has no attribute {attr!r} (factory {spec!r}).")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ConfigTypeError(f"factory {spec!r} is not callable; got {type(fn).__name__}.")
    factory = _checked(fn, spec)
    with torch.random.fork_rng(devices=[]):
        factory()
    return factory
