"""Audit a JAX model's decay: every parameter leaf, the rule that decided, and where two policies disagree."""

from __future__ import annotations

from collections.abc import Callable

from ..models.audit import AuditResult, compare_list
from .ensemble import build
from .policy import DEFAULT_POLICY, classify, resolve_policy


def audit(model_fn: Callable, policy=DEFAULT_POLICY, compare=None, *, seed: int = 0) -> AuditResult:
    """Classify every parameter leaf of ``model_fn(jax.random.key(seed))`` under ``policy`` (and ``compare``).

    ``model_fn``: the factory (:func:`l2reg.jax.train_ensemble`); ``seed``: the key it is called with;
    ``policy``: a name of :data:`l2reg.jax.POLICIES` or a callable ``(path, leaf) -> bool``;
    ``compare``: None, one policy, or a list of them. Returns the same
    :class:`~l2reg.models.audit.AuditResult` as :func:`l2reg.torch.audit`
    (rows, totals, differences, ``to_json``; :func:`~l2reg.models.audit.audit_tables` renders it).
    """
    adapted = build(model_fn, seed)
    label, _ = resolve_policy(policy)
    compared = {resolve_policy(o)[0]: classify(adapted.params, adapted.owners, o) for o in compare_list(compare)}
    return AuditResult(policy=label, rows=classify(adapted.params, adapted.owners, policy), compared=compared)
