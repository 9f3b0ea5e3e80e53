"""Full-batch training to convergence, for convex and small problems.

Minimizes the regularized cost of every model of a stack,

    C(w, b) = C0 + (λ/2n) · Σ_w w²,     C0 = (1/n) · Σ_x C0_x

(C0 the MEAN over the n training examples, the penalty on weights only,
never biases; n = training-set size), with the whole training set in every
step, until the gradient norm ‖∇C‖ (weights and biases of that model
together) falls below ``tol``. There is no learning-rate decay and no
mini-batch: the penalty is part of the cost that the optimizer sees, so its
gradient (λ/n)·w is *coupled* (it goes through L-BFGS's curvature estimate
like the data gradient).

Two methods, both from optax:

* ``"lbfgs"`` (default): :func:`optax.lbfgs` with its zoom line search
  (strong Wolfe conditions). Converges to machine precision on the convex
  cases (no hidden layer: ridge and multinomial logistic regression).
* ``"gd"``: plain gradient descent ``θ ← θ − η·∇C`` (:func:`optax.sgd`)
  with a fixed η, run to the same tolerance. Slow; mainly a check.

The K models are solved at once with :func:`jax.vmap` over the model axis of
the stack (weights ``(n_in, K, n_out)``, biases ``(K, n_out)``): each model
has its own line search, its own stopping test and its own iteration count;
the vmapped loop runs until the last model stops, the others being frozen.

Float64: with ``jax.enable_x64(True)`` active and a float64 ``X``, the
whole solve runs in float64 (the sklearn-agreement tests do this).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..base import compile_cache
from ..base import validation as V
from ..errors import ConfigError, DataError
from . import network, penalties
from .network import NetworkSpec

log = logging.getLogger(__name__)

METHODS = ("lbfgs", "gd")
#: The penalties a full-batch fit minimizes (the smooth ones: L-BFGS needs a gradient).
PENALTIES = ("l2", "none")

# Default gradient-norm tolerance per dtype. A line search can only certify
# a decrease of C larger than rounding in C, which stops progress near
# ‖∇C‖ ≈ sqrt(eps·|C|·L) (L the largest curvature): measured about 1e-5 to
# 6e-5 in float32 on digits, 1e-10 (logistic, C < 1) to 1e-8 (ridge on
# unscaled targets) in float64.
DEFAULT_TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-8}

# Steps without a new lowest C before a model is declared stuck.
STALL_PATIENCE = 10


@dataclass
class FullBatchResult:
    """What :func:`fit_full_batch` returns; every array has one entry per model.

    * ``params``: the stack (NumPy), ``[{"w": (n_in, K, n_out), "b": (K, n_out)}]``.
    * ``cost``: the final C = C0 + (λ/2n)·Σw² ``(K,)`` (C0 the mean).
    * ``grad_norm``: ‖∇C‖ at the final parameters ``(K,)``.
    * ``iterations``: optimizer steps taken ``(K,)``.
    * ``converged``: ``grad_norm <= tol`` ``(K,)``. A model that stops
      before (``max_iter`` reached, or no decrease possible in this
      precision) has ``converged`` False.
    * ``lmbda``, ``seed``: the λ and seed of each model ``(K,)``.
    """

    params: list
    cost: np.ndarray
    grad_norm: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    lmbda: np.ndarray
    seed: np.ndarray
    tol: float
    seconds: float


# ---------------------------------------------------------------- one model


def _cost(p, lmbda, member, n, X, T, spec: NetworkSpec):
    """C of one model ``p`` (``[{"w": (n_in, n_out), "b": (n_out,)}]``): a scalar."""
    one = [{"w": layer["w"][:, None, :], "b": layer["b"][None, :]} for layer in p]  # a stack of K = 1
    z = network.logits(spec, one, X)  # (n_x, 1, n_out)
    c0 = network.cost_per_example(spec, z, T[:, None, :])[:, 0]  # (n_x,)
    return jnp.sum(c0 * member) / n + penalties.l2_cost(one, lmbda, n)[0]


def _solve_one(p0, lmbda, member, X, T, tol, eta, max_iter, *, spec, method, memory_size):
    """Minimize C for one model; returns (params, cost, grad norm, iterations).

    The parameters returned are those of the smallest gradient norm seen
    (with their C and ‖∇C‖), which near the minimum, where rounding makes C
    and ∇C jitter, is the best estimate of the minimizer.
    """
    n = jnp.sum(member)
    f = partial(_cost, lmbda=lmbda, member=member, n=n, X=X, T=T, spec=spec)
    if method == "lbfgs":
        opt = optax.lbfgs(memory_size=memory_size)
        # The line search has already evaluated C and ∇C at the new point.
        value_and_grad = optax.value_and_grad_from_state(f)
    else:
        opt = optax.sgd(eta)
        value_and_grad = lambda p, state: jax.value_and_grad(f)(p)  # noqa: E731

    v0, g0 = jax.value_and_grad(f)(p0)
    norm0 = optax.tree.norm(g0)

    def cond(carry):
        it, stale, v, best = carry[4], carry[5], carry[2], carry[7]
        return (it < max_iter) & (best[2] > tol) & (stale < STALL_PATIENCE) & jnp.isfinite(v)

    def body(carry):
        p, state, v, g, it, stale, v_min, best = carry
        updates, state = opt.update(g, state, p, value=v, grad=g, value_fn=f)
        p = optax.apply_updates(p, updates)
        v, g = value_and_grad(p, state=state)
        gnorm = optax.tree.norm(g)
        # Near the minimum C only moves by rounding: count the steps since C
        # last reached a new low, and stop at once on a zero step (the line
        # search found no decrease at all).
        stale = jnp.where(v < v_min, 0, stale + 1)
        stale = jnp.where(optax.tree.norm(updates) == 0, STALL_PATIENCE, stale)
        better = jnp.isfinite(v) & (gnorm < best[2])
        best = jax.tree.map(lambda new, old: jnp.where(better, new, old), (p, v, gnorm), best)
        return p, state, v, g, it + 1, stale, jnp.minimum(v, v_min), best

    carry = (p0, opt.init(p0), v0, g0, jnp.int32(0), jnp.int32(0), v0, (p0, v0, norm0))
    carry = jax.lax.while_loop(cond, body, carry)
    p, v, gnorm = carry[7]
    return p, v, gnorm, carry[4]


@partial(jax.jit, static_argnames=("spec", "method", "memory_size"))
def _solve_stack(params, lmbda, member, X, T, tol, eta, max_iter, *, spec, method, memory_size):
    """:func:`_solve_one` for every model of the stack, vmapped over its model axis."""
    solve = partial(_solve_one, spec=spec, method=method, memory_size=memory_size)
    axes = [{"w": 1, "b": 0} for _ in params]
    return jax.vmap(
        solve,
        in_axes=(axes, 0, 1, None, None, None, None, None),
        out_axes=(axes, 0, 0, 0),
    )(params, lmbda, member, X, T, tol, eta, max_iter)


# ---------------------------------------------------------------- the API


def _targets(spec: NetworkSpec, X, Y, dtype):
    """``Y`` checked against ``X`` and the network, as the cost wants it (one-hot for classification)."""
    if X.ndim != 2 or X.shape[0] == 0:
        raise DataError(f"X must be a non-empty 2-D array; got shape {X.shape}.")
    n, d = X.shape
    if d != spec.sizes[0]:
        raise DataError(f"X has {d} features but the network's input layer has {spec.sizes[0]}.")
    Y = np.asarray(Y)
    if len(Y) != n:
        raise DataError(f"Y has {len(Y)} rows but X has {n}.")
    n_out = spec.sizes[-1]
    if spec.regression:
        Y2 = Y.reshape(n, -1) if Y.ndim == 1 else Y
        if Y2.shape != (n, n_out):
            raise DataError(f"Y must have shape ({n}, {n_out}) for this network; got {Y.shape}.")
        return jnp.asarray(Y2, dtype)
    if Y.ndim != 1 or not np.issubdtype(Y.dtype, np.integer) or Y.min() < 0 or Y.max() >= n_out:
        raise DataError(f"Y must hold integer labels in 0..{n_out - 1}, one per row of X.")
    return jax.nn.one_hot(jnp.asarray(Y), n_out, dtype=dtype)


def _member(member, n: int, K: int) -> np.ndarray:
    """Which examples train which model, ``(n, K)``: all of them by default."""
    member = np.ones((n, K)) if member is None else np.asarray(member, np.float64)
    if member.shape != (n, K):
        raise DataError(f"member must have shape ({n}, {K}) (examples, models); got {member.shape}.")
    if np.any(member.sum(axis=0) <= 0):
        raise DataError("member leaves a model with no training example.")
    return member


def fit_full_batch(
    spec: NetworkSpec,
    X,
    Y,
    lmbda: float | Sequence[float],
    *,
    params0: list | None = None,
    init: str = "default",
    seed: int | Sequence[int] = 0,
    method: str = "lbfgs",
    tol: float | None = None,
    max_iter: int = 1000,
    memory_size: int = 10,
    eta: float = 0.5,
    penalty: str = "l2",
    member=None,
) -> FullBatchResult:
    """Train every (seed, λ) model full-batch until ‖∇C‖ <= ``tol``.

    Minimizes C = C0 + (λ/2n)·Σw² with C0 the mean cost over the training
    examples, weights only penalized, n = number of training examples (of
    that model, see ``member``); coupled L2 (the penalty is in the cost).

    * ``X`` ``(n, n_in)``; ``Y`` ``(n,)`` integer labels for classification,
      ``(n, n_out)`` targets when ``spec.regression``. The dtype is float64
      when ``X`` is float64 and ``jax.enable_x64(True)`` is active, else
      float32.
    * ``lmbda``: one λ or a list; ``seed``: one seed or a list. The stack
      holds K = len(seed)·len(lmbda) models, model k = g·L + l with seed g
      and λ l (as in :func:`l2reg.fronts.training.train`); the models of a seed start
      from the same weights, drawn as :func:`l2reg.fronts.training.fit_stack` draws
      them (``init``), unless ``params0`` (a stack of K models) is given.
    * ``method``: ``"lbfgs"`` (optax L-BFGS, zoom line search) or ``"gd"``
      (gradient descent with fixed step ``eta``).
    * ``tol``: on the Euclidean norm of ∇C over all of a model's parameters;
      default 1e-4 in float32, 1e-8 in float64. ``max_iter`` caps the steps.
    * ``penalty``: ``"l2"``, or ``"none"`` (λ ignored: C = C0).
    * ``member``: optional ``(n, K)`` 0/1 weights saying which examples
      train which model (cross-validation folds); n is then its column sum.

    Returns a :class:`FullBatchResult`. Non-convex networks (hidden layers)
    converge to a stationary point that depends on the seed.
    """
    compile_cache.configure()
    lmbdas = V.numbers_list("lmbda", lmbda, low=0)
    seeds = V.integers_list("seed", seed, low=0)
    V.choice("method", method, METHODS)
    V.choice("init", init, network.INITS)
    V.choice("penalty", penalty, PENALTIES)
    max_iter = V.integer("max_iter", max_iter, low=1)
    memory_size = V.integer("memory_size", memory_size, low=1)
    eta = V.number("eta", eta, low=0, strict=True)
    if not isinstance(spec, NetworkSpec):
        raise ConfigError(f"spec must be a NetworkSpec; got {type(spec).__name__}.")
    X = np.asarray(X)
    dtype = jnp.float64 if X.dtype == np.float64 and jax.config.jax_enable_x64 else jnp.float32
    tol = DEFAULT_TOL[np.dtype(dtype)] if tol is None else V.number("tol", tol, low=0, strict=True)
    T = _targets(spec, X, Y, dtype)
    L, G = len(lmbdas), len(seeds)
    K = G * L
    lmbda_k = np.zeros(K) if penalty == "none" else np.tile(np.asarray(lmbdas, np.float64), G)
    seed_k = np.repeat(np.asarray(seeds), L)
    member = _member(member, len(X), K)
    if params0 is None:
        from .engine import init_stack

        params = init_stack(spec, seeds, L, init, dtype)
    else:
        params = jax.tree.map(lambda a: jnp.array(a, dtype), params0)
        if network.n_models(params) != K:
            raise ConfigError(f"params0 holds {network.n_models(params)} models; expected {K} (seeds × lmbda).")

    t0 = time.perf_counter()
    p, cost, gnorm, it = _solve_stack(
        params, jnp.asarray(lmbda_k, dtype), jnp.asarray(member, dtype), jnp.asarray(X, dtype), T,
        jnp.asarray(tol, dtype), jnp.asarray(eta, dtype), jnp.int32(max_iter),
        spec=spec, method=method, memory_size=memory_size,
    )
    gnorm = np.asarray(gnorm)
    seconds = time.perf_counter() - t0
    converged = gnorm <= tol
    if not converged.all():
        log.warning("full-batch %s: %d of %d models stopped with ‖∇C‖ > tol = %g (max %.3g).",
                    method, int((~converged).sum()), K, tol, float(np.nanmax(gnorm)))
    return FullBatchResult(params=jax.tree.map(np.asarray, p), cost=np.asarray(cost), grad_norm=gnorm,
                           iterations=np.asarray(it), converged=converged, lmbda=lmbda_k, seed=seed_k,
                           tol=float(tol), seconds=seconds)
