"""Train many copies of your own Flax NNX, Flax Linen or Equinox model at once: one compiled program over λ × η × folds.

Member k (``Member(lmbda, eta, fold, weight_decay)``) trains the model of its
fold f on that fold's training rows, n = their number, exactly as the plain
optax loop a JAX user writes:

* initial weights: ``model_fn(jax.random.key(seed_f))``, ``seed_f =
  fold_seeds(seed, F)[f]`` (:func:`l2reg.models.ensembles.fold_seeds`, the seeds of
  every l2reg front), the same for all members of a fold;
* batch order: in epoch e the fold's training rows in the order
  ``epoch_order(seed_f, n, e)``, cut into mini-batches of m (the last one
  partial);
* loss: the batch mean of ``optax.softmax_cross_entropy_with_integer_labels``
  (integer ``y``) or of the squared error (float ``y``);
* update: coupled L2, as everywhere in l2reg, on C = C0 + (λ/2n)·Σw² over the
  leaves the policy decays (:mod:`l2reg.jax.policy`)::

      optax.chain(optax.add_decayed_weights(λ/n, mask), optax.sgd(η))          sgd
      optax.chain(optax.add_decayed_weights(λ/n, mask), optax.sgd(η, momentum=μ))   momentum (nesterov=True: nesterov)
      optax.chain(optax.add_decayed_weights(λ/n, mask), optax.adam(η))         adam
      optax.adamw(η, weight_decay=wd, mask=mask)                               adamw (decoupled; members differ by wd)

λ/n, η, wd and μ are per-member arrays traced into one compiled program,
never Python constants: the same program serves any grid, and a second run
with other values (another momentum μ too) compiles nothing. Each member builds exactly the optax chain
above with its own scalars inside the program (no ``inject_hyperparams``), so
member k equals the plain loop to float rounding (``tests/test_jax_models.py``).

Strategies: the members are stepped by ``jax.vmap`` (one batched program), by
``jax.lax.map`` (one member after the other inside the same compiled program;
vmapped convolutions become grouped convolutions, which can be slower on a
CPU), or by ``lax.map`` over chunks of vmapped members. ``strategy="auto"``
times a few steps of each on the user's model and data and keeps the
fastest; the choice and the timings are in ``result.config``.

State that is not a parameter (NNX ``BatchStat``, Linen ``batch_stats``,
Equinox ``State``) is carried per member; dropout draws per member (NNX RNG
streams are folded with the member index; Linen and Equinox get a key per
member and step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..base import checkpoint as ckpt
from ..base import interrupts
from ..base import validation as V
from ..base.checkpoint import Checkpointing
from ..models.ensembles import (MODEL_HELP, METRICS, EnsembleRecord, EpochLog, Member, Position, base_config,  # noqa: F401
                                check_arrays, check_folds, check_members, check_momentum, check_seeds, epoch_order,
                                output_error)
from ..errors import ConfigError, ConfigTypeError, DataError
from ..options import documented
from . import models as M
from .policy import DEFAULT_POLICY, decay_mask, resolve_policy

from ..options import JAX_STRATEGIES as STRATEGIES  # noqa: E402
DEFAULT_CHUNK = 8


@dataclass
class EnsembleResult(EnsembleRecord):
    """What :func:`train_ensemble` returns: the fields of :class:`l2reg.torch.EnsembleResult`
    (``history[name]`` ``(epochs, K)`` for :data:`METRICS`, ``state_dicts[k]`` member k's leaves by
    name as NumPy arrays, parameters and state), plus :meth:`model`. ``config["strategy"]`` is how the
    members were stepped, ``config["probe_ms"]`` the measured milliseconds per step of each candidate,
    ``config["compile_seconds"]`` the part of ``train_seconds`` spent compiling, ``config["evaluate_seconds"]``
    the part spent evaluating every member after every epoch (the history; its compilation included)."""

    rebuild: Callable | None = None
    program: object = None  # the compiled Program and the stacked (params, state): evaluate, data_gradients
    stacked: tuple = ()

    def evaluate(self, X, y, *, batch_size: int = 512) -> dict:
        """Every member on ``(X, y)`` in evaluation mode: ``{"cost": mean C0, "accuracy": …}``, each ``(K,)``
        (accuracy NaN for float y)."""
        X, y, classification = check_arrays(X, y)
        params, state = self.stacked
        K, n = len(self.members), len(X)
        chunk, sums = min(batch_size, n), np.zeros((K, 4))
        fold_of = jnp.zeros(K, jnp.int32)
        for start in range(0, n, chunk):
            rows = np.arange(start, start + chunk) % n
            w = (np.arange(start, start + chunk) < n).astype(np.float32)[None]
            sums += np.asarray(self.program("evaluate", params, state, fold_of, jnp.asarray(X[rows]),
                                            jnp.asarray(y[rows]), jnp.asarray(w), jnp.zeros_like(w)), np.float64)
        return {"cost": sums[:, 0] / n, "accuracy": sums[:, 1] / n if classification else np.full(K, np.nan)}

    def data_gradients(self, X, y) -> dict:
        """∂C0/∂w of every member over all of ``(X, y)`` (evaluation mode): ``{name: (K, *shape)}``."""
        X, y, _ = check_arrays(X, y)
        params, state = self.stacked
        grads = self.program("grads", params, state, jnp.asarray(X), jnp.asarray(y))
        return {n: np.asarray(g) for n, g in grads.items()}

    def model(self, k: int):
        """Member k as its library's own object: an ``nnx.Module``, an ``eqx.Module`` (or ``(module, state)``),
        or a Linen ``(module, variables)`` pair, ready to call or save."""
        k = V.integer("k", k, low=0, high=len(self.members) - 1)
        sd = self.state_dicts[k]
        return self.rebuild({n: jnp.asarray(sd[n]) for n in self.config["param_names"]},
                            {n: self._state_leaf(sd, n) for n in self.config["state_names"]})

    def _state_leaf(self, sd: dict, name: str):
        if name in self.config["key_names"]:
            return jax.random.wrap_key_data(jnp.asarray(sd[name]), impl=self.config["key_names"][name])
        return jnp.asarray(sd[name])


# ---------------------------------------------------------------- the model and its checks


def check_factory(model_fn) -> None:
    """A factory ``model_fn(key)``, not a model: a module is callable too, but on data."""
    lib = M.library(model_fn)
    if lib is not None or not callable(model_fn):
        got = f"a {type(model_fn).__name__} ({lib} module) itself" if lib else f"{model_fn!r:.60}"
        raise ConfigTypeError(f"model_fn must be a callable taking a jax.random key and returning an nnx.Module, "
                              f"a Linen (module, variables) pair or an eqx.Module (e.g. lambda key: "
                              f"Model(nnx.Rngs(key))); got {got}.")


def build(model_fn: Callable, seed: int) -> M.Adapted:
    """``model_fn(jax.random.key(seed))`` in functional form (:func:`l2reg.jax.models.adapt`)."""
    check_factory(model_fn)
    return M.adapt(model_fn(jax.random.key(int(seed))))


def _fold_models(model_fn: Callable, seeds: list) -> list[M.Adapted]:
    models = [build(model_fn, s) for s in seeds]
    layout = lambda a: {n: (tuple(v.shape), str(v.dtype)) for n, v in {**a.params, **a.state}.items()}  # noqa: E731
    first = layout(models[0])
    for f, other in enumerate(models[1:], start=1):
        lay = layout(other)
        name = next((k for k in {**first, **lay} if first.get(k) != lay.get(k)), None)
        if name is not None:
            raise ConfigError(f"model_fn built different architectures: {name!r} is {first.get(name, 'absent')} in "
                              f"fold 0's model and {lay.get(name, 'absent')} in fold {f}'s; model_fn must build the "
                              f"same architecture for every key.")
    if not models[0].params:
        raise ConfigError("the model has no trainable parameters (no inexact arrays / nnx.Param leaves).")
    return models


def _check_forward(model: M.Adapted, X: np.ndarray, y: np.ndarray, classification: bool) -> None:
    """The model on 2 examples: a wrong input or output shape is one line naming both shapes."""
    r = min(2, len(X))
    try:
        out, _ = model.apply(model.params, model.state, jnp.asarray(X[:r]), jax.random.key(0), False)
    except (TypeError, ValueError, IndexError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"the model rejects X's examples of shape {tuple(X.shape[1:])}: {msg}") from None
    if not hasattr(out, "shape"):
        raise DataError(f"the model must return an array; got {type(out).__name__}.")
    error = output_error(tuple(out.shape), r, tuple(y[:r].shape), classification,
                         int(y.max()) + 1 if classification else 0)
    if error:
        raise DataError(error)


# ---------------------------------------------------------------- the optax chain of one member


def make_tx(optimizer: str, mask: dict, h: dict) -> optax.GradientTransformation:
    """One member's optax chain (module docstring) for ``optimizer``, decaying the leaves where ``mask`` is
    True; ``h``: the member's scalars ``eta``, ``lmbda_over_n``, ``weight_decay`` and ``momentum`` (traced
    arrays inside the program, or Python numbers)."""
    if optimizer == "adamw":
        return optax.adamw(h["eta"], weight_decay=h["weight_decay"], mask=mask)
    if optimizer == "sgd":
        base = optax.sgd(h["eta"])
    elif optimizer in ("momentum", "nesterov"):
        base = optax.sgd(h["eta"], momentum=h["momentum"], nesterov=optimizer == "nesterov")
    else:
        base = optax.adam(h["eta"])
    return optax.chain(optax.add_decayed_weights(h["lmbda_over_n"], mask), base)


def _loss(classification: bool) -> Callable:
    """The batch mean over the rows of weight 1 (a padded last batch has rows of weight 0)."""
    def loss(out, yb, wb):
        per, _ = _per_row(out, yb, classification)
        return jnp.sum(per * wb) / jnp.sum(wb)

    return loss


def _per_row(out, yb, classification: bool):
    """``(loss, correct)`` per row ``(r,)``."""
    if classification:
        return optax.softmax_cross_entropy_with_integer_labels(out, yb), (out.argmax(-1) == yb).astype(jnp.float32)
    err = (out.reshape(yb.shape) - yb) ** 2
    return err.reshape(len(yb), -1).mean(-1), jnp.zeros(len(yb))


# ---------------------------------------------------------------- the compiled program


def over_members(fn: Callable, strategy: str, chunk: int, shared: int = 0) -> Callable:
    """``fn`` of one member applied to every member: each argument but the last ``shared`` has a leading axis K."""
    if strategy == "vmap":
        return lambda *args: jax.vmap(lambda *a: fn(*a, *args[len(args) - shared:]))(*args[:len(args) - shared])
    size = None if strategy == "map" else chunk
    return lambda *args: jax.lax.map(lambda a: fn(*a, *args[len(args) - shared:]), args[:len(args) - shared],
                                     batch_size=size)


def _keep(active, new, old):
    return jax.tree.map(lambda a, b: jnp.where(active, a, b), new, old)


class Program:
    """The jitted functions of one model structure, optimizer, mask and strategy (cached: :func:`program`)."""

    def __init__(self, model: M.Adapted, *, optimizer, mask, classification, strategy, chunk, decayed):
        loss = _loss(classification)
        apply = model.apply

        def member_step(p, s, o, h, key, fold, active, XF, yF, WF):
            xb, yb, wb = XF[fold], yF[fold], WF[fold]

            def cost(p):
                out, ns = apply(p, s, xb, key, True)
                return loss(out, yb, wb), ns

            (_, ns), g = jax.value_and_grad(cost, has_aux=True)(p)
            u, no = make_tx(optimizer, mask, h).update(g, o, p)
            return _keep(active, (optax.apply_updates(p, u), ns, no), (p, s, o))

        step_all = over_members(member_step, strategy, chunk, shared=3)

        def steps(carry, X, y, idx, w, act, fold_of, hyper, keys):
            """``idx`` ``(S, F, m)`` rows of each fold's batch per step, ``w`` their weights, ``act`` ``(S, K)``."""

            def body(c, t_in):
                p, s, o, t = c
                rows, wts, a = t_in
                XF, yF = X[rows], y[rows]  # (F, m, ...)
                step_keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(keys)
                p, s, o = step_all(p, s, o, hyper, step_keys, fold_of, a, XF, yF, wts)
                return (p, s, o, t + 1), None

            return jax.lax.scan(body, carry, (idx, w, act))[0]

        def member_eval(p, s, fold, Xc, yc, wtr, wva):
            out, _ = apply(p, s, Xc, jax.random.key(0), False)
            per, correct = _per_row(out, yc, classification)
            wt, wv = wtr[fold], wva[fold]
            return jnp.stack([per @ wt, correct @ wt, per @ wv, correct @ wv])

        eval_all = over_members(member_eval, strategy, chunk, shared=4)

        def evaluate(p, s, fold_of, Xc, yc, wtr, wva):
            return eval_all(p, s, fold_of, Xc, yc, wtr, wva)  # (K, 4)

        def member_grads(p, s, X, y):
            return jax.grad(lambda p: loss(apply(p, s, X, jax.random.key(0), False)[0], y, jnp.ones(len(y))))(p)

        grads = over_members(member_grads, strategy, chunk, shared=2)

        def sq_norms(p):
            return sum((jnp.sum(p[n].reshape(p[n].shape[0], -1) ** 2, axis=1) for n in decayed),
                       jnp.zeros(next(iter(p.values())).shape[0]))

        def init_opt(p, hyper):
            return jax.vmap(lambda p, h: make_tx(optimizer, mask, h).init(p))(p, hyper)

        self._jitted = {"steps": jax.jit(steps), "evaluate": jax.jit(evaluate), "sq_norms": jax.jit(sq_norms),
                        "init_opt": jax.jit(init_opt), "grads": jax.jit(grads)}
        self._compiled: dict = {}
        self.compile_seconds = 0.0

    def compiled(self, name: str, *args):
        """The executable of ``name`` for these argument shapes, compiled ahead of time once (so that a probe
        can time execution alone, and a second run with other λ values finds it)."""
        leaves, tree = jax.tree.flatten(args)
        sig = (name, tree, tuple((np.shape(a), jnp.result_type(a), getattr(a, "weak_type", False)) for a in leaves))
        exe = self._compiled.get(sig)
        if exe is None:
            t0 = time.perf_counter()
            exe = self._compiled[sig] = self._jitted[name].lower(*args).compile()
            self.compile_seconds += time.perf_counter() - t0
        return exe

    def __call__(self, name: str, *args):
        return self.compiled(name, *args)(*args)


_PROGRAMS: dict = {}


def program(model: M.Adapted, **kw) -> Program:
    """The :class:`Program` for this structure and these settings, compiled once per process and shape."""
    static = M.hashable(model.static)
    key = None if static is None else (static, tuple(sorted(kw["mask"].items())),
                                       tuple((k, v) for k, v in kw.items() if k not in ("mask", "decayed")))
    if key is not None and key in _PROGRAMS:
        return _PROGRAMS[key]
    prog = Program(model, **kw)
    if key is not None:
        if len(_PROGRAMS) > 32:  # a long session with many models: keep the recent ones
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = prog
    return prog


# ---------------------------------------------------------------- the members' arrays


def _stack(models: list, member_list: list) -> tuple[dict, dict, dict]:
    """``(params, state, key_impls)``: each leaf ``(K, *shape)``, member k's from its fold's model; RNG-key
    leaves folded with k so that dropout draws per member."""
    idx = np.array([mb.fold for mb in member_list])
    host = lambda leaves: jnp.asarray(np.stack([np.asarray(x) for x in leaves])[idx])  # noqa: E731  (no compilation)
    params = {n: host(m.params[n] for m in models) for n in models[0].params}
    state, impls = {}, {}
    for n, leaf in models[0].state.items():
        if M.is_key(leaf):
            impls[n] = str(jax.random.key_impl(leaf))
            stacked = jax.random.wrap_key_data(host(jax.random.key_data(m.state[n]) for m in models), impl=impls[n])
            state[n] = jax.vmap(jax.random.fold_in)(stacked, jnp.arange(len(idx)))
        else:
            state[n] = host(m.state[n] for m in models)
    return params, state, impls


def _hyper(member_list: list, n_train: list, mu: float | None) -> dict:
    """Every member's scalars ``(K,)``, traced by the program (μ too: another momentum compiles nothing)."""
    f32 = lambda a: jnp.asarray(np.asarray(a, np.float64), jnp.float32)  # noqa: E731
    return {"eta": f32([mb.eta for mb in member_list]),
            "lmbda_over_n": f32([mb.lmbda / n_train[mb.fold] for mb in member_list]),
            "weight_decay": f32([mb.weight_decay for mb in member_list]),
            "momentum": f32([mu or 0.0] * len(member_list))}


def _divisor(T: int, at_most: int) -> int:
    """The largest divisor of T that is at most ``at_most`` (≥ 1): steps per call, no padding steps."""
    return max(d for d in range(1, max(1, min(T, at_most)) + 1) if T % d == 0)


def _schedule(orders: list, m: int, fold_of: np.ndarray, live: np.ndarray, *, exact_tails: bool,
              calls_wanted: int) -> list[tuple]:
    """One epoch as calls of the ``steps`` program: ``(idx (S, F, m'), w (S, F, m'), act (S, K))``.

    A fold's last batch is partial and folds of other sizes run out at other steps. Without state that
    depends on the batch's rows, a short batch is padded to m with rows of weight 0 and a fold without a
    batch at a step leaves its members inactive: every call has the same shape. With such state
    (BatchNorm statistics: ``exact_tails``) the steps where every fold has a full batch are chunked alike
    and each later step runs once per batch size, unpadded. S divides the number of chunked steps and leaves
    at least ``calls_wanted`` calls (the strategy probe times one call per candidate).
    """
    T = min(len(o) // m for o in orders) if exact_tails else max(-(-len(o) // m) for o in orders)
    calls = []
    if T:
        idx = np.zeros((T, len(orders), m), np.int64)
        w = np.zeros((T, len(orders), m), np.float32)
        act = np.zeros((T, len(fold_of)), bool)
        for f, o in enumerate(orders):
            for t in range(min(T, -(-len(o) // m))):
                b = o[t * m:(t + 1) * m]
                idx[t, f, :len(b)], idx[t, f, len(b):] = b, o[:m - len(b)]
                w[t, f, :len(b)] = 1
                act[t, fold_of == f] = live[fold_of == f]
        S = _divisor(T, min(16, max(1, T // max(1, calls_wanted))))
        calls += [(idx[i:i + S], w[i:i + S], act[i:i + S]) for i in range(0, T, S)]
    if exact_tails:
        for t in range(T, max(-(-len(o) // m) for o in orders)):
            batches = [o[t * m:(t + 1) * m] for o in orders]
            sizes = np.array([len(b) for b in batches])
            for size in np.unique(sizes[sizes > 0]):
                idx = np.stack([b if len(b) == size else o[:size] for b, o in zip(batches, orders)])[None]
                act = (live & (sizes[fold_of] == size))[None]
                if act.any():
                    calls.append((idx, np.ones(idx.shape, np.float32), act))
    return calls


def _run(prog: Program, carry, data, calls, fold_of, hyper, keys, *, start: int = 0):
    """An epoch's calls, from the one that begins at step ``start`` (a resumed epoch); yields
    ``(carry, steps of the epoch done)`` after each."""
    X, y = data
    done = 0
    for idx, w, act in calls:
        if done >= start:
            carry = prog("steps", carry, X, y, jnp.asarray(idx), jnp.asarray(w), jnp.asarray(act), fold_of, hyper,
                         keys)
        done += len(idx)
        if done > start:
            yield carry, done


def _save(checkpoint, carry, impls: dict, log, strategy: str, probe_ms: dict, meta: dict) -> None:
    """The ensemble's state (:mod:`l2reg.base.checkpoint`: parameters, state (RNG keys as their data), optax
    state, step counter) and ``meta`` (:meth:`l2reg.models.ensembles.Position.meta`)."""
    params, state, opt_state, t = carry
    state = {n: jax.random.key_data(v) if n in impls else v for n, v in state.items()}
    ckpt.save(checkpoint.path, {"params": params, "state": state, "opt_state": opt_state, "t": t},
              {**meta, "log": log.state(), "strategy": strategy, "probe_ms": probe_ms})


def _load(checkpoint, carry, impls: dict, log) -> dict:
    """The checkpoint's state in the structure of the fresh ``carry``: its meta, with ``carry`` added."""
    params, state, opt_state, t = carry
    state = {n: jax.random.key_data(v) if n in impls else v for n, v in state.items()}
    saved, meta = ckpt.load(checkpoint.path, {"params": params, "state": state, "opt_state": opt_state, "t": t})
    ckpt.check_same_config(meta.get("config", {}), checkpoint.config or {}, ignore=())
    log.restore(meta["log"])
    saved = jax.tree.map(jnp.asarray, saved)
    state = {n: jax.random.wrap_key_data(v, impl=impls[n]) if n in impls else v for n, v in saved["state"].items()}
    return dict(meta, carry=(saved["params"], state, saved["opt_state"], saved["t"]))


def _probe(candidates: dict, carry, data, calls, fold_of, hyper, keys) -> tuple[dict, object]:
    """Each candidate runs two calls of epoch 0 (real training steps, in turn: A, B, …, A, B, …), compiled
    first; the second is timed (the first run of an executable pays for warming up):
    ``({name: ms per step}, carry after those calls, number of calls used)``."""
    X, y = data
    out = {}
    names = list(candidates) * 2
    for i, (name, (idx, w, act)) in enumerate(zip(names, calls)):
        args = (carry, X, y, jnp.asarray(idx), jnp.asarray(w), jnp.asarray(act), fold_of, hyper, keys)
        exe = candidates[name].compiled("steps", *args)
        t0 = time.perf_counter()
        carry = jax.block_until_ready(exe(*args))
        if i >= len(candidates) or len(calls) < len(names):
            out[name] = 1e3 * (time.perf_counter() - t0) / len(idx)
    return out, carry, min(len(names), len(calls))


def _evaluate(prog: Program, params, state, data, fold_list, fold_of, member_list, chunk: int,
              classification: bool, sq) -> dict:
    """This epoch's :data:`METRICS`, each ``(K,)``: every member on its own fold's rows."""
    X, y = data
    n = X.shape[0]
    F, K = len(fold_list), len(member_list)
    wtr, wva = np.zeros((F, n), np.float32), np.zeros((F, n), np.float32)
    for f, (tr, va) in enumerate(fold_list):
        wtr[f, tr], wva[f, va] = 1, 1
    sums = np.zeros((K, 4))
    for start in range(0, n, chunk):
        rows = np.arange(start, start + chunk) % n  # the last chunk padded with rows of weight 0: one shape
        w = (np.arange(start, start + chunk) < n).astype(np.float32)
        sums += np.asarray(prog("evaluate", params, state, fold_of, X[rows], y[rows], jnp.asarray(wtr[:, rows] * w),
                                jnp.asarray(wva[:, rows] * w)), np.float64)
    n_tr = np.array([len(fold_list[mb.fold][0]) for mb in member_list], np.float64)
    n_va = np.array([len(fold_list[mb.fold][1]) for mb in member_list], np.float64)
    penalty = np.array([mb.lmbda for mb in member_list]) / (2 * n_tr) * sq
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"training_cost": sums[:, 0] / n_tr + penalty, "validation_cost": sums[:, 2] / n_va + penalty}
        if classification:
            out.update(training_accuracy=sums[:, 1] / n_tr, validation_accuracy=sums[:, 3] / n_va)
    out["validation_cost"] = np.where(n_va > 0, out["validation_cost"], np.nan)
    if classification:
        out["validation_accuracy"] = np.where(n_va > 0, out["validation_accuracy"], np.nan)
    out["penalty"], out["weight_sq_norm"] = penalty, sq
    return {k: out[k] for k in METRICS if k in out}


def _candidates(strategy: str, K: int, chunk: int) -> list[str]:
    if strategy != "auto":
        return [strategy]
    return ["vmap", "map"] + (["chunked"] if 1 < chunk and 4 * chunk <= K else [])  # few chunks: vmap or map


def _state_dicts(params: dict, state: dict, impls: dict, K: int) -> list[dict]:
    host = {n: np.asarray(v) for n, v in params.items()}
    host.update({n: np.asarray(jax.random.key_data(v) if n in impls else v) for n, v in state.items()})
    return [{n: v[k].copy() for n, v in host.items()} for k in range(K)]


#: The options l2reg.jax spells its own way in docstrings (the rest: :data:`l2reg.options.HELP`).
DOC = {**MODEL_HELP,
       "policy": "which leaves decay (:data:`l2reg.jax.POLICIES`, or a callable ``(path, leaf) -> bool``)."}


@documented({**DOC, "X": "the inputs ``(n, ...)``, any shape the model takes.",
             "folds": "``(train_idx, val_idx)`` pairs (None: one fold, all rows, no validation).",
             "seed": "one integer (fold seeds by :func:`~l2reg.models.ensembles.fold_seeds`) or one per fold.",
             "on_epoch": "``on_epoch(epoch, metrics)`` after each epoch, with the "
                         ":data:`~l2reg.models.ensembles.METRICS` arrays ``(K,)``.",
             "eval_batch_size": "rows per call when the members are evaluated after each epoch."})
def train_ensemble(model_fn: Callable, X, y, *, members, folds=None, epochs: int = 10, batch_size: int = 64,
                   optimizer: str = "sgd", momentum: float = 0.9, policy=DEFAULT_POLICY, seed=0,
                   strategy: str = "auto", chunk_size: int = DEFAULT_CHUNK, on_epoch: Callable | None = None,
                   eval_batch_size: int = 512, checkpoint: Checkpointing | None = None) -> EnsembleResult:
    """Train every member of ``members`` at once (module docstring) and record each epoch.

    ``model_fn``: a factory ``model_fn(key)`` that returns an ``nnx.Module`` or a Linen ``(module,
    variables)`` pair mapping a batch ``X[idx]`` to logits ``(m, C)`` (integer ``y``) or outputs shaped
    like ``y[idx]`` (float ``y``, mean squared error), or an ``eqx.Module`` (or ``(eqx.Module,
    eqx.nn.State)``) called on one example. ``members``: :class:`~l2reg.models.ensembles.Member` (or
    dicts): ``lmbda`` (coupled, λ/n with n the fold's training rows; sgd, momentum, nesterov, adam),
    ``weight_decay`` (adamw, decoupled), ``eta``, ``fold``. ``strategy``: ``auto`` (measured), ``vmap``,
    ``map`` or ``chunked`` (``lax.map`` over chunks of ``chunk_size`` vmapped members). Bad input raises
    one line (:mod:`l2reg.errors`). ``checkpoint`` (:class:`~l2reg.base.checkpoint.Checkpointing`): the
    whole state is saved there after epochs and between compiled calls as it says, Ctrl-C then stops at the
    next call (:class:`~l2reg.errors.Interrupted`), and with ``resume`` the run continues from it to the
    result of an uninterrupted one.
    """
    check_factory(model_fn)
    mu = check_momentum(optimizer, momentum)
    epochs = V.integer("epochs", epochs, low=1)
    policy_label, _ = resolve_policy(policy)
    V.choice("strategy", strategy, STRATEGIES)
    chunk = V.integer("chunk_size", chunk_size, low=1)
    X, y, classification = check_arrays(X, y)
    fold_list = check_folds(folds, len(X))
    member_list = check_members(members, len(fold_list), optimizer)
    n_train = [len(tr) for tr, _ in fold_list]
    m = V.integer("batch_size", batch_size, low=1, high=min(n_train))
    eval_chunk = min(V.integer("eval_batch_size", eval_batch_size, low=1), len(X))
    eval_chunk = -(-len(X) // -(-len(X) // eval_chunk))  # equal chunks: the padding of the last one is small
    seeds = check_seeds(seed, len(fold_list))
    models = _fold_models(model_fn, seeds)
    _check_forward(models[0], X, y, classification)
    mask = decay_mask(models[0].params, models[0].owners, policy)
    decayed = [n for n, d in mask.items() if d]

    K = len(member_list)
    fold_of = np.array([mb.fold for mb in member_list])
    params, state, impls = _stack(models, member_list)
    hyper = _hyper(member_list, n_train, mu)
    keys = jax.vmap(jax.random.fold_in)(jnp.stack([jax.random.key(seeds[f]) for f in fold_of]), jnp.arange(K))
    data = (jnp.asarray(X), jnp.asarray(y))
    settings = dict(optimizer=optimizer, mask=mask, classification=classification, chunk=min(chunk, K),
                    decayed=tuple(decayed))
    progs = {name: program(models[0], strategy=name, **settings) for name in _candidates(strategy, K, chunk)}
    exact_tails = any(not M.is_key(v) and not n.endswith("count") for n, v in models[0].state.items())
    fold_j = jnp.asarray(fold_of)
    log = EpochLog(K, on_epoch)
    compiled_before = sum(p.compile_seconds for p in progs.values())
    prog = next(iter(progs.values()))
    carry = (params, state, prog("init_opt", params, hyper), jnp.zeros((), jnp.int32))
    probe_ms, eval_seconds = {}, 0.0
    name_of = lambda prog: next(name for name, p in progs.items() if p is prog)  # noqa: E731
    at = Position(checkpoint, epochs=epochs, steps=0, unit="step",
                  save=lambda meta: _save(checkpoint, carry, impls, log, name_of(prog), probe_ms, meta),
                  load=lambda: _load(checkpoint, carry, impls, log))
    with interrupts.graceful() if checkpoint is not None else nullcontext():
        resumed = at.begin()
        if resumed is not None:
            carry, prog, probe_ms = resumed["carry"], progs[resumed["strategy"]], resumed["probe_ms"]
        for e in range(at.epoch, epochs):
            orders = [tr[epoch_order(seeds[f], len(tr), e)] for f, (tr, _) in enumerate(fold_list)]
            calls = _schedule(orders, m, fold_of, log.live, exact_tails=exact_tails, calls_wanted=2 * len(progs))
            at.steps, start = sum(len(c[0]) for c in calls), at.first_step(e)
            if e == 0 and len(progs) > 1 and resumed is None:
                probe_ms, carry, used = _probe(progs, carry, data, calls, fold_j, hyper, keys)
                start = sum(len(c[0]) for c in calls[:used])
                prog = progs[min(probe_ms, key=probe_ms.get)]
            for carry, done in _run(prog, carry, data, calls, fold_j, hyper, keys, start=start):
                if done < at.steps:
                    at.after_step(e, done)
            carry = jax.block_until_ready(carry)  # the epoch's steps done: the evaluation's time starts here
            t_eval = time.perf_counter()
            sq = np.asarray(prog("sq_norms", carry[0]), np.float64)
            log.record(e, _evaluate(prog, carry[0], carry[1], data, fold_list, fold_j, member_list, eval_chunk,
                                    classification, sq))
            eval_seconds += time.perf_counter() - t_eval
            at.after_epoch(e)
    config = base_config(optimizer=optimizer, mu=mu, epochs=epochs, m=m, policy=policy_label, seed=seed, seeds=seeds,
                         folds=fold_list, classification=classification, device=str(jax.devices()[0]))
    config.update(library=models[0].kind, strategy_requested=strategy, probe_ms=probe_ms,
                  compile_seconds=sum(p.compile_seconds for p in progs.values()) - compiled_before,
                  evaluate_seconds=eval_seconds)
    return _result(config, name_of(prog), prog, carry, impls, log, member_list, decayed, at.seconds(),
                   settings["chunk"], models[0].rebuild)


def _result(config: dict, chosen: str, prog: Program, carry, impls: dict, log, member_list, decayed, seconds: float,
            chunk: int, rebuild) -> EnsembleResult:
    """:func:`train_ensemble`'s result: ``config`` completed with the strategy taken and the leaves' names."""
    params, state = carry[0], carry[1]
    config.update({"jax": jax.__version__, "strategy": chosen, "chunk_size": chunk if chosen == "chunked" else None,
                   "param_names": list(params), "state_names": list(state), "key_names": impls})
    return EnsembleResult(
        members=member_list, history=log.stacked(), state_dicts=_state_dicts(params, state, impls, len(member_list)),
        decayed=decayed, config=config, train_seconds=seconds, diverged_epoch=log.diverged, notes=log.notes(),
        rebuild=rebuild, program=prog, stacked=(params, state),
    )
