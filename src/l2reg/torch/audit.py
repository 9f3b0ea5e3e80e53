"""Audit a model's decay groups: every parameter, the rule that decided, and where two policies disagree.

``audit(model, "timm", compare="hf")`` answers "which parameters does my
weight decay touch, and would another recipe decay different ones?" without
training anything. :func:`audit_tables` renders the result for the command
line (``l2reg torch audit MODULE:FACTORY --policy P --compare timm,hf``).
"""

from __future__ import annotations

from torch import nn

from ..models.audit import AuditResult, audit_tables, compare_list  # noqa: F401  (l2reg.torch.audit_tables)
from .groups import DEFAULT_POLICY, classify, resolve_policy
from .strategy import rule_strategy


def audit(model: nn.Module, policy=DEFAULT_POLICY, compare=None) -> AuditResult:
    """Classify every parameter of ``model`` under ``policy`` (and each policy in ``compare``), list its buffers
    and say how a sweep would step it.

    ``compare``: None, one policy, or a list of them (names or callables).
    A parameter a policy cannot classify (minGPT's rule) is a row with
    ``decay=None`` and its ``error``, not an exception, so that the audit
    shows it. Buffers (BatchNorm's running statistics) are never decayed:
    no optimizer steps them; an ensemble keeps one per member. The strategy
    is by rule (:func:`l2reg.torch.strategy.rule_strategy`); a sweep measures.
    """
    label, _ = resolve_policy(policy)
    compared = {}
    for other in compare_list(compare):
        name, _ = resolve_policy(other)
        compared[name] = classify(model, other)
    return AuditResult(policy=label, rows=classify(model, policy), compared=compared, buffers=_buffers(model),
                       strategy=rule_strategy(model))


def _buffers(model: nn.Module) -> list[dict]:
    """Every buffer: what it is and why it is not decayed (it is no parameter: no optimizer touches it)."""
    owners = {f"{name}.{b}" if name else b: module for name, module in model.named_modules()
              for b in module._buffers if module._buffers[b] is not None}
    out = []
    for name, buf in model.named_buffers():
        module = owners.get(name)
        kind = type(module).__name__ if module is not None else "module"
        what = (f"running statistic of {kind}" if isinstance(module, nn.modules.batchnorm._NormBase)
                else f"buffer of {kind}")
        out.append({"name": name, "shape": list(buf.shape), "count": buf.numel(), "dtype": str(buf.dtype),
                    "rule": f"not decayed: {what} (one per member)"})
    return out
