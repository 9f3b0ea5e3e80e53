"""What the Hugging Face and Lightning callbacks share: the optimizer under the wrappers, the scalars, the rule check.

Imports neither transformers nor lightning.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from .groups import classify_params
from ..models.monitor_summary import STATS, _timescale

log = logging.getLogger("l2reg.torch")

_I = {name: i for i, name in enumerate(STATS)}


def torch_optimizer(optimizer):
    """The ``torch.optim`` optimizer under wrappers: accelerate's ``AcceleratedOptimizer`` (``.optimizer``),
    Lightning's ``LightningOptimizer`` (``._optimizer``)."""
    for _ in range(8):  # wrappers of wrappers, never a cycle
        inner = getattr(optimizer, "optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer):
            inner = getattr(optimizer, "_optimizer", None)
        if not isinstance(inner, torch.optim.Optimizer):
            break
        optimizer = inner
    return optimizer


def scalars(mon, since: int) -> dict[str, float]:
    """The decay scalars of the monitor ``mon`` over its records ``since``, ``since + 1``, …, pooled over the
    tensors of the decayed groups.

    ``decay/d_over_g`` Σ|d| / Σ|g|; ``decay/frac_away`` the share of decayed
    weights whose data term pointed away from zero (g·w > 0);
    ``decay/w_norm`` ‖w‖ of the decayed weights at the last of these records;
    ``decay/tau_iter`` and ``decay/tau_epoch`` the timescale of the first
    decayed group that has one, at its last recorded lr. Empty when there is
    no new record or no group decays.
    """
    if len(mon.records) <= since:
        return {}
    hyper = mon.group_hyper[-1]
    decayed = np.array([hyper[gi][1] > 0 for gi, _ in mon.names])
    if not decayed.any():
        return {}
    P = len(mon.names)
    A = np.stack([np.vstack([r, np.full((P - len(r), len(STATS)), np.nan)]) for r in mon.records[since:]])
    total = np.nansum(A[:, decayed], axis=(0, 1))  # (len(STATS),)
    out = {}
    if total[_I["abs_g"]] > 0:
        out["decay/d_over_g"] = float(total[_I["abs_d"]] / total[_I["abs_g"]])
    if total[_I["numel"]] > 0:
        out["decay/frac_away"] = float(total[_I["away"]] / total[_I["numel"]])
    out["decay/w_norm"] = math.sqrt(float(np.nansum(A[-1, decayed, _I["sq"]])))
    for gi, info in enumerate(mon.group_info()[:len(hyper)]):
        lr, wd = hyper[gi]
        ts = _timescale(mon, gi, info, lr, wd)[0] if wd > 0 else None
        if ts is not None and ts.get("tau_iter") is not None:
            out["decay/tau_iter"] = float(ts["tau_iter"])
            if ts.get("tau_epoch") is not None:
                out["decay/tau_epoch"] = float(ts["tau_epoch"])
            break
    return out


def decay_rule_line(model, optimizer, *, who: str, instead: str) -> str | None:
    """One line when ``optimizer`` decays parameters of ``model`` that l2reg's policy keeps undecayed (biases,
    norm layers' scales and shifts, other 1-D parameters), naming the first three; None when it does not.

    ``who`` opens the line (which optimizer); ``instead`` closes it (how to decay by l2reg's policy).
    """
    decided = {id(p): d for d, p in classify_params(model, "l2reg")}
    extra = [decided[id(p)] for group in optimizer.param_groups if group.get("weight_decay", 0) > 0
             for p in group["params"] if id(p) in decided and decided[id(p)].decay is False]
    if not extra:
        return None
    named = "; ".join(f"{d.name} ({d.rule})" for d in extra[:3])
    more = f"; and {len(extra) - 3} more" if len(extra) > 3 else ""
    return (f"{who} decays {len(extra)} parameter tensors ({sum(d.count for d in extra):,} values) that l2reg's "
            f"policy keeps undecayed: {named}{more}. {instead}")


def write_files(monitors, folder) -> list:
    """Each monitor's ``decay_monitor.json`` and ``.html`` into ``folder`` (the i-th, i ≥ 1:
    ``decay_monitor_i.*``)."""
    from pathlib import Path

    folder, paths = Path(folder), []
    for i, mon in enumerate(monitors):
        if i == 0:
            paths += [mon.write_json(folder), mon.write_html(folder)]
        else:
            paths += [mon.write_json(folder / f"decay_monitor_{i}.json"),
                      mon.write_html(folder / f"decay_monitor_{i}.html")]
    return paths
