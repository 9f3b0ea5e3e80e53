"""Which parameters decay: ``torch.optim`` parameter groups under a named policy.

l2reg's cost is C = C0 + (λ/2n)·Σ_w w², the sum over the *weights* only
(Nielsen ch. 3): biases are never decayed. PyTorch applies a group's
``weight_decay`` to every parameter in it, so the split into groups is where
that choice is made. A policy decides, for each parameter, decay or not, and
records the rule that decided:

* ``"l2reg"`` (the default): decay the weights, never biases or the scales
  and shifts of normalization layers. In order: names that
  ``model.no_weight_decay()`` lists (timm's convention, fnmatch patterns) are
  not decayed; parameters of a normalization layer (BatchNorm, LayerNorm,
  GroupNorm, InstanceNorm, RMSNorm, or a module class named like one:
  LlamaRMSNorm, LayerNorm2d, GroupNorm32) are not; names ending in ``bias``
  are not; other 0-D and 1-D parameters (per-unit scales and shifts) are
  not; every other parameter (a weight with ndim ≥ 2: Linear, Conv,
  Embedding, attention projections) is.
  Why: it is the book's cost, "weights only"; a bias or a norm's scale or
  shift does not multiply an input, and decaying a norm's scale fights the
  normalization rather than limiting the weights (the silent change of
  Fast-LLM#542). Embeddings are weights (a lookup is a product with a one-hot
  input) and decay, as in timm, Hugging Face and nanoGPT.
* ``"timm"``: ``timm.optim.param_groups_weight_decay`` as
  ``create_optimizer_v2`` calls it: no decay when ndim ≤ 1, when the name ends
  in ``.bias``, or when it matches (``fnmatch``) a name in
  ``model.no_weight_decay()``; decay otherwise.
* ``"hf"``: ``transformers.Trainer.get_decay_parameter_names``: no decay
  inside an ``nn.LayerNorm`` or when the lower-cased name matches ``bias``,
  ``layernorm``, ``rmsnorm``, ``(?:^|\\.)norm(?:$|\\.)`` or
  ``_norm(?:$|\\.)``; decay otherwise.
* ``"mingpt"``: minGPT's ``configure_optimizers``: names ending in ``bias``
  are not decayed, ``weight`` of an ``nn.Linear`` is, ``weight`` of an
  ``nn.LayerNorm`` or ``nn.Embedding`` is not; any other parameter is an error,
  as minGPT asserts that every parameter was classified.
* ``"nanogpt"``: nanoGPT's ``configure_optimizers``: decay every parameter
  with ndim ≥ 2 (embeddings included), no decay otherwise.
* a callable ``policy(name, param, module) -> bool`` (``module`` owns the
  parameter): True decays.

Every trainable parameter is classified exactly once. A shared (tied)
parameter appears once, under the first name ``model.named_parameters()``
gives, and that name's rule decides, as in timm, Hugging Face and nanoGPT,
which all iterate ``named_parameters()``; its other names are ``aliases``,
and the rule notes when one of them alone would have been decided otherwise
(minGPT itself fails on such a parameter). Frozen parameters
(``requires_grad=False``) go in no group, as timm, Hugging Face and nanoGPT do.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable

import numpy as np
from torch import nn

from ..base import validation as V
from ..models.audit import Decision  # noqa: F401  (l2reg.torch.Decision)
from ..errors import ConfigError, ConfigTypeError
from ..options import POLICIES  # noqa: E402  (the names live with the options, torch-free)

DEFAULT_POLICY = "l2reg"

# transformers.Trainer.get_decay_parameter_names (v5.24.0), searched in the lower-cased name.
HF_PATTERNS = (r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")

_NORM_TYPES = tuple(t for t in (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, getattr(nn, "RMSNorm", None),
) if t is not None)

Path = list  # [(module path, module)], from the root to the module that owns the parameter


# ---------------------------------------------------------------- the rules


def _listed(name: str, no_wd: tuple) -> str | None:
    return next((p for p in no_wd if fnmatch.fnmatch(name, p)), None)


def _is_norm(module: nn.Module) -> bool:
    # Projects write their own: LlamaRMSNorm, LayerNorm2d, FrozenBatchNorm2d, GroupNorm32 (not Normalize).
    return isinstance(module, _NORM_TYPES) or re.search(r"Norm\d*d?$", type(module).__name__) is not None


def _l2reg(name, param, path: Path, no_wd) -> tuple[bool, str]:
    hit = _listed(name, no_wd)
    if hit is not None:
        return False, f"model.no_weight_decay() lists {hit!r}"
    owner = path[-1][1]
    if _is_norm(owner):
        return False, f"scale/shift of norm layer {type(owner).__name__}"
    if name.rpartition(".")[2].endswith("bias"):
        return False, "bias"
    if param.ndim <= 1:
        return False, f"ndim = {param.ndim}: a per-unit scale or shift"
    return True, f"weight of {type(owner).__name__} (ndim = {param.ndim})"


def _timm(name, param, path: Path, no_wd) -> tuple[bool, str]:
    if param.ndim <= 1:
        return False, "ndim <= 1"
    if name.endswith(".bias"):
        return False, "name ends with '.bias'"
    hit = _listed(name, no_wd)
    if hit is not None:
        return False, f"model.no_weight_decay() lists {hit!r}"
    return True, "ndim >= 2"


def _hf(name, param, path: Path, no_wd) -> tuple[bool, str]:
    for prefix, module in path[1:]:
        if isinstance(module, nn.LayerNorm):
            return False, f"inside nn.LayerNorm {prefix!r}"
    hit = next((p for p in HF_PATTERNS if re.search(p, name.lower())), None)
    if hit is not None:
        return False, f"name matches {hit!r}"
    return True, "not in a LayerNorm; no bias/norm in the name"


def _mingpt(name, param, path: Path, no_wd) -> tuple[bool, str]:
    if name.endswith("bias"):
        return False, "name ends with 'bias'"
    if name.endswith("weight"):
        # minGPT looks at every module above the parameter with the name relative to it.
        white = [p for p, m in path if isinstance(m, nn.Linear)]
        black = [(p, m) for p, m in path if isinstance(m, (nn.LayerNorm, nn.Embedding))]
        if white and black:
            raise ConfigError(f"policy 'mingpt' puts {name!r} in both groups (nn.Linear {white[0]!r} and "
                              f"{type(black[0][1]).__name__} {black[0][0]!r}), which minGPT asserts against.")
        if white:
            return True, "weight of nn.Linear"
        if black:
            return False, f"weight of nn.{type(black[0][1]).__name__}"
    owner = type(path[-1][1]).__name__
    raise ConfigError(f"policy 'mingpt' cannot classify {name!r} ({owner}, shape {tuple(param.shape)}): minGPT decays "
                      f"only nn.Linear weights and asserts that every parameter is a bias or a Linear, LayerNorm or "
                      f"Embedding weight; use policy 'l2reg' or a callable.")


def _nanogpt(name, param, path: Path, no_wd) -> tuple[bool, str]:
    return (True, "ndim >= 2") if param.ndim >= 2 else (False, "ndim < 2")


_RULES = {"l2reg": _l2reg, "timm": _timm, "hf": _hf, "mingpt": _mingpt, "nanogpt": _nanogpt}


def _from_callable(fn: Callable) -> Callable:
    label = getattr(fn, "__name__", type(fn).__name__)

    def rule(name, param, path: Path, no_wd) -> tuple[bool, str]:
        out = fn(name, param, path[-1][1])
        if not isinstance(out, (bool, np.bool_)):
            raise ConfigTypeError(f"the policy callable must return True or False for each parameter; "
                                  f"got {out!r} for {name!r}.")
        return bool(out), f"{label}() returned {bool(out)}"

    return rule


def resolve_policy(policy) -> tuple[str, Callable]:
    """``(label, rule)`` for a policy name or callable; an unknown one is a one-line error."""
    if callable(policy):
        return getattr(policy, "__name__", "callable"), _from_callable(policy)
    if isinstance(policy, str) and policy in _RULES:
        return policy, _RULES[policy]
    raise ConfigError(f"policy must be one of {', '.join(POLICIES)} or a callable (name, param, module) -> bool; "
                      f"got {policy!r}.")


# ---------------------------------------------------------------- classifying a model


def _path(model: nn.Module, name: str) -> Path:
    out = [("", model)]
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        out.append((".".join(parts[: i + 1]), out[-1][1]._modules[part]))
    return out


def _no_weight_decay(model: nn.Module) -> tuple:
    fn = getattr(model, "no_weight_decay", None)
    return tuple(sorted(fn())) if callable(fn) else ()


def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ConfigTypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    return model


def _decide(rule, name, param, model, no_wd) -> tuple[bool | None, str, str]:
    """``(decay, rule text, error)`` of one name."""
    try:
        decay, text = rule(name, param, _path(model, name), no_wd)
    except ConfigError as e:
        return None, "unclassified", str(e)
    return decay, text, ""


def classify_params(model: nn.Module, policy=DEFAULT_POLICY) -> list[tuple[Decision, nn.Parameter]]:
    """``(Decision, parameter)`` for every distinct parameter, in ``named_parameters()`` order."""
    _check_model(model)
    _, rule = resolve_policy(policy)
    no_wd = _no_weight_decay(model)
    names: dict[int, list[str]] = {}
    params: dict[int, nn.Parameter] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
        params[id(p)] = p
    out = []
    for key, (first, *aliases) in names.items():
        p = params[key]
        base = dict(name=first, shape=tuple(p.shape), count=p.numel(), aliases=tuple(aliases))
        if not p.requires_grad:
            out.append((Decision(decay=None, rule="frozen (requires_grad=False): in no group", **base), p))
            continue
        decay, text, error = _decide(rule, first, p, model, no_wd)
        for alias in aliases:
            other, other_text, _ = _decide(rule, alias, p, model, no_wd)
            if error == "" and other is not None and other != decay:
                text += (f"; shared with {alias!r}, which alone would be "
                         f"{'decayed' if other else 'not decayed'} ({other_text})")
        out.append((Decision(decay=decay, rule=text, error=error, **base), p))
    return out


def classify(model: nn.Module, policy=DEFAULT_POLICY) -> list[Decision]:
    """Every distinct parameter of ``model``: its :class:`Decision` under ``policy``, in ``named_parameters()`` order."""
    return [d for d, _ in classify_params(model, policy)]


def decay_groups(model: nn.Module, weight_decay: float, policy=DEFAULT_POLICY) -> list[dict]:
    """``torch.optim`` parameter groups of ``model``: the parameters ``policy`` decays with ``weight_decay``, the rest with 0.

    ``weight_decay`` is the optimizer's own setting: coupled for ``SGD`` and
    ``Adam`` (λ/n in l2reg's terms, n the training-set size), decoupled for
    ``AdamW``. Each group carries ``param_names`` (PyTorch's named groups).
    Empty groups are left out; frozen parameters are in none. The policy
    (module docstring) decides; a parameter it cannot classify is a
    :class:`~l2reg.errors.ConfigError`.
    """
    weight_decay = V.number("weight_decay", weight_decay, low=0)
    decided = _classified(model, policy)
    groups = []
    for decay, wd in ((True, weight_decay), (False, 0.0)):
        chosen = [(d.name, p) for d, p in decided if d.decay is decay]
        if chosen:
            groups.append({"params": [p for _, p in chosen], "param_names": [n for n, _ in chosen],
                           "weight_decay": wd})
    if not groups:
        raise ConfigError("model has no trainable parameters (all have requires_grad=False).")
    return groups


def decayed_names(model: nn.Module, policy=DEFAULT_POLICY) -> list[str]:
    """The (first) names of the parameters of ``model`` that ``policy`` decays; errors as :func:`decay_groups`."""
    return [d.name for d, _ in _classified(model, policy) if d.decay]


def _classified(model, policy) -> list[tuple[Decision, nn.Parameter]]:
    """:func:`classify_params`, with a parameter the policy cannot classify as a one-line error."""
    decided = classify_params(model, policy)
    errors = [d.error for d, _ in decided if d.error]
    if errors:
        more = f" ({len(errors) - 1} more parameters alike)" if len(errors) > 1 else ""
        raise ConfigError(errors[0].rstrip(".") + more + ".")
    return decided
