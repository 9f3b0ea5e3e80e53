"""DecayMonitor: what weight decay does inside an ordinary PyTorch training loop.

Attached to a ``torch.optim`` optimizer (``register_step_pre_hook`` and
``register_step_post_hook``), it splits the update u that each
``optimizer.step()`` applies to each parameter into two terms,

    u = d + g,    d the decay term, g the data term,

* ``SGD`` without momentum (coupled L2, ``weight_decay`` = λ/n with n the
  training-set size): d = −lr·wd·w and g = −lr·∂C0/∂w, closed forms
  (``maximize`` flips g);
* decoupled decay (``AdamW``; ``Adam``, ``NAdam``, ``RAdam`` with
  ``decoupled_weight_decay=True``): d = −lr·wd·w exactly, outside the
  moments, and g = u − d, Adam's step on the data gradient;
* every other case (``SGD`` with momentum or Nesterov, ``Adam`` with coupled
  L2, other optimizers with a ``weight_decay``): g is the update the same
  optimizer class takes from a copy of the same state (momentum buffer, Adam
  moments) with ``weight_decay`` = 0, a real ``torch.optim`` step on clones;
  d = u − g. So under momentum the decay that earlier steps put into the
  velocity counts as data term and d = −lr·wd·w (Nesterov: −lr·(1 + μ)·wd·w);
  under Adam, d is the change the L2 term makes through the moments.

A group with ``weight_decay`` = 0 has d = 0 and g = u. At each recorded
step it keeps, per parameter tensor, the number of weights whose data term
points away from zero (g·w > 0), whose |w| grew on net, Σw² (so ‖w‖), Σ|d|,
Σ|g|, and weights with g = 0; per group the decay timescale τ
(:func:`l2reg.fronts.conventions.decay_timescale`: τ_iter = 1/(lr·wd) steps for
SGD and AdamW, (1 − μ)/(lr·wd) under momentum, none for coupled Adam).
:meth:`DecayMonitor.summary` is a plain JSON-able dict;
:meth:`~DecayMonitor.write_json` and :meth:`~DecayMonitor.write_html` save
it. Nothing is changed in the training itself: the step taken is the
optimizer's own.

Overhead, measured by ``bench/bench_torch.py`` (2026-12-01; small CNN,
5,000 MNIST images, batch 64, one epoch with its evaluation, 2-core CPU at
load 6.6, medians of 3): recording every step ×1.09 for plain SGD (closed
forms) and ×1.04 for SGD with momentum (shadow step), every 10th step
×0.96, i.e. within the ±10% noise of that machine. Per recorded step it
costs one clone of the parameters, a few reductions per tensor and one
device sync (plus the shadow step where needed); ``record_every=k`` costs
nothing on the other steps. Details in ``docs/torch.md``.

``optimizer.step(closure)`` (as Lightning calls it: its closure runs the
backward pass, then the gradient clipping) is recorded too: the snapshot is
taken once the closure has run, so the recorded step is the clipped one.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ..base import validation as V
from ..errors import ConfigError, ConfigTypeError
from ..models.monitor_summary import MonitorFiles, STATS, html_report, summarize  # noqa: F401  (STATS: per tensor at each record)
from ._trainers import decay_rule_line, log

#: The fix the monitor's note names: groups that decay the weights only.
DECAY_GROUPS_FIX = ("l2reg.torch.decay_groups(model, weight_decay) gives the optimizer groups that decay the weights "
                    "only.")


def _rule(optimizer, group: dict) -> str:
    """How d and g are obtained for this group: ``none``, ``closed``, ``decoupled`` or ``shadow``."""
    if group["weight_decay"] == 0:
        return "none"
    if group.get("decoupled_weight_decay", False) or isinstance(optimizer, torch.optim.AdamW):
        return "decoupled"
    if type(optimizer) is torch.optim.SGD and group.get("momentum", 0) == 0:
        return "closed"
    return "shadow"


def _timescale_kind(optimizer, group: dict) -> str | None:
    rule = _rule(optimizer, group)
    if rule == "decoupled":
        return "adamw"
    if isinstance(optimizer, torch.optim.SGD):
        if group.get("momentum", 0) == 0:
            return "sgd"
        return "nesterov" if group.get("nesterov") else "momentum"
    if type(optimizer) is torch.optim.Adam:
        return "adam"
    return None


class DecayMonitor(MonitorFiles):
    """Record the decay and data terms of the steps ``optimizer`` takes (module docstring).

    ``model`` names the parameters (else the groups' ``param_names``, else
    ``group{i}.param{j}``); ``record_every`` k records steps 0, k, 2k, …;
    ``steps_per_epoch`` and ``epochs`` give τ_epoch and its warnings.
    ``keep_terms``: also keep the last recorded step's per-weight tensors,
    ``terms[name] = {"w", "u", "d", "g"}`` (w before the step, on the CPU).
    Given ``model``, the monitor checks the optimizer's groups: where a group
    with weight_decay > 0 holds biases or normalization scales (as
    ``AdamW(model.parameters(), weight_decay=0.01)`` does), ``decay_note`` is
    one line naming them and the fix, :func:`l2reg.torch.decay_groups`, logged
    as a warning (``warn``; the Trainer and Lightning callbacks log their own)
    and shown in the summary and the report.
    Use as a context manager or call :meth:`remove` to detach the hooks.
    """

    def __init__(self, optimizer, *, model=None, record_every: int = 1, steps_per_epoch: int | None = None,
                 epochs: int | None = None, keep_terms: bool = False, warn: bool = True):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ConfigTypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}.")
        for i, group in enumerate(optimizer.param_groups):
            if "weight_decay" not in group:
                raise ConfigError(f"DecayMonitor needs an optimizer with a weight_decay setting; "
                                  f"{type(optimizer).__name__} group {i} has none.")
        self.optimizer = optimizer
        self.record_every = V.integer("record_every", record_every, low=1)
        self.steps_per_epoch = None if steps_per_epoch is None else V.integer("steps_per_epoch", steps_per_epoch, low=1)
        self.epochs = None if epochs is None else V.integer("epochs", epochs, low=1)
        self._model = model
        self.names = self._names(optimizer, model)
        self.decay_note = None if model is None else decay_rule_line(
            model, optimizer, who=f"This {type(optimizer).__name__}", instead=DECAY_GROUPS_FIX)
        if self.decay_note and warn:
            log.warning("%s", self.decay_note)
        self.steps = 0
        self.recorded_steps: list[int] = []
        self.records: list[np.ndarray] = []  # each (n_params, len(STATS)), NaN for a parameter without a gradient
        self.group_hyper: list[list[tuple[float, float]]] = []  # per recorded step, (lr, wd) per group
        self._w0: dict[int, torch.Tensor] = {}
        self._g: dict[int, torch.Tensor] = {}
        self._recording = False
        self.keep_terms = bool(keep_terms)
        self.terms: dict[str, dict[str, torch.Tensor]] = {}
        self._handles = [optimizer.register_step_pre_hook(self._before),
                         optimizer.register_step_post_hook(self._after)]

    @staticmethod
    def _names(optimizer, model) -> list[tuple[int, str]]:
        """``(group index, name)`` of every parameter, in the optimizer's order."""
        by_id = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
        out = []
        for gi, group in enumerate(optimizer.param_groups):
            names = group.get("param_names")
            for j, p in enumerate(group["params"]):
                name = by_id.get(id(p)) or (names[j] if names else f"group{gi}.param{j}")
                out.append((gi, name))
        return out

    def remove(self) -> None:
        """Detach the hooks; the records stay."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    # -- the hooks

    def _params(self):
        for gi, group in enumerate(self.optimizer.param_groups):
            for p in group["params"]:
                yield gi, group, p

    def _before(self, optimizer, args, kwargs):
        self._recording = self.steps % self.record_every == 0
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)  # args = (optimizer, closure?)
        if not self._recording:
            return None
        if closure is None:
            self._snapshot()
            return None
        # step(closure) (Lightning, LBFGS style): the gradients, clipped or not, exist only once step() has run the
        # closure, so the snapshot is taken right after it.

        def closure_then_snapshot():
            loss = closure()
            self._snapshot()
            return loss

        if "closure" in kwargs:
            return args, {**kwargs, "closure": closure_then_snapshot}
        return (args[0], closure_then_snapshot, *args[2:]), kwargs

    @torch.no_grad()
    def _snapshot(self) -> None:
        self._w0 = {id(p): p.detach().clone() for _, _, p in self._params() if p.grad is not None}
        self._g = self._shadow_step()

    def _shadow_step(self) -> dict[int, torch.Tensor]:
        """g for the ``shadow`` groups: the same optimizer class, weight_decay 0, a copy of the state."""
        opt = self.optimizer
        groups, pairs = [], []
        for group in opt.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps or _rule(opt, group) != "shadow":
                continue
            copies = []
            for p in ps:
                c = p.detach().clone().requires_grad_(p.requires_grad)
                c.grad = p.grad.detach().clone()
                copies.append(c)
            hyper = {k: v for k, v in group.items() if k not in ("params", "param_names")}
            groups.append({**hyper, "params": copies, "weight_decay": 0.0})
            pairs += list(zip(ps, copies))
        if not groups:
            return {}
        shadow = type(opt)(groups)
        for p, c in pairs:
            if p in opt.state:
                shadow.state[c] = {k: v.clone() if torch.is_tensor(v) else copy.deepcopy(v)
                                   for k, v in opt.state[p].items()}
        shadow.step()
        return {id(p): c.detach() - self._w0[id(p)] for p, c in pairs}

    @torch.no_grad()
    def _after(self, optimizer, args, kwargs) -> None:
        if self._recording:
            if len(self.names) != sum(len(g["params"]) for g in optimizer.param_groups):  # add_param_group()
                self.names = self._names(optimizer, self._model)
            rows, hyper, names = [], [], iter(self.names)
            for gi, group in enumerate(optimizer.param_groups):
                hyper.append((float(group["lr"]), float(group["weight_decay"])))
                for p in group["params"]:
                    rows.append(self._stats(group, p, next(names)[1]))
            if any(r is not None for r in rows):
                like = next(r for r in rows if r is not None)
                table = torch.stack([r if r is not None else torch.full_like(like, math.nan) for r in rows])
                self.records.append(table.cpu().numpy())  # one device sync per recorded step
                self.group_hyper.append(hyper)
                self.recorded_steps.append(self.steps)
            self._w0, self._g = {}, {}
        self.steps += 1

    def _stats(self, group: dict, p, name: str) -> torch.Tensor | None:
        w0 = self._w0.get(id(p))
        if w0 is None:
            return None
        w = p.detach()
        u = w - w0
        lr, wd = float(group["lr"]), float(group["weight_decay"])
        rule = _rule(self.optimizer, group)
        if rule == "none":
            d, g = torch.zeros_like(w0), u
        elif rule == "closed":
            d = -lr * wd * w0
            g = (lr if group.get("maximize") else -lr) * p.grad.detach()
        elif rule == "decoupled":
            d = -lr * wd * w0
            g = u - d
        else:
            g = self._g[id(p)]
            d = u - g
        if self.keep_terms:
            self.terms[name] = {k: v.detach().cpu().clone() for k, v in (("w", w0), ("u", u), ("d", d), ("g", g))}
        grow = w.abs() > w0.abs()
        w2 = w0 * w0
        parts = [(g * w0 > 0).sum(), grow.sum(), torch.where(grow, w2, 0).sum(), w2.sum(), d.abs().sum(),
                 g.abs().sum(), (g == 0).sum()]
        return torch.stack([x.double() for x in parts] + [torch.tensor(float(w0.numel()), dtype=torch.float64,
                                                                       device=w0.device)])

    # -- results

    @property
    def optimizer_name(self) -> str:
        return type(self.optimizer).__name__

    def group_info(self) -> list[dict]:
        """Per group: how d and g are split, the timescale's optimizer kind, μ and dampening (for the summary)."""
        return [{"split": _rule(self.optimizer, g), "kind": _timescale_kind(self.optimizer, g),
                 "momentum": g.get("momentum"), "dampening": g.get("dampening", 0)}
                for g in self.optimizer.param_groups]

    def summary(self, *, last: int | None = None) -> dict:
        """Plain-dict summary over the recorded steps (the last ``last`` of them if given).

        ``groups``: per optimizer group its lr, weight_decay, how d and g were
        split, the pooled fractions and the timescale; ``layers``: the same
        per parameter tensor (named, with its module as ``layer``), plus
        ‖w‖ at the first and last recorded step; ``history``: per recorded
        step and tensor ``frac_away``, ``mean_abs_decay``, ``mean_abs_data``,
        ``weight_norm``; ``answer``: sentences with the numbers.
        """
        return summarize(self, last=last)
