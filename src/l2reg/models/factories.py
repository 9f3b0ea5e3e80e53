"""Import a user's factory from ``"package.module:function"`` or ``"path/to/file.py:function"``, for any front.

Every failure is one line (:class:`~l2reg.errors.ConfigError`): not
importable, no such attribute, not callable. The fronts check what the
factory returns (``l2reg.torch.load_factory``, ``l2reg.jax.load_factory``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from ..errors import ConfigError, ConfigTypeError


def one_line(e: BaseException) -> str:
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
            raise ConfigError(f"cannot import factory {spec!r}: {module} raised {one_line(e)}.") from None
        return mod
    # A console script does not have the working directory on sys.path; `python -m` does.
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except Exception as e:
        raise ConfigError(f"cannot import module {module!r} of factory {spec!r}: {one_line(e)}.") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())


def import_factory(spec: str):
    """The callable named by ``"module:function"`` (``module`` a dotted name, the working directory searched
    too, or a ``.py`` file; ``function`` may be dotted)."""
    if not isinstance(spec, str):
        raise ConfigTypeError(f"factory must be a string 'module:function'; got {type(spec).__name__}.")
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"factory must be 'module:function' (e.g. mypkg.models:make_model); got {spec!r}.")
    fn = _import(module, spec)
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise ConfigError(f"module {module!r} has no attribute {attr!r} (factory {spec!r}).")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ConfigTypeError(f"factory {spec!r} is not callable; got {type(fn).__name__}.")
    return fn
