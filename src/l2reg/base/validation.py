"""Argument checks shared by the Python API, the estimators and the CLI.

Every check raises :class:`~l2reg.errors.ConfigError` (a ``ValueError``) or
:class:`~l2reg.errors.ConfigTypeError` (a ``TypeError``) with a one-line
message in scikit-learn's style: ``lmbda must be a finite number >= 0; got -1.0.``
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError, ConfigTypeError


def _is_real(value) -> bool:
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, bool)


def number(name: str, value, *, low: float | None = None, strict: bool = False) -> float:
    """A finite real number, optionally ``>= low`` (``> low`` when ``strict``)."""
    bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
    if not _is_real(value):
        raise ConfigTypeError(f"{name} must be a finite number{bound}; got {value!r}.")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None and not bad:
        bad = value <= low if strict else value < low
    if bad:
        raise ConfigError(f"{name} must be a finite number{bound}; got {value!r}.")
    return value


def integer(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    """An integer in ``[low, high]``."""
    if low is not None and high is not None:
        what = f"an integer between {low} and {high}"
    elif low is not None:
        what = f"an integer >= {low}"
    else:
        what = "an integer"
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ConfigTypeError(f"{name} must be {what}; got {value!r}.")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name} must be {what}; got {value!r}.")
    return value


def flag(name: str, value) -> bool:
    """True or False (NumPy booleans too); anything else is a type error."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigTypeError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def choice(name: str, value, options: Sequence[str]) -> str:
    if value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}; got {value!r}.")
    return value


def numbers_list(name: str, values, *, low: float | None = None, strict: bool = False) -> list[float]:
    """A non-empty list of finite numbers; a single number is a list of one."""
    if _is_real(values):
        values = [values]
    if isinstance(values, str) or not isinstance(values, (Sequence, np.ndarray)):
        raise ConfigTypeError(f"{name} must be a number or a list of numbers; got {values!r}.")
    if len(values) == 0:
        raise ConfigError(f"{name} must not be empty.")
    return [number(name, v, low=low, strict=strict) for v in values]


def integers_list(name: str, values, *, low: int | None = None) -> list[int]:
    if isinstance(values, (numbers.Integral, np.integer)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, str) or not isinstance(values, (Sequence, np.ndarray)):
        raise ConfigTypeError(f"{name} must be an integer or a list of integers; got {values!r}.")
    if len(values) == 0:
        raise ConfigError(f"{name} must not be empty.")
    return [integer(name, v, low=low) for v in values]


def parse_list(name: str, text: str, kind=float) -> list:
    """Parse ``"0,0.1,1"`` from the command line; the error names the option."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text or any(p == "" for p in parts):
        raise ConfigError(f"{name} must be a comma-separated list of numbers; got {text!r}.")
    out = []
    for p in parts:
        try:
            out.append(kind(p))
        except ValueError:
            what = "integers" if kind is int else "numbers"
            raise ConfigError(f"{name} must be a comma-separated list of {what}; got {text!r}.") from None
    return out
