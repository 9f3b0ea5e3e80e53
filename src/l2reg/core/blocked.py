"""The blocked first-layer update: one epoch of plain SGD with W1 written once per B steps.

With m = 10 each step of :func:`l2reg.core.engine.epoch` reads and writes the
first layer's weights W1 three times (forward ``x·W1``, gradient ``xᵀ·δ``,
update) in rank-10 products that neither use two cores well nor keep W1 in
cache once K ≥ 16 (docs/benchmarks.md). For plain SGD with coupled
L2 (or no penalty) and a constant learning rate the update of W1 is linear
in W1, so B steps can be applied at once, exactly. Per model, with
c = 1 − ηλ₁/n (λ₁ the first layer's λ, n that model's training-set size;
coupled decay), X_s the step's (m × n_in) inputs and D_s its (m × H)
per-example δ of the first layer (row x holds ∂C0_x/∂z1 of the engine's
loss, already divided by the batch's number of valid rows),

    W1_{s+1} = c·W1_s − η·X_sᵀ·D_s
    W1_t     = c^t·W1_0 − η·Σ_{s<t} c^{t−1−s}·X_sᵀ·D_s

Within a block of B steps W1 is never written:

* one GEMM P = X_blk·W1_0 over the block's B·m rows and one Gram matrix
  X_blk·X_blkᵀ (shared by all models of a group);
* step t's z1 = X_t·W1_t from P, the Gram rows of step t and the earlier
  D's (:func:`_step`), then ``jax.grad`` of the rest of the network gives D_t;
* one GEMM at the block's end applies all B updates, decay folded in
  (:func:`_block`).

The other layers and every bias take the ordinary optax update
(:func:`l2reg.core.update.make_optimizer`) at every step. A model that is frozen
(``active`` False) or whose group has no valid rows in a step takes no step
there, decay included, as in the per-step epoch; c then counts only the
steps it took.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..base import validation as V
from ..errors import ConfigError
from . import network
from .network import NetworkSpec
from .update import OptimizerSpec, make_optimizer

#: The running decay C_t = c^t is divided out of each step's δ (see :func:`_step`);
#: it must stay a normal float32 over a block, so c^B >= this.
MIN_BLOCK_DECAY = 1e-30
#: B, by measurement (bench/bench_blocked.py, MNIST 784-30-10, m = 10): a
#: block costs W1's traffic (read for P, read and written at the end) once,
#: and per step a correction and a Gram matrix that grow with B. B = 10 was
#: best at K = 64 and for 16 λ × 5 folds, and 5% slower than B = 5 at K = 16.
DEFAULT_BLOCK = 10


def applies_to(opt: OptimizerSpec, hyper: dict | None = None, *, block: int = 1) -> bool:
    """Whether :func:`blocked_epoch` is exact for this update rule (and these numbers).

    It needs plain SGD (no momentum), coupled L2 or no penalty, and a
    constant learning rate. Given concrete ``hyper`` (host arrays), it also
    checks that every model's first-layer decay satisfies 0 <= ηλ₁/n and
    (1 − ηλ₁/n)^block >= ``MIN_BLOCK_DECAY`` (any real run has ηλ/n << 1).
    """
    if opt.name != "sgd" or opt.penalty not in ("l2", "none") or opt.schedule != "constant" or opt.warmup_steps > 0:
        return False
    if hyper is None or opt.penalty == "none":
        return True
    eps = np.asarray(hyper["eta"], np.float64) * np.asarray(_layer1_coef(hyper), np.float64)
    return bool(np.all(eps >= 0) and np.all(eps < 1) and np.all((1 - eps) ** block >= MIN_BLOCK_DECAY))


def _layer1_coef(hyper):
    """λ₁/n, the first layer's coupled-decay coefficient: ``(K, 1)`` (or grouped)."""
    c = hyper["lmbda_over_n"]
    return c[0] if isinstance(c, (list, tuple)) else c


def _head_loss(z1, rest, y, w, spec: NetworkSpec):
    """:func:`l2reg.core.engine.grouped_loss` from the first layer's z1 − b1 on.

    ``z1`` ``(G, m, L, H)`` is x·W1 (no bias); ``rest`` is the stack without
    W1 (``rest[0]`` holds b1). Σ over models of each model's mean C0 over
    its valid rows (``w`` ``(G, m)``), so ∂/∂z1 is each model's D.
    """
    return network.grouped_cost(spec, network.head_grouped(spec, z1 + rest[0]["b"], rest[1:]), y, w)


def _step(carry, t, *, p, gram, c_now, c_next, live, y, w, eta, spec, optimizer):
    """Step t of a block: z1 from P and the Gram rows, D_t by ``jax.grad``, the other layers' update.

    With C_t = Π_{s<t} c_s (c_s = 1 − ηλ₁/n where the model takes step s,
    else 1) and Ẽ_s = η·D_s / C_{s+1} (``ebuf``, zero for s >= t),

        W1_t = C_t·(W1_0 − Σ_{s<t} X_sᵀ·Ẽ_s)
        z1_t = X_t·W1_t = C_t·(P_t − Σ_{s<t} (X_t·X_sᵀ)·Ẽ_s)
    """
    rest, state, ebuf = carry  # ebuf (G, B·m, L·H)
    (G, L), H, m = c_now.shape[1:], spec.sizes[1], w.shape[-1]
    rows = lambda a: jax.lax.dynamic_slice_in_dim(a, t * m, m, axis=1)  # noqa: E731  step t's rows
    corr = jnp.matmul(rows(gram), ebuf)  # (G, m, L·H)
    z1 = c_now[t][:, None, :, None] * (rows(p) - corr).reshape(G, m, L, H)
    dz, grads = jax.grad(_head_loss, argnums=(0, 1))(z1, rest, y[:, t], w[t], spec)
    updates, state = optimizer.update(grads, state, rest)
    on = live[t][:, None, :, None]  # (G, 1, L, 1)
    rest = optax.apply_updates(rest, jax.tree.map(lambda u: jnp.where(on, u, 0), updates))
    e = jnp.where(on, eta * dz, 0) / c_next[t][:, None, :, None]  # Ẽ_t (G, m, L, H)
    ebuf = jax.lax.dynamic_update_slice_in_dim(ebuf, e.reshape(G, m, L * H), t * m, axis=1)
    return (rest, state, ebuf), None


def _block(carry, batch, *, X, Y, eta, log_c, active, spec, optimizer):
    """B steps: W1 read once (P), written once at the end; the other layers every step.

    At the block's end, with C_B = Π_{s<B} c_s and d = C_B − 1 (computed as
    expm1(k·log1p(−ηλ₁/n)), k the model's steps taken, so that the decay
    keeps float32's relative accuracy as in the per-step update),

        W1_B = C_B·(W1_0 − X_blkᵀ·Ẽ) = W1_0 + d·W1_0 − X_blkᵀ·(C_B·Ẽ)
    """
    w1, rest, state = carry  # w1 (G, n_in, L, H)
    b_idx, b_valid = batch  # (B, G, m)
    B, G, m = b_idx.shape
    _, n_in, L, H = w1.shape
    xb = X[jnp.swapaxes(b_idx, 0, 1).reshape(G, B * m)]  # (G, B·m, n_in)
    w = b_valid.astype(X.dtype)
    live = active & (w.sum(-1) > 0)[..., None]  # (B, G, L)
    taken = jnp.concatenate([jnp.zeros((1, G, L), X.dtype), jnp.cumsum(live, 0, dtype=X.dtype)])
    d = jnp.expm1(taken * log_c)  # (B+1, G, L): C_t − 1
    p = jnp.matmul(xb, w1.reshape(G, n_in, L * H))  # (G, B·m, L·H)
    gram = jnp.matmul(xb, jnp.swapaxes(xb, 1, 2))  # (G, B·m, B·m)
    step = partial(_step, p=p, gram=gram, c_now=1 + d[:-1], c_next=1 + d[1:], live=live,
                   y=jnp.swapaxes(Y[b_idx], 0, 1), w=w, eta=eta[:, None, :, None], spec=spec, optimizer=optimizer)
    ebuf = jnp.zeros((G, B * m, L * H), X.dtype)
    (rest, state, ebuf), _ = jax.lax.scan(step, (rest, state, ebuf), jnp.arange(B))
    f = (ebuf.reshape(G, B * m, L, H) * (1 + d[-1])[:, None, :, None]).reshape(G, B * m, L * H)
    u = jnp.einsum("gri,grx->gix", xb, f).reshape(G, n_in, L, H)
    new = w1 + d[-1][:, None, :, None] * w1 - u
    w1 = jnp.where(live.any(0)[:, None, :, None], new, w1)  # a model with no step keeps W1 bit for bit
    return (w1, rest, state), None


def blocked_epoch(params, hyper, X, Y, batches, active, *, spec: NetworkSpec, opt: OptimizerSpec, L: int,
                  block: int = DEFAULT_BLOCK):
    """One epoch of the per-step engine's plain SGD, with the first layer updated every ``block`` steps.

    The same update as :func:`l2reg.core.engine.epoch` (coupled L2, n = each
    model's training-set size):

        w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w     (m = the batch's valid rows)
        b ← b − (η/m)·Σ_x ∂C0_x/∂b

    exact up to float32 rounding (the sums run in another order).

    * ``params``: the stack (``(n_in, K, n_out)`` weights, ``(K, n_out)``
      biases); ``hyper``: ``"eta"`` and ``"lmbda_over_n"`` ``(K, 1)`` (or a
      list, one per layer), as :func:`l2reg.core.update.make_hyper`.
    * ``batches``: ``(idx, valid)``, each ``(n_batches, G, m)``, from
      :func:`l2reg.core.engine.shuffle`; K = G·L, model g·L + l in group g.
    * ``active`` ``(K,)``: frozen models keep every parameter unchanged.
    * ``block``: B, steps per first-layer write; the last block is padded
      with empty steps (no model takes a step there).

    Returns the new ``params``. Plain SGD with a constant learning rate has no
    optimizer state, so none is taken or returned.
    """
    block = V.integer("block", block, low=1)
    if not applies_to(opt):
        raise ConfigError("blocked_epoch needs optimizer 'sgd', penalty 'l2' or 'none' and a constant learning rate; "
                          f"got optimizer {opt.name!r}, penalty {opt.penalty!r}, schedule {opt.schedule!r}.")
    idx, valid = batches
    n_batches, G, m = idx.shape
    pad = -n_batches % block
    shape = (-1, block, G, m)
    idx = jnp.pad(idx, ((0, pad), (0, 0), (0, 0))).reshape(shape)
    valid = jnp.pad(valid, ((0, pad), (0, 0), (0, 0))).reshape(shape)
    gp, gh = network.to_groups(params, G), network.to_groups(hyper, G)
    w1 = gp[0]["w"]  # (G, n_in, L, H)
    rest = [{"w": jnp.zeros((G, 0) + w1.shape[2:], w1.dtype), "b": gp[0]["b"]}] + gp[1:]
    optimizer = make_optimizer(opt, gh)
    eta = gh["eta"][:, 0, :, 0]  # (G, L)
    c1 = jnp.zeros_like(eta) if opt.penalty == "none" else _layer1_coef(gh)[:, 0, :, 0]
    body = partial(_block, X=X, Y=Y, eta=eta, log_c=jnp.log1p(-eta * c1), active=active.reshape(G, L),
                   spec=spec, optimizer=optimizer)
    (w1, rest, _), _ = jax.lax.scan(body, (w1, rest, optimizer.init(rest)), (idx, valid))
    return network.from_groups([{"w": w1, "b": rest[0]["b"]}] + rest[1:], params)
