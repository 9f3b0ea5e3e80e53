"""Audit a model's decay groups: every parameter, the rule that decided, and where two policies disagree.

``audit(model, "timm", compare="hf")`` answers "which parameters does my
weight decay touch, and would another recipe decay different ones?" without
training anything. :func:`audit_tables` renders the result for the command
line (``l2reg torch audit MODULE:FACTORY --policy P --compare timm,hf``).
"""

from __future__ import annotations

from torch import nn

from ..decay_audit import AuditResult, audit_tables, compare_list  # noqa: F401  (l2reg.torch.audit_tables)
from .groups import DEFAULT_POLICY, classify, resolve_policy


def audit(model: nn.Module, policy=DEFAULT_POLICY, compare=None) -> AuditResult:
    """Classify every parameter of ``model`` under ``policy`` (and each policy in ``compare``).

    ``compare``: None, one policy, or a list of them (names or callables).
    A parameter a policy cannot classify (minGPT's rule) is a row with
    ``decay=None`` and its ``error``, not an exception, so that the audit
    shows it.
    """
    label, _ = resolve_policy(policy)
    compared = {}
    for other in compare_list(compare):
        name, _ = resolve_policy(other)
        compared[name] = classify(model, other)
    return AuditResult(policy=label, rows=classify(model, policy), compared=compared)


