"""l2reg.jax: 16 λ × 5 folds of a Flax NNX model in one program, against the loop a JAX user writes and l2reg.torch.

Data: scikit-learn's digits (1,797 rows, 64 features scaled to [0, 1]), 5
stratified folds (``l2reg.sweep.make_folds``, seed 0), 16 λ (0 and 15 values
with λ/n from 1e-5 to 3e-2), η = 0.1, plain SGD with coupled L2 on the
kernels (``optax.add_decayed_weights(λ/n, mask)`` then ``optax.sgd(η)``), batch
64, 10 epochs: 80 models. Two NNX models: an MLP 64-100-10 (ReLU) and a small
CNN (conv 3×3 1→8, ReLU, 2×2 max-pool, conv 3×3 8→16, ReLU, max-pool, dense
64→32, ReLU, dense 32→10), and the same architectures in PyTorch.

Contenders, each timed from the factory to the last model's validation
accuracy, compilation included (medians of ``--repeats`` runs):

* ``l2reg.jax``: :func:`l2reg.jax.train_ensemble` with ``strategy="auto"``
  (it also evaluates every model on its training and validation rows after
  every epoch, which the plain loop does not; its ``evaluate_seconds`` is
  printed);
* the loop: what a JAX user writes: one ``jax.jit`` single-model step (λ/n and
  η passed as arguments, so it compiles once), a Python loop over the 80
  configurations, each over its fold's batches in ``epoch_order``, and one
  validation accuracy at the end. ``--loop-configs N`` times only the first N
  configurations and extrapolates to 80 (said in the output): the first
  configuration, which pays for the loop's compilation, counts once, the
  mean of the others 79 times. A second
  timing of the loop also evaluates every model on its training and
  validation rows after every epoch, the history l2reg.jax records;
* ``l2reg.torch``: :func:`l2reg.torch.train_ensemble` on the PyTorch twin of
  the model, the same members and folds (torch with its default threads).

Like with like: the headline ratio (the issue's target) is l2reg.jax with
its per-epoch history against the plain loop without one; beside it, the
loop that records the same history, and l2reg.jax less its evaluation
time against the plain loop. The loop's and l2reg.jax's final validation
accuracies of the same configurations are compared (the same models: they
must agree). Targets
(issue 22, 2-core CPU): MLP ≥ 5× the loop; CNN ≥ 1.0× the loop (goal 2×).

    flock /tmp/l2reg-bench.lock python bench/bench_jax_models.py
    python bench/bench_jax_models.py --models mlp --epochs 2 --loop-configs 8   # smoke run
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import header, load, median, verdict


def data():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16).astype(np.float32), d.target.astype(np.int64)


def nnx_models():
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(64, 100, rngs=rngs)
            self.l2 = nnx.Linear(100, 10, rngs=rngs)

        def __call__(self, x):
            return self.l2(nnx.relu(self.l1(x)))

    class CNN(nnx.Module):
        def __init__(self, rngs):
            self.c1 = nnx.Conv(1, 8, (3, 3), padding="SAME", rngs=rngs)
            self.c2 = nnx.Conv(8, 16, (3, 3), padding="SAME", rngs=rngs)
            self.fc = nnx.Linear(64, 32, rngs=rngs)
            self.out = nnx.Linear(32, 10, rngs=rngs)

        def __call__(self, x):
            x = x.reshape(-1, 8, 8, 1)
            x = nnx.max_pool(nnx.relu(self.c1(x)), (2, 2), (2, 2))
            x = nnx.max_pool(nnx.relu(self.c2(x)), (2, 2), (2, 2))
            return self.out(nnx.relu(self.fc(x.reshape(x.shape[0], -1))))

    return {"mlp": lambda key: MLP(nnx.Rngs(key)), "cnn": lambda key: CNN(nnx.Rngs(key))}


def torch_models():
    from torch import nn

    return {
        "mlp": lambda: nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10)),
        "cnn": lambda: nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                                     nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
    }


def configs(folds, args):
    from l2reg.models.ensembles import Member

    n = len(folds[0][0])
    grid = [0.0] + list(np.geomspace(1e-5, 3e-2, args.lambdas - 1) * n)
    return [Member(lmbda=float(v), eta=args.eta, fold=f) for f in range(len(folds)) for v in grid]


def run_l2reg_jax(model_fn, X, y, folds, members, args):
    from l2reg.jax import train_ensemble

    r = train_ensemble(model_fn, X, y, members=members, folds=folds, epochs=args.epochs, batch_size=args.batch_size,
                       seed=args.seed)
    return r.history["validation_accuracy"][-1], r.config


def run_loop(model_fn, X, y, folds, members, args, every_epoch=False):
    """The user's loop (module docstring): ``(final validation accuracy of each configuration, seconds until
    the first configuration was done)``; the first pays for every compilation. ``every_epoch``: also the cost
    and accuracy on the training and validation rows after every epoch (the history l2reg.jax records)."""
    t0 = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from l2reg.fronts.cv import epoch_order, fold_seeds

    seeds = fold_seeds(args.seed, len(folds))
    graphdef, params0, rest0 = nnx.split(model_fn(jax.random.key(0)), nnx.Param, ...)
    mask = jax.tree.map(lambda x: x.ndim > 1, params0)

    def make_tx(eta, lmbda_over_n):
        return optax.chain(optax.add_decayed_weights(lmbda_over_n, mask), optax.sgd(eta))

    @jax.jit
    def step(params, opt_state, rest, xb, yb, eta, lmbda_over_n):
        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p, rest)(xb), yb).mean()

        g = jax.grad(loss)(params)
        u, opt_state = make_tx(eta, lmbda_over_n).update(g, opt_state, params)
        return optax.apply_updates(params, u), opt_state

    @jax.jit
    def accuracy(params, rest, xv, yv):
        return jnp.mean(nnx.merge(graphdef, params, rest)(xv).argmax(-1) == yv)

    @jax.jit
    def cost_and_accuracy(params, rest, xv, yv):
        out = nnx.merge(graphdef, params, rest)(xv)
        return optax.softmax_cross_entropy_with_integer_labels(out, yv).mean(), jnp.mean(out.argmax(-1) == yv)

    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    out, first = [], None
    for mb in members:
        tr, va = folds[mb.fold]
        _, params, rest = nnx.split(model_fn(jax.random.key(seeds[mb.fold])), nnx.Param, ...)
        opt_state = make_tx(0.0, 0.0).init(params)
        eta, lon = jnp.float32(mb.eta), jnp.float32(mb.lmbda / len(tr))
        for e in range(args.epochs):
            order = tr[epoch_order(seeds[mb.fold], len(tr), e)]
            for s in range(0, len(order), args.batch_size):
                idx = order[s:s + args.batch_size]
                params, opt_state = step(params, opt_state, rest, Xj[idx], yj[idx], eta, lon)
            if every_epoch:
                jax.block_until_ready([cost_and_accuracy(params, rest, Xj[rows], yj[rows]) for rows in (tr, va)])
        out.append(float(accuracy(params, rest, Xj[va], yj[va])))
        first = time.perf_counter() - t0 if first is None else first
    return np.array(out), first


def run_torch(model_fn, X, y, folds, members, args):
    from l2reg.torch import train_ensemble

    r = train_ensemble(model_fn, X, y, members=members, folds=folds, epochs=args.epochs, batch_size=args.batch_size,
                       seed=args.seed)
    return r.history["validation_accuracy"][-1]


def extrapolated(total: float, first: float, n: int, K: int) -> float:
    """The loop's time for K configurations from n measured: the first (compilation included) once, the
    others' mean K − 1 times (multiplying the whole would count the compilation K/n times)."""
    return total if n >= K or n < 2 else first + (total - first) / (n - 1) * (K - 1)


def timed(fn, *a, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*a)
        times.append(time.perf_counter() - t0)
    return median(times), out


def bench(name, X, y, folds, args) -> None:
    members = configs(folds, args)
    K = len(members)
    loop_members = members[: args.loop_configs] if args.loop_configs else members
    t_jax, (acc_jax, config) = timed(run_l2reg_jax, nnx_models()[name], X, y, folds, members, args,
                                     repeats=args.repeats)
    probe = ", ".join(f"{k} {v:.2f} ms/step" for k, v in config["probe_ms"].items())
    t_eval = config["evaluate_seconds"]
    print(f"  l2reg.jax   {K} models: {t_jax:7.2f} s  (strategy {config['strategy']}; probe: {probe}; "
          f"compiling {config['compile_seconds']:.1f} s of it, evaluating every model after every epoch "
          f"{t_eval:.1f} s)  ({load()})")
    n = len(loop_members)
    t_loop, (acc_loop, first) = timed(run_loop, nnx_models()[name], X, y, folds, loop_members, args,
                                      repeats=args.repeats)
    t_loop = extrapolated(t_loop, first, n, K)
    note = (f" (measured {n} configurations: the first, compilation included, once, the other {n - 1} "
            f"extrapolated to {K - 1})") if n != K else ""
    print(f"  JAX loop    {K} models: {t_loop:7.2f} s{note}  ({load()})")
    t_loop_e, (_, first_e) = timed(run_loop, nnx_models()[name], X, y, folds, loop_members, args, True,
                                   repeats=args.repeats)
    t_loop_e = extrapolated(t_loop_e, first_e, n, K)
    print(f"  JAX loop evaluating every epoch as l2reg.jax does: {t_loop_e:7.2f} s{note}  ({load()})")
    diff = np.abs(acc_loop - acc_jax[:n]).max()
    print(f"  same models: max |validation accuracy, l2reg.jax − loop| = {diff:.4f} over {n} "
          f"configurations (mean accuracy {acc_jax.mean():.4f})")
    if not args.skip_torch:
        t_torch, acc_torch = timed(run_torch, torch_models()[name], X, y, folds, members, args, repeats=args.repeats)
        print(f"  l2reg.torch {K} models: {t_torch:7.2f} s  (mean validation accuracy {acc_torch.mean():.4f})  "
              f"({load()})")
        print(f"  l2reg.jax / l2reg.torch speed: {t_torch / t_jax:.2f}×")
    target, goal = (5.0, None) if name == "mlp" else (1.0, 2.0)
    print("  " + verdict(f"{name.upper()}: l2reg.jax against the loop", t_loop / t_jax, target, goal=goal))
    print(f"  like with like: against the loop with the same per-epoch evaluation {t_loop_e / t_jax:.2f}×; "
          f"l2reg.jax less its evaluation ({t_jax - t_eval:.1f} s) against the plain loop "
          f"{t_loop / (t_jax - t_eval):.2f}×")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lambdas", type=int, default=16)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eta", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--loop-configs", type=int, default=0, help="time only the first N configurations of the loop")
    p.add_argument("--skip-torch", action="store_true")
    args = p.parse_args()
    from l2reg.fronts.cv import make_folds

    X, y = data()
    folds = make_folds(y, args.folds, args.seed, True)
    print(header(f"bench_jax_models: {args.lambdas} λ × {args.folds} folds, {args.epochs} epochs, digits, "
                 f"batch {args.batch_size}"))
    for name in args.models.split(","):
        print(f"{name}:")
        bench(name, X, y, folds, args)


if __name__ == "__main__":
    main()
