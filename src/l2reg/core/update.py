"""The update rule: where w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w is assembled.

For plain SGD on the L2-regularized cost C = C0 + (λ/2n)·Σw² (n the
training-set size, m the mini-batch size, weights only) one step is two optax
transforms, chained in :func:`make_optimizer`:

    g ← ∂C0/∂w + (λ/n)·w          optax.add_decayed_weights(λ/n, mask=weights only)
    w ← w − η·g                    optax.sgd(η)
      = (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w

The decay is *coupled*: the penalty's gradient is added to the data gradient
before the learning rate (and, for momentum or Adam, before their statistics).
Only AdamW's ``weight_decay`` is *decoupled* (added after Adam's moments).
Every per-model number (η, λ/n, μ, wd) is a ``(K, 1)`` array (:func:`make_hyper`)
that broadcasts against every leaf of a K-model stack, so the same transforms
update K models at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import jax.numpy as jnp
import numpy as np
import optax

from ..errors import ConfigError
from ..options import DEFAULT_MOMENTUM, DEFAULT_WEIGHT_DECAY, OPTIMIZERS, TrainOptions
from . import penalties
from .device import to_device


@dataclass(frozen=True)
class OptimizerSpec:
    """Static choice of update rule (hashable: it keys the jit cache).

    Per-model numbers (η, λ/n, momentum, weight decay, ρ) live in ``hyper``.
    Schedule lengths are in optimizer steps (mini-batches).
    """

    penalty: str = "l2"
    name: str = "sgd"
    l1_update: str = "subgradient"
    penalize_biases: bool = False
    decay_scaling: str = "lr"
    schedule: str = "constant"
    warmup_steps: int = 0
    decay_steps: int = 0  # cosine: steps from the end of warm-up to the end; step: steps per drop
    step_gamma: float = 0.1
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    @classmethod
    def from_options(cls, opts: TrainOptions, steps: int) -> "OptimizerSpec":
        """The rule of checked ``opts``, with ``steps`` optimizer steps per epoch."""
        warmup = opts.warmup_epochs * steps
        drop = (opts.step_epochs if opts.step_epochs is not None else max(1, opts.epochs // 3)) * steps
        return cls(
            penalty=opts.penalty, name=opts.optimizer, l1_update=opts.l1_update, penalize_biases=opts.penalize_biases,
            decay_scaling=opts.decay_scaling or "lr", schedule=opts.schedule, warmup_steps=warmup,
            decay_steps=drop if opts.schedule == "step" else max(1, opts.epochs * steps - warmup),
            step_gamma=float(opts.step_gamma),
        )

    def without_decay(self) -> "OptimizerSpec":
        """The same update rule with no penalty and no weight decay (AdamW becomes Adam)."""
        return replace(self, penalty="none", name="adam" if self.name == "adamw" else self.name)



def lr_multiplier(opt: OptimizerSpec) -> Callable:
    """The schedule multiplier s_t = η_t/η_0 as a function of the step count (optax schedules).

    ``constant``: 1; ``step``: ×``step_gamma`` every ``decay_steps`` steps;
    ``cosine``: ½(1 + cos(π·t/decay_steps)), from 1 to 0. A warm-up of W steps
    goes first, linearly from 1/W to 1, and the main schedule starts after it.
    """
    if opt.schedule == "step":
        main = optax.exponential_decay(1.0, max(opt.decay_steps, 1), opt.step_gamma, staircase=True)
    elif opt.schedule == "cosine":
        main = optax.cosine_decay_schedule(1.0, max(opt.decay_steps, 1))
    else:
        main = optax.constant_schedule(1.0)
    if opt.warmup_steps <= 0:
        return main
    W = opt.warmup_steps
    return optax.join_schedules([optax.linear_schedule(1.0 / W, 1.0, W - 1), main], [W])


def make_optimizer(opt: OptimizerSpec, hyper: dict) -> optax.GradientTransformation:
    """The optax chain of one stack of models.

    ``hyper`` holds ``(K, 1)`` arrays (one value per model, broadcasting
    against every parameter leaf): ``"eta"`` and ``"lmbda_over_n"`` (or a
    list of those, one per layer), and where used ``"momentum"``,
    ``"weight_decay"``, ``"l1_ratio"``. η_t = η·s_t with s_t the schedule
    (:func:`lr_multiplier`); g = ∂C0/∂w, the mini-batch mean.

    Every coupled penalty (:func:`l2reg.core.penalties.coupled_penalty`: l2's
    (λ/n)·w, l1's (λ/n)·sgn(w), elastic-net) is added to g first, then:

        sgd       w ← w − η_t·g                          = (1 − η_tλ/n)·w − η_t·∂C0/∂w under l2
        momentum  v ← μ·v + g;  w ← w − η_t·v                (PyTorch SGD(momentum=μ))
        nesterov  v ← μ·v + g;  w ← w − η_t·(g + μ·v)
        adam      w ← w − η_t·m̂/(√v̂ + ε)    m̂, v̂ of g *including* the penalty (coupled)
        adamw     w ← w − η_t·(m̂/(√v̂ + ε) + wd·w)            decay_scaling "lr" (= optax.adamw)
                  w ← w − η_t·m̂/(√v̂ + ε) − wd·s_t·w          decay_scaling "schedule" (the paper's)

    AdamW's decay is decoupled: outside the moments of g, never in the cost.
    With ``l1_update="prox"`` the L1 part is not added to g; the step above is
    followed by the soft threshold (:func:`l2reg.core.penalties.l1_prox`).
    """
    eta = hyper["eta"]
    s = lr_multiplier(opt)
    lr = eta if opt.schedule == "constant" and opt.warmup_steps <= 0 else (lambda count: eta * s(count))
    mask = partial(penalties.decay_mask, penalize_biases=opt.penalize_biases)
    lmbda_over_n, l1_ratio = hyper["lmbda_over_n"], hyper.get("l1_ratio", 0.5)
    prox = opt.l1_update == "prox" and opt.penalty in ("l1", "elastic-net")
    # 1. the coupled penalty's gradient, added to ∂C0/∂w
    parts = [] if prox else [penalties.coupled_penalty(opt.penalty, lmbda_over_n, l1_ratio=l1_ratio, mask=mask)]
    # 2. the optimizer proper, scaled by −η_t
    if opt.name in ("sgd", "momentum", "nesterov"):
        momentum = None if opt.name == "sgd" else hyper.get("momentum", DEFAULT_MOMENTUM)
        parts.append(optax.sgd(lr, momentum=momentum, nesterov=opt.name == "nesterov"))
    elif opt.name == "adam":
        parts += [optax.scale_by_adam(opt.b1, opt.b2, opt.eps), optax.scale_by_learning_rate(lr)]
    elif opt.name == "adamw":
        wd = hyper.get("weight_decay", DEFAULT_WEIGHT_DECAY)
        parts.append(optax.scale_by_adam(opt.b1, opt.b2, opt.eps))
        if opt.decay_scaling == "lr":
            parts += [penalties.decoupled_weight_decay(wd, mask), optax.scale_by_learning_rate(lr)]
        else:
            parts += [optax.scale_by_learning_rate(lr), penalties.scheduled_weight_decay(wd, s, mask)]
    else:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {opt.name!r}.")
    # 3. the proximal L1 step, after the optimizer
    if prox:
        rho = 1.0 if opt.penalty == "l1" else l1_ratio
        parts.append(penalties.l1_prox(lmbda_over_n, lr, l1_ratio=rho, mask=mask))
    return optax.chain(*parts)


def make_hyper(eta, lmbda, n, dtype=jnp.float32, *, penalty="l2", optimizer="sgd", momentum=None,
               weight_decay=None, l1_ratio=0.5) -> dict:
    """The per-model numbers of :func:`make_optimizer`, each ``(K, 1)``.

    ``eta`` and ``n`` (each model's training-set size) are ``(K,)``;
    ``lmbda`` is ``(K,)``, or ``(K, n_layers)`` for a λ per layer, which gives
    ``"lmbda_over_n"`` as a list with one ``(K, 1)`` array per layer.
    ``momentum`` (momentum, nesterov), ``weight_decay`` (adamw) and
    ``l1_ratio`` (elastic-net) are numbers or ``(K,)`` and only kept where used.
    """
    K = len(eta)
    # (K, 1), rounded to dtype in NumPy (as XLA rounds; an eager conversion compiles a program per shape)
    col = lambda a: to_device(np.broadcast_to(np.asarray(a, np.float64), (K,))[:, None].astype(dtype))  # noqa: E731
    n = np.asarray(n, np.float64)
    lam = np.asarray(lmbda, np.float64)
    hyper = {"eta": col(eta)}
    hyper["lmbda_over_n"] = [col(lam[:, l] / n) for l in range(lam.shape[1])] if lam.ndim == 2 else col(lam / n)
    if optimizer in ("momentum", "nesterov"):
        hyper["momentum"] = col(DEFAULT_MOMENTUM if momentum is None else momentum)
    if optimizer == "adamw":
        hyper["weight_decay"] = col(DEFAULT_WEIGHT_DECAY if weight_decay is None else weight_decay)
    if penalty == "elastic-net":
        hyper["l1_ratio"] = col(l1_ratio)
    return hyper


def decay_free_hyper(hyper: dict) -> dict:
    """``hyper`` with λ/n = 0 and weight decay 0: :meth:`OptimizerSpec.without_decay`'s rule, same state layout."""
    import jax

    out = dict(hyper)
    out["lmbda_over_n"] = jax.tree.map(jnp.zeros_like, hyper["lmbda_over_n"])
    if "weight_decay" in out:
        out["weight_decay"] = jnp.zeros_like(hyper["weight_decay"])
    return out
