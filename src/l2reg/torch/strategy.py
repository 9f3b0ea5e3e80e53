"""How the members of an ensemble are stepped: all in one vmap, in chunks, or one at a time, measured.

Every strategy computes the same gradients and buffer updates (each member's
forward and backward on its own slice of the stack, :mod:`l2reg.torch.stack`),
so they differ only in speed and in which models they can run:

* ``vmap``: all K members in one ``vmap(grad(loss))`` call;
* ``chunked``: the members in chunks of c < K, one vmap call per chunk
  (on a CPU the K-fold larger activations of a vmapped convolution fall out
  of cache; a chunk may fit);
* ``loop``: one member at a time, ordinary autograd through a copy of the
  module whose parameters and buffers are member k's slice of the stack: no
  vmap, so any model that trains in an ordinary loop trains so (no batching
  rule for ``aten::gru.input``, ``.item()``, data-dependent control flow, a
  custom ``autograd.Function``).

``auto`` (the default) measures: the first training steps are taken by each
applicable strategy in turn (vmap, loop, then chunks from the largest down
while each is faster than the one before; a warm-up step and up to
:data:`TIMED_STEPS` more each, one only for a candidate :data:`DROP_AFTER`
times slower than the best so far; at most an eighth of the run's steps, at
least 4), and the fastest by its quickest step takes the rest. The probe
steps are real training steps, so probing costs only the slower candidates'
extra time. Time is the process's CPU time with one torch thread (other jobs
on a shared machine do not inflate it), else wall time, synchronized on CUDA.
A strategy that raises is dropped (the buffers it may have moved restored,
the step redone by the next), with the reason. Evaluation (eval mode, no
gradients) is measured on its own on its first pieces of
:data:`EVAL_PROBE_ROWS` rows (vmap, loop and the training's choice), and
goes one member at a time where vmap cannot run the model there (an RNN's
fused kernel under ``no_grad``).
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn

from ..errors import ConfigError
from ..options import STRATEGIES  # noqa: F401  (listed once, with the options)

log = logging.getLogger("l2reg.torch")
#: Timed steps per strategy in the probe (after one warm-up step each); the quickest counts.
TIMED_STEPS = 2
#: Rows per evaluation call while evaluation is measured (its first pieces).
EVAL_PROBE_ROWS = 256
#: A candidate whose step takes this many times the best one's so far is not stepped again.
DROP_AFTER = 2.0
#: Members per vmap call tried by ``chunked``: the 3 largest below K.
CHUNKS = (2, 4, 8, 16, 32, 64)
#: PyTorch's warning when an op has no batching rule and vmap runs it in a Python loop.
SLOW_FALLBACK = "There is a performance drop because we have not yet implemented the batching rule"
#: Plan's fields that are sets (a checkpoint stores them as sorted lists).
_SETS = ("slow_ops", "eval_slow_ops")
_WARNED: set = set()  # fallback reasons already logged in this process


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].rstrip(". ") if text else type(error).__name__


def vmap_obstacle(model: nn.Module) -> str | None:
    """Why vmap cannot train ``model``, when a rule knows it without running it (else None)."""
    for name, module in model.named_modules():
        if (isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
                and module.momentum is None):
            return (f"{type(module).__name__} {name!r} has momentum=None (a cumulative average whose factor "
                    f"1/num_batches_tracked is a Python number, one per member, which vmap cannot batch)")
    return None


def check_norms(model: nn.Module) -> None:
    """SyncBatchNorm is refused by name, with the fix."""
    for name, module in model.named_modules():
        if isinstance(module, nn.SyncBatchNorm):
            raise ConfigError(
                f"SyncBatchNorm {name!r} averages its statistics across processes, which an ensemble in one process "
                f"does not have; build the model with the plain BatchNorm1d/2d/3d (or convert it back, replacing "
                f"each nn.SyncBatchNorm by the BatchNorm it was converted from): each member then keeps its own "
                f"running statistics.")


def rule_strategy(model: nn.Module) -> str:
    """How a sweep would step ``model``'s members, by rule (no data, nothing run): one line for ``l2reg torch audit``."""
    try:
        check_norms(model)
    except ConfigError as e:
        return f"none, the sweep refuses the model: {e}"
    obstacle = vmap_obstacle(model)
    if obstacle is not None:
        return f"loop, one member at a time: {obstacle}"
    rnn = next((f"{type(m).__name__} {n!r}" for n, m in model.named_modules() if isinstance(m, nn.RNNBase)), None)
    tail = (f"; {rnn}: vmap has no rule for its fused kernel in eval mode, so evaluation goes one member at a "
            f"time" if rnn else "")
    return ("auto: its first steps are measured (all members in one vmap, chunks of them, one at a time) and the "
            f"fastest takes the rest{tail}")


@dataclass
class Plan:
    """The probe's state and, once done, the choice: ``chunk`` members per call (K: vmap, 1: loop).

    ``queue``: the candidates still to be measured, each for ``per`` steps (a warm-up, then timed);
    vmap and loop first, then chunks from the largest down while each is faster than the one before.
    """

    K: int
    asked: str
    candidates: list  # (label, chunk) that can run
    queue: list  # (label, chunk) still to measure
    per: int = 1 + TIMED_STEPS
    cuda: bool = False
    seconds: dict = field(default_factory=dict)  # label -> quickest timed seconds per step
    dropped: dict = field(default_factory=dict)  # label -> why it cannot run
    slow_ops: set = field(default_factory=set)  # ops vmap ran through PyTorch's slow fallback
    eval_slow_ops: set = field(default_factory=set)  # the same in evaluation (eval mode: fused kernels)
    eval_watched: bool = False  # the first evaluation piece ran, its fallback warnings read
    eval_note: str | None = None
    eval_queue: list | None = None  # None: evaluation not measured yet
    eval_seconds: dict = field(default_factory=dict)  # label -> quickest seconds per row in evaluation
    vmap_ran: bool = False  # a vmap step has succeeded
    _tries: int = 0
    _eval_tries: int = 0

    @classmethod
    def make(cls, strategy: str, K: int, model: nn.Module, *, steps: int, cuda: bool = False) -> Plan:
        """``steps``: the run's training steps; the probe takes at most an eighth of them (at least 4 steps)."""
        vmaps = [("vmap", K)] if K > 1 else []
        chunks = [(f"chunks of {c}", c) for c in reversed(CHUNKS) if c < K][:3]  # largest first
        loop = [("loop", 1)]
        candidates = {"auto": vmaps + loop + chunks, "vmap": vmaps or loop, "chunked": chunks or vmaps or loop,
                      "loop": loop}[strategy]
        obstacle = vmap_obstacle(model)
        dropped = {}
        if obstacle is not None:
            dropped = {label: obstacle for label, c in candidates if c > 1}
            candidates = loop
        budget = max(steps // 8, 4)
        per = 1 + TIMED_STEPS if budget >= (1 + TIMED_STEPS) * min(len(candidates), 3) else 2
        queue = candidates[:max(2, budget // per)] if len(candidates) > 1 else []
        return cls(K=K, asked=strategy, candidates=candidates, queue=queue, per=per, cuda=cuda, dropped=dropped)

    # -- the probe

    @property
    def probing(self) -> bool:
        return bool(self.queue)

    @property
    def chunk(self) -> int:
        """Members per call for the next step."""
        return self.queue[0][1] if self.queue else self.chosen[1]

    @property
    def chosen(self) -> tuple[str, int]:
        timed = [c for c in self.candidates if c[0] in self.seconds]
        if not timed:
            return self.candidates[0]
        return min(timed, key=lambda c: self.seconds[c[0]])

    def timed(self, chunk: int, seconds: float) -> None:
        """One probe step of the queue's head took ``seconds``."""
        if not self.queue or self.queue[0][1] != chunk:
            return
        label = self.queue[0][0]
        self._tries += 1  # the first step is a warm-up, usually the slowest: the quickest step counts
        best = min((v for k, v in self.seconds.items() if k != label), default=float("inf"))
        self.seconds[label] = min(self.seconds.get(label, float("inf")), seconds)
        if self._tries < self.per and seconds < DROP_AFTER * best:
            return
        self.queue.pop(0)
        self._tries = 0
        bigger = [c for c in self.candidates if c[1] > chunk and c[0] in self.seconds]
        if label.startswith("chunks") and bigger and self.seconds[label] >= min(self.seconds[c[0]] for c in bigger):
            self.queue = [c for c in self.queue if not c[0].startswith("chunks")]  # smaller chunks: slower still

    def failed(self, chunk: int, error: BaseException) -> None:
        """A strategy raised: drop every vmap (chunks run the same vmap); one member at a time is the last resort."""
        if chunk <= 1:
            raise ConfigError(f"the model fails in training on a mini-batch of X: {first_line(error)}") from None
        reason = f"vmap cannot run the model: {first_line(error)}"
        for label, c in self.candidates:
            if c > 1:
                self.dropped[label] = reason
        self.candidates = [("loop", 1)]
        self.queue, self._tries = [], 0

    # -- evaluation: measured on its own (no gradients, more rows: another strategy may be fastest)

    @property
    def eval_probing(self) -> bool:
        if self.eval_queue is None:  # the first evaluation: vmap, loop and the training's choice
            options = [c for c in self.candidates if c[1] in (self.K, 1, self.chosen[1])]
            self.eval_queue = options if len(options) > 1 else []
        return bool(self.eval_queue)

    @property
    def eval_chunk(self) -> int:
        """Members per call in evaluation: the one being measured, else the fastest measured, else training's."""
        if self.eval_note:
            return 1
        if self.eval_probing:
            return self.eval_queue[0][1]
        timed = [c for c in self.candidates if c[0] in self.eval_seconds]
        return min(timed, key=lambda c: self.eval_seconds[c[0]])[1] if timed else self.chosen[1]

    def eval_timed(self, chunk: int, seconds: float, rows: int) -> None:
        """A measured piece of ``rows`` rows took ``seconds``; two pieces each (fewer if twice as slow)."""
        label = self.eval_queue[0][0]
        best = min((v for k, v in self.eval_seconds.items() if k != label), default=float("inf"))
        self.eval_seconds[label] = min(self.eval_seconds.get(label, float("inf")), seconds / rows)
        self._eval_tries += 1
        if self._eval_tries >= 2 or seconds / rows >= DROP_AFTER * best:
            self.eval_queue.pop(0)
            self._eval_tries = 0

    def eval_failed(self, chunk: int, error: BaseException) -> None:
        if chunk <= 1:
            raise ConfigError(f"the model fails in evaluation (eval mode) on rows of X: {first_line(error)}") from None
        self.eval_note = f"evaluation one member at a time: vmap cannot run the model in eval mode: {first_line(error)}"
        self.eval_queue, self._eval_tries = [], 0

    def saw_warnings(self, caught: list, *, evaluation: bool = False) -> None:
        """The ops PyTorch's slow-fallback warnings name (one line lists them, :meth:`line`); any other warning
        caught with them is issued again."""
        for w in caught:
            found = re.search(r"for (aten::\w+(?:\.\w+)?)", str(w.message))
            if found and SLOW_FALLBACK in str(w.message):
                (self.eval_slow_ops if evaluation else self.slow_ops).add(found.group(1))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    # -- the result

    def line(self) -> str:
        """The one line saying which path the run took and why."""
        label, chunk = self.chosen
        what = _what(chunk, self.K, autograd=True)
        why = []
        if self.dropped:
            why.append(next(iter(self.dropped.values())))
        if self.seconds and len(self.seconds) > 1:
            why.append("fastest of the probe, s/step: " + ", ".join(f"{k} {v:.3g}" for k, v in self.seconds.items()))
        elif self.asked != "auto" and not self.dropped:
            why.append(f"strategy {self.asked!r} asked")
        if self.slow_ops and chunk > 1:
            why.append(f"vmap ran {', '.join(sorted(self.slow_ops))} through PyTorch's slow fallback")
        if self.eval_slow_ops and self.eval_chunk > 1:
            why.append(f"evaluation's vmap ran {', '.join(sorted(self.eval_slow_ops))} through PyTorch's slow "
                       f"fallback")
        if self.eval_note and chunk > 1:
            why.append(self.eval_note)
        elif self.eval_chunk != chunk or len(self.eval_seconds) > 1:
            rows = ", ".join(f"{k} {v * 1e3:.3g}" for k, v in self.eval_seconds.items())
            why.append(f"evaluation {_what(self.eval_chunk, self.K)}" + (f" (ms/row: {rows})" if rows else ""))
        return f"Trained {what}" + (f": {'; '.join(why)}." if why else ".")

    def log(self) -> None:
        """The line on stderr: a warning where vmap could not run the model (once per process and reason), else info."""
        fallback = "; ".join(filter(None, [next(iter(self.dropped.values()), None),
                                           self.eval_note if self.chosen[1] > 1 else None]))
        if not fallback:
            log.info("%s", self.line())
        elif fallback not in _WARNED:
            _WARNED.add(fallback)
            log.warning("%s", self.line())

    def state(self) -> dict:
        """Everything the probe knows, as JSON (a checkpoint's: a resumed run goes on with the same choice)."""
        d = asdict(self)
        for name in _SETS:
            d[name] = sorted(d[name])
        return d

    def restore(self, state: dict) -> None:
        for f in fields(self):
            value = state[f.name]
            if f.name in ("candidates", "queue", "eval_queue") and value is not None:
                value = [tuple(c) for c in value]  # (label, chunk) pairs
            setattr(self, f.name, set(value) if f.name in _SETS else value)

    def to_json(self) -> dict:
        label, chunk = self.chosen
        name = "loop" if chunk <= 1 else ("vmap" if chunk >= self.K else "chunked")
        return {"asked": self.asked, "chosen": name, "members_per_call": chunk, "label": label,
                "probe_seconds_per_step": dict(self.seconds), "not_applicable": dict(self.dropped),
                "slow_fallback_ops": sorted(self.slow_ops),
                "eval_slow_fallback_ops": sorted(self.eval_slow_ops), "eval_members_per_call": self.eval_chunk,
                "line": self.line()}


def _what(chunk: int, K: int, *, autograd: bool = False) -> str:
    if chunk <= 1:
        return "one member at a time" + (" (plain autograd, no vmap)" if autograd else "")
    return f"all {K} members in one vmap" if chunk >= K else f"vmap in chunks of {chunk} members"


class Clock:
    """The seconds a step costs: on CUDA wall time, synchronized (a kernel still running is counted); on a CPU
    with one torch thread the process's CPU time, which other jobs on a shared machine do not inflate; with
    more threads wall time (their parallel speed-up is part of a strategy's speed)."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.cpu_time = not cuda and torch.get_num_threads() == 1

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.process_time() if self.cpu_time else time.perf_counter()
