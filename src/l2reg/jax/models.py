"""A Flax NNX, Flax Linen or Equinox model as pure functions of flat parameter and state dicts.

:func:`adapt` turns what ``model_fn(key)`` returned into an :class:`Adapted`:

* ``params``: the trainable leaves as a flat dict ``{name: array}`` (names are
  the leaves' paths, ``"layers.0.kernel"``), the layout the optax chain, the
  decay mask and the stacked ensemble use;
* ``state``: the leaves that are not parameters, flat the same way (NNX
  ``BatchStat`` and RNG streams, Linen collections other than ``params``
  such as ``batch_stats``, an Equinox ``State``);
* ``apply(params, state, x, key, train) -> (out, new_state)``: the model on a
  batch ``x`` ``(m, ...)``; an Equinox model is called on one example, as
  Equinox models are, and vmapped over the batch here (``axis_name="batch"``,
  the name ``eqx.nn.BatchNorm`` takes);
* ``rebuild(params, state)``: the library's own object again.

Flax and Equinox are imported only when a model of theirs is given. The
module is recognized by its class: ``flax.nnx.Module``, a pair
``(flax.linen.Module, variables)``, an ``equinox.Module`` or a pair
``(equinox.Module, equinox.nn.State)`` (``eqx.nn.make_with_state``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..errors import ConfigTypeError

KINDS = ("nnx", "linen", "equinox")


@dataclass(frozen=True)
class Adapted:
    """One model in functional form (module docstring). ``static`` is hashable where the library's
    structure is (it keys the compiled programs); ``owners[name]`` is the class name of the layer
    holding parameter ``name`` (where the library tells)."""

    kind: str
    params: dict
    state: dict
    apply: Callable
    rebuild: Callable
    static: object
    owners: dict


def library(obj) -> str | None:
    mods = [c.__module__ for c in type(obj).__mro__]
    if any(m.startswith("flax.nnx") for m in mods):
        return "nnx"
    if any(m.startswith("flax.linen") for m in mods):
        return "linen"
    if any(m.startswith("equinox") for m in mods):
        return "equinox"
    return None


def kind_of(built) -> str:
    """``"nnx"``, ``"linen"`` or ``"equinox"`` for what a factory returned; anything else is one line."""
    if isinstance(built, tuple) and len(built) == 2 and library(built[0]) in ("linen", "equinox"):
        return library(built[0])
    lib = library(built)
    if lib in ("nnx", "equinox"):
        return lib
    got = f"a tuple of {len(built)}" if isinstance(built, tuple) else type(built).__name__
    raise ConfigTypeError(f"model_fn(key) must return an nnx.Module, a Linen (module, variables) pair or an "
                          f"eqx.Module (or (eqx.Module, eqx.nn.State)); got {got}.")


def _flatten(tree, strip: str = "") -> tuple[dict, Callable]:
    """``({name: leaf}, unflatten)``: names from the key paths (``strip`` drops a suffix such as ``.value``)."""
    pairs, treedef = jax.tree_util.tree_flatten_with_path(tree)
    names = []
    for path, _ in pairs:
        name = jax.tree_util.keystr(path, simple=True, separator=".")
        names.append(name[: -len(strip)] if strip and name.endswith(strip) else name)
    flat = dict(zip(names, (leaf for _, leaf in pairs)))

    def unflatten(d: dict):
        return jax.tree_util.tree_unflatten(treedef, [d[n] for n in names])

    return flat, unflatten


def _walk(root, path_keys) -> object | None:
    obj = root
    for key in path_keys:
        name = getattr(key, "name", getattr(key, "key", getattr(key, "idx", None)))
        try:
            obj = getattr(obj, name) if isinstance(name, str) and hasattr(obj, name) else obj[name]
        except (TypeError, KeyError, IndexError, AttributeError):
            return None
    return obj


def _owners(root, tree, strip: str = "") -> dict:
    """``{name: class name of the object holding the leaf}`` by walking the key paths."""
    out = {}
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = jax.tree_util.keystr(path, simple=True, separator=".")
        name = name[: -len(strip)] if strip and name.endswith(strip) else name
        keys = list(path[:-2] if strip else path[:-1])
        owner = _walk(root, keys)
        out[name] = type(owner).__name__ if owner is not None else ""
    return out


def _takes(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- Flax NNX


def _nnx(model) -> Adapted:
    from flax import nnx

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    p_flat, p_unflat = _flatten(params, ".value")
    s_flat, s_unflat = _flatten(rest, ".value")
    owners = _owners(model, params, ".value")
    # The evaluation structure: the same model after .eval() (Dropout off, BatchNorm on running averages).
    twin = nnx.merge(graphdef, params, rest)
    twin.eval()
    graphdef_eval = nnx.split(twin, nnx.Param, ...)[0]

    def apply(p, s, x, key, train):
        m = nnx.merge(graphdef if train else graphdef_eval, p_unflat(p), s_unflat(s))
        out = m(x)
        new_rest = nnx.split(m, nnx.Param, ...)[2]
        return out, _flatten(new_rest, ".value")[0]

    def rebuild(p, s):
        return nnx.merge(graphdef, p_unflat(p), s_unflat(s))

    return Adapted("nnx", p_flat, s_flat, apply, rebuild, ("nnx", graphdef, graphdef_eval), owners)


# ---------------------------------------------------------------- Flax Linen


def _linen(module, variables) -> Adapted:
    if not isinstance(variables, dict) and not hasattr(variables, "items"):
        raise ConfigTypeError(f"a Linen model_fn must return (module, variables) with variables a dict "
                              f"({{'params': ...}}); got {type(variables).__name__}.")
    variables = dict(variables)
    if "params" not in variables:
        raise ConfigTypeError(f"a Linen model's variables must hold 'params'; they hold {sorted(variables)}.")
    cols = sorted(k for k in variables if k != "params")
    p_flat, p_unflat = _flatten(variables["params"])
    s_flat, s_unflat = _flatten({k: variables[k] for k in cols})
    train_kw = next((k for k in ("train", "training") if _takes(module.__call__, k)), None)
    deterministic_kw = "deterministic" if train_kw is None and _takes(module.__call__, "deterministic") else None

    def apply(p, s, x, key, train):
        kwargs = {}
        if train_kw:
            kwargs[train_kw] = train
        elif deterministic_kw:
            kwargs[deterministic_kw] = not train
        out = module.apply({"params": p_unflat(p), **s_unflat(s)}, x, rngs={"dropout": key},
                           mutable=cols if cols else False, **kwargs)
        if not cols:
            return out, s
        out, new = out
        return out, (_flatten({k: new[k] for k in cols})[0] if train else s)

    def rebuild(p, s):
        return module, {"params": p_unflat(p), **s_unflat(s)}

    owners = {name: name.rsplit(".", 2)[-2] if "." in name else "" for name in p_flat}  # the submodule's name
    return Adapted("linen", p_flat, s_flat, apply, rebuild, ("linen", module, train_kw, tuple(cols)), owners)


# ---------------------------------------------------------------- Equinox


def _equinox(model, state=None) -> Adapted:
    import equinox as eqx

    params, static = eqx.partition(model, eqx.is_inexact_array)
    p_flat, p_unflat = _flatten(params)
    s_flat, s_unflat = _flatten(state) if state is not None else ({}, None)
    owners = _owners(model, params)
    keyed = _takes(model.__call__, "key")
    stateful = state is not None

    def apply(p, s, x, key, train):
        m = eqx.combine(p_unflat(p), static)
        if not train:
            m = eqx.nn.inference_mode(m)
        keys = jax.random.split(key, x.shape[0]) if keyed else None
        if stateful:
            st = s_unflat(s)
            if keyed:
                f = jax.vmap(lambda xi, ki, st: m(xi, st, key=ki), axis_name="batch", in_axes=(0, 0, None),
                             out_axes=(0, None))
                out, new = f(x, keys, st)
            else:
                out, new = jax.vmap(m, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(x, st)
            return out, (_flatten(new)[0] if train else s)
        if keyed:
            return jax.vmap(lambda xi, ki: m(xi, key=ki), axis_name="batch")(x, keys), s
        return jax.vmap(m, axis_name="batch")(x), s

    def rebuild(p, s):
        m = eqx.combine(p_unflat(p), static)
        return (m, s_unflat(s)) if stateful else m

    return Adapted("equinox", p_flat, s_flat, apply, rebuild, ("equinox", static, keyed, stateful), owners)


def adapt(built) -> Adapted:
    """:class:`Adapted` for what ``model_fn(key)`` returned (module docstring)."""
    kind = kind_of(built)
    if kind == "nnx":
        return _nnx(built)
    if kind == "linen":
        if not isinstance(built, tuple):
            raise ConfigTypeError("a Linen model_fn must return (module, variables), e.g. "
                                  "(module, module.init(key, x)); got the module alone.")
        return _linen(*built)
    return _equinox(*built) if isinstance(built, tuple) else _equinox(built)


def hashable(static) -> object | None:
    """``static`` if it can key a cache, else None (a model with unhashable structure compiles per call)."""
    try:
        hash(static)
    except TypeError:
        return None
    return static


def is_key(x) -> bool:
    """True for a typed PRNG key array (NNX's RNG streams): folded per member, never trained or stacked as floats."""
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
