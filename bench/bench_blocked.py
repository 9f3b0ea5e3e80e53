"""Benchmark of the blocked first-layer update (issue 15): seconds per model-epoch, per-step against blocked.

Configuration (network2's): 784-30-10, sigmoid, cross-entropy, m = 10,
η = 0.5, λ = 5.0 (λ/n with n = 50,000), MNIST's first ``--n`` training images
(default all 50,000). In one run it measures, for K models at once,

* the per-step epoch (:func:`l2reg.core.engine.epoch`: W1 read and written on every step);
* the blocked epoch (:func:`l2reg.core.blocked.blocked_epoch`) for each B in ``--blocks``;
  both include the epoch's shuffle, as the engine does;
* the "lean" per-step epoch for K = 1 (``--lean``): no masks (every model
  active, every batch full), the step network2 takes;
* the float32 GEMM rate of the first layer's shape, a jitted
  (n × 784) @ (784 × 30K) multiply, the reference for "% of GEMM";
* with ``--threading``, for the K of ``--threading-ks``, the per-step, lean
  and best blocked epochs in child processes: as they are (``default``),
  under ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` and under
  ``taskset -c 0`` (one core); the three children run in turn, for
  ``--child-rounds`` rounds (medians over the rounds), so that each sees the
  same mix of load.

``--clock cpu`` times this process's CPU time instead of the wall clock: run
under ``taskset -c 0`` it measures single-core work, nearly unaffected by
other jobs on the machine (the GEMM rate is then one core's).

One model-epoch is 4.85 GFLOP at n = 50,000 (bench_train.py's count), scaled
by n/50,000. Every timing is a median of ``--repeats`` epochs (compilation
excluded) and is printed with the load average.

    python bench/bench_blocked.py --data-dir ../shared/data [--n 50000] [--ks 1,16,64]
        [--blocks 5,10,20,40] [--repeats 3] [--lean] [--threading [--threading-ks 1,16]] [--clock wall|cpu]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from functools import partial

import numpy as np

GFLOP_PER_MODEL_EPOCH = 4.85  # at n = 50,000
SIZES = (784, 30, 10)
M, ETA, LMBDA, N_FULL = 10, 0.5, 5.0, 50_000
VARIANTS = {"default": [], "eigen-single-thread": ["env", "XLA_FLAGS=--xla_cpu_multi_thread_eigen=false"],
            "taskset-c0": ["taskset", "-c", "0"]}


def load(data_dir, n):
    import jax.numpy as jnp

    from l2reg.data import load_dataset

    data = load_dataset("mnist", data_dir)
    return jnp.asarray(data.X_train[:n], jnp.float32), jnp.asarray(data.y_train[:n])


def interleaved_medians(contenders: dict, repeats: int, clock=time.perf_counter) -> dict:
    """Median wall time of each ``name -> (fn, make_args)``, timed in ``repeats`` interleaved rounds.

    Every contender runs once untimed (compiling), then each round times each
    contender once, so that a change of the machine's load hits all of them
    alike. Returns ``name -> (median, min, max seconds, mean load average of its calls)``.
    """
    import jax

    for fn, make_args in contenders.values():
        jax.block_until_ready(fn(*make_args(0)))
    times = {name: [] for name in contenders}
    loads = {name: [] for name in contenders}
    for r in range(1, repeats + 1):
        for name, (fn, make_args) in contenders.items():
            args = make_args(r)
            t = clock()
            jax.block_until_ready(fn(*args))
            times[name].append(clock() - t)
            loads[name].append(os.getloadavg()[0])
    return {name: (statistics.median(ts), min(ts), max(ts), statistics.mean(loads[name])) for name, ts in times.items()}


def gemm_job(X, K: int):
    """The first layer's GEMM shape, (n × 784) @ (784 × 30K), float32, jitted; and its GFLOP."""
    import jax
    import jax.numpy as jnp

    W = jnp.asarray(np.random.default_rng(0).standard_normal((X.shape[1], SIZES[1] * K)), jnp.float32)
    return (jax.jit(lambda a, b: a @ b), lambda r: (X, W)), 2 * X.shape[0] * X.shape[1] * W.shape[1] / 1e9


def stack(K: int, n: int):
    """K identical 784-30-10 models (λ = 5, η = 0.5), the data order of seed 0."""
    import jax
    import jax.numpy as jnp

    from l2reg.core import network
    from l2reg.core.network import NetworkSpec
    from l2reg.core.update import OptimizerSpec, make_hyper

    spec = NetworkSpec(SIZES)
    params = network.stack([network.init_params(spec, jax.random.PRNGKey(0))], repeats=K)
    hyper = make_hyper(np.full(K, ETA), np.full(K, LMBDA), np.full(K, float(N_FULL)))
    data = dict(idx=jnp.arange(n, dtype=jnp.int32)[None], valid=jnp.ones((1, n), bool),
                keys=jax.random.PRNGKey(1)[None], active=jnp.ones(K, bool))
    return spec, OptimizerSpec(), params, hyper, data


def lean_epoch(params, hyper, X, Y, idx, valid, keys, epoch_no, *, spec, opt, m):
    """The per-step epoch with nothing to mask (one stream, K active models, n a multiple of m)."""
    import jax
    import jax.numpy as jnp
    import optax

    from l2reg.core import engine, network
    from l2reg.core.update import make_optimizer

    b_idx, _ = engine.shuffle(keys, epoch_no, idx, valid, m)
    optimizer = make_optimizer(opt, hyper)

    def loss(p, x, y):
        z = network.logits(spec, p, x)  # (m, K, n_out)
        t = network.targets(spec, y, spec.sizes[-1])[:, None]
        return jnp.sum(jnp.mean(network.cost_per_example(spec, z, t), axis=0))

    def step(carry, bi):
        p, s = carry
        u, s = optimizer.update(jax.grad(loss)(p, X[bi[0]], Y[bi[0]]), s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), b_idx)
    return params


def contender(kind: str, K: int, B: int, X, Y):
    """``(fn, make_args)`` of one epoch of K models: ``per-step``, ``lean`` or ``blocked`` (with B)."""
    import jax

    from l2reg.core import blocked, engine
    from l2reg.core.update import make_optimizer

    spec, opt, params, hyper, d = stack(K, X.shape[0])
    if kind == "per-step":
        fn = jax.jit(partial(engine.epoch, stepper=engine.Stepper(spec, opt, engine.Layout(1, K)), m=M))
        state = make_optimizer(opt, hyper).init(params)
        args = lambda r: (params, state, hyper, X, Y, d["idx"], d["valid"], d["keys"], r, d["active"])  # noqa: E731
    elif kind == "lean":
        fn = jax.jit(partial(lean_epoch, spec=spec, opt=opt, m=M))
        args = lambda r: (params, hyper, X, Y, d["idx"], d["valid"], d["keys"], r)  # noqa: E731
    else:
        def fn(params, hyper, X, Y, idx, valid, keys, epoch_no, active):
            batches = engine.shuffle(keys, epoch_no, idx, valid, M)
            return blocked.blocked_epoch(params, hyper, X, Y, batches, active, spec=spec, opt=opt, L=K, block=B)

        fn = jax.jit(fn)
        args = lambda r: (params, hyper, X, Y, d["idx"], d["valid"], d["keys"], r, d["active"])  # noqa: E731
    return fn, args


def run_list(jobs, X, Y, repeats: int, clock=time.perf_counter) -> list[dict]:
    """Seconds per model-epoch of each ``(kind, K, B)`` (``kind`` ``gemm``: seconds per GEMM), interleaved."""
    built = {i: gemm_job(X, K)[0] if kind == "gemm" else contender(kind, K, B, X, Y)
             for i, (kind, K, B) in enumerate(jobs)}
    med = interleaved_medians(built, repeats, clock)
    per = {i: 1 if kind == "gemm" else K for i, (kind, K, B) in enumerate(jobs)}
    return [dict(kind=kind, K=K, B=B, seconds=med[i][0] / per[i], spread=[med[i][1] / per[i], med[i][2] / per[i]],
                 load=med[i][3]) for i, (kind, K, B) in enumerate(jobs)]


def in_child(prefix: list[str], jobs, args) -> list[dict]:
    """``run_list`` in a fresh process started under ``prefix`` (XLA flags are read at start-up)."""
    cmd = prefix + [sys.executable, __file__, "--worker", json.dumps(jobs), "--n", str(args.n),
                    "--repeats", str(args.repeats)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def threading_rows(jobs, args) -> list[dict]:
    """``jobs`` in one child per variant of ``VARIANTS``, the children in turn, ``args.child_rounds`` times."""
    runs = {}
    for r in range(args.child_rounds):
        for name, prefix in VARIANTS.items():
            print(f"  ... round {r + 1}: {name}", flush=True)
            for row in in_child(prefix, jobs, args):
                runs.setdefault((name, row["kind"], row["K"], row["B"]), []).append(row)
    return [dict(rs[0], variant=name, seconds=statistics.median(x["seconds"] for x in rs),
                 spread=[min(x["spread"][0] for x in rs), max(x["spread"][1] for x in rs)],
                 load=statistics.mean(x["load"] for x in rs)) for (name, *_), rs in runs.items()]


def table(rows, gemm, n) -> None:
    """The rows as a Markdown table; a child's row is compared with the ``default`` child's per-step epoch."""
    flop = GFLOP_PER_MODEL_EPOCH * n / N_FULL
    ref = {(r.get("variant") and "default", r["K"]): r["seconds"] for r in rows
           if r["kind"] == "per-step" and r.get("variant") in (None, "default")}
    print(f"| K | contender | s / model-epoch (n = {n}) | min–max | GFLOP/s | % of GEMM | per-step ÷ this | load |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        label = f"blocked B={r['B']}" if r["kind"] == "blocked" else r["kind"]
        label += f" ({r['variant']})" if r.get("variant") else ""
        g = flop / r["seconds"]
        lo, hi = r["spread"]
        print(f"| {r['K']} | {label} | {r['seconds']:.4f} | {lo:.4f}–{hi:.4f} | {g:.0f} "
              f"| {100 * g / gemm[r['K']]:.0f}% "
              f"| {ref[(r.get('variant') and 'default', r['K'])] / r['seconds']:.2f}× | {r['load']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (else $L2REG_DATA)")
    ap.add_argument("--n", type=int, default=N_FULL, help="training images used (the first n)")
    ap.add_argument("--ks", default="1,16,64", help="numbers of models trained at once")
    ap.add_argument("--blocks", default="5,10,20,40", help="values of B for the blocked epoch")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (medians reported)")
    ap.add_argument("--lean", action="store_true", help="also the lean per-step epoch at K = 1")
    ap.add_argument("--threading", action="store_true", help="also per-step, lean and best blocked in child "
                    "processes: as they are, with one Eigen thread, and with taskset -c 0")
    ap.add_argument("--threading-ks", default="1,16", help="the K of --threading")
    ap.add_argument("--child-rounds", type=int, default=2, help="rounds of the --threading children")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: this process's CPU time "
                    "(robust to other jobs' load when the process is pinned to one core: taskset -c 0)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    X, Y = load(args.data_dir, args.n)
    if args.worker:
        print(json.dumps(run_list(json.loads(args.worker), X, Y, args.repeats)))
        return
    ks, blocks = [int(k) for k in args.ks.split(",")], [int(b) for b in args.blocks.split(",")]
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {len(os.sched_getaffinity(0))} of {os.cpu_count()} cores, "
          f"{args.clock} clock, n = {args.n}, "
          f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    jobs = [(kind, K, B) for K in ks for kind, B in [("gemm", 0), ("per-step", 0)] + [("blocked", b) for b in blocks]]
    jobs += [("lean", 1, 0)] if args.lean and 1 in ks else []
    rows = run_list(jobs, X, Y, args.repeats, time.process_time if args.clock == "cpu" else time.perf_counter)
    gemm = {r["K"]: gemm_job(X, r["K"])[1] / r["seconds"] for r in rows if r["kind"] == "gemm"}
    rows = [r for r in rows if r["kind"] != "gemm"]
    per_step = {r["K"]: r["seconds"] for r in rows if r["kind"] == "per-step"}
    best = {K: min((r for r in rows if r["K"] == K and r["kind"] == "blocked"), key=lambda r: r["seconds"])
            for K in ks}
    if args.threading:
        tks = [int(k) for k in args.threading_ks.split(",") if int(k) in ks]
        child = [("per-step", K, 0) for K in tks] + [("blocked", K, best[K]["B"]) for K in tks]
        rows += threading_rows(child + ([("lean", 1, 0)] if args.lean and 1 in tks else []), args)
    for K in ks:
        print(f"GEMM ({args.n} × 784) @ (784 × {30 * K}): {gemm[K]:.0f} GFLOP/s")
    table(rows, gemm, args.n)
    for K in ks:
        print(f"K = {K}: best B = {best[K]['B']}, {per_step[K] / best[K]['seconds']:.2f}× the per-step epoch, "
              f"{100 * GFLOP_PER_MODEL_EPOCH * args.n / N_FULL / best[K]['seconds'] / gemm[K]:.0f}% of GEMM")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M"), "n": args.n, "gemm_gflops": gemm, "rows": rows,
                       "load_average_end": os.getloadavg()}, f, indent=2)


if __name__ == "__main__":
    main()
