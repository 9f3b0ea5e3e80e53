"""Which leaves of a JAX model's parameter tree decay: a policy, the optax mask, and the audit.

l2reg's cost is C = C0 + (λ/2n)·Σ_w w² over the *weights* only. A policy
decides per parameter leaf (named by its path, ``"conv1.kernel"``,
``"layers.0.weight"``, ``"Dense_0.kernel"``) and records why:

* ``"l2reg"`` (the default): kernels of dense and convolutional layers and
  embedding tables decay; biases, the scales and shifts of normalization
  layers (NNX/Linen ``BatchNorm``, ``LayerNorm``, ``GroupNorm``, ``RMSNorm``;
  Equinox's ``BatchNorm``, ``LayerNorm``, …) and every other 0-D or 1-D
  leaf (a per-unit scale or shift) do not. In order: a leaf named ``bias``
  (or ending in ``bias``) does not decay; a leaf of a layer whose class is
  named like a norm does not; a leaf with ndim ≤ 1 does not; any other
  (ndim ≥ 2) does.
* ``"ndim"``: optax's common mask ``x.ndim > 1``.
* a callable ``policy(path, leaf) -> bool``: ``path`` the dotted name,
  ``leaf`` the array; True decays.

The mask is a dict of booleans over the flat parameter dict of
:mod:`l2reg.jax.models`, as ``optax.add_decayed_weights(..., mask=)`` and
``optax.adamw(..., mask=)`` take it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

from ..models.audit import Decision
from ..errors import ConfigError, ConfigTypeError

from ..options import JAX_POLICIES as POLICIES  # noqa: E402
DEFAULT_POLICY = "l2reg"

_NORM = re.compile(r"(Norm\d*d?|Norm_\d+)$")


def _leaf_name(name: str) -> str:
    return name.rpartition(".")[2]


def _l2reg(name: str, leaf, owner: str) -> tuple[bool, str]:
    if _leaf_name(name).endswith("bias"):
        return False, "bias"
    if owner and _NORM.search(owner):
        return False, f"scale/shift of norm layer {owner}"
    if np.ndim(leaf) <= 1:
        return False, f"ndim = {np.ndim(leaf)}: a per-unit scale or shift"
    return True, f"{_leaf_name(name)} of {owner or 'a layer'} (ndim = {np.ndim(leaf)})"


def _ndim(name: str, leaf, owner: str) -> tuple[bool, str]:
    return (True, "ndim > 1") if np.ndim(leaf) > 1 else (False, "ndim <= 1")


_RULES = {"l2reg": _l2reg, "ndim": _ndim}


def resolve_policy(policy) -> tuple[str, Callable]:
    """``(label, rule(name, leaf, owner) -> (decay, why))`` for a policy name or callable."""
    if callable(policy):
        label = getattr(policy, "__name__", "callable")

        def rule(name, leaf, owner):
            out = policy(name, leaf)
            if not isinstance(out, (bool, np.bool_)):
                raise ConfigTypeError(f"the policy callable must return True or False for each parameter; "
                                      f"got {out!r} for {name!r}.")
            return bool(out), f"{label}() returned {bool(out)}"

        return label, rule
    if isinstance(policy, str) and policy in _RULES:
        return policy, _RULES[policy]
    raise ConfigError(f"policy must be one of {', '.join(POLICIES)} or a callable (path, leaf) -> bool; "
                      f"got {policy!r}.")


def classify(params: dict, owners: dict, policy=DEFAULT_POLICY) -> list[Decision]:
    """One :class:`~l2reg.models.audit.Decision` per leaf of the flat ``params`` ``{name: array}``, in its
    order, under ``policy`` (a name or a callable); ``owners``: ``{name: class name of the layer that holds
    it}`` (:mod:`l2reg.jax.models`), which tells a norm layer's scale from a kernel."""
    _, rule = resolve_policy(policy)
    out = []
    for name, leaf in params.items():
        decay, why = rule(name, leaf, owners.get(name, ""))
        shape = tuple(np.shape(leaf))
        out.append(Decision(name=name, shape=shape, count=math.prod(shape), decay=decay, rule=why))
    return out


def decay_mask(params: dict, owners: dict, policy=DEFAULT_POLICY) -> dict:
    """``{name: bool}``: the optax mask of the leaves of the flat ``params`` that ``policy`` decays
    (``owners`` as :func:`classify` takes them)."""
    return {d.name: bool(d.decay) for d in classify(params, owners, policy)}

