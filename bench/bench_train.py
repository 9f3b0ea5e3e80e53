"""Benchmark of the training engine (issues 2 and 15): seconds per model-epoch, side by side in one run.

Configuration (network2's): 784-30-10, sigmoid, cross-entropy, m = 10, η = 0.5,
λ = 5.0, the first n MNIST training images (default all 50,000). In one run,
for ``--rounds`` rounds (medians over the rounds; each l2reg contender's
number in a round is the median of its ``--epochs`` epochs, compilation
excluded), it measures

* l2reg's engine for K = 1, 16 and 64 models at once (``--ks``), each in a
  fresh child process so that the command line's one-core pinning
  (:func:`l2reg.base.cores.one_core_for`, effective only before JAX's first
  computation) applies where it should and nowhere else:

  - ``per-step`` (``L2REG_ENGINE=per-step``: today's engine, W1 written every step),
  - ``blocked`` (``L2REG_ENGINE=blocked``: :mod:`l2reg.core.blocked`, the default for K ≥ 4),
  - for K = 1 also the single model as the command line runs it
    (``l2reg train ... --lmbda 5``: pinned to one core, the default path),
    beside the library's ``l2reg.fronts.training.train`` (both cores);

* the float32 GEMM rate of this machine in the same run: the 2048² matmul
  (JAX and NumPy) and the first layer's tall shape (n × 784) @ (784 × 30·K)
  that ``bench/bench_blocked.py`` uses, the reference for "% of GEMM";
* scikit-learn's MLPClassifier at the same settings (solver sgd, batch 10,
  logistic, no momentum, α = λ·m/n since under sgd scikit-learn divides its
  penalty by the batch size);
* a per-example NumPy implementation of the update, in the style of network2.

One model-epoch is about 4.85 GFLOP at n = 50,000 (forward 2·n·(784·30 +
30·10) ≈ 2.4, the weight gradients about as much again), scaled by n/50,000.

Targets (issue 15): 16 λ at once ≥ 2× faster per model-epoch than the
per-step engine and ≥ 45 % (goal 50 %) of the GEMM rate; a single model
≥ 8× (goal 10×) MLPClassifier, as the command line runs it and as the library does.

    python bench/bench_train.py --data-dir ../shared/data [--rounds 3 --epochs 3 --ks 1,16,64] [--json out.json]
    python bench/bench_train.py --data-dir ../shared/data --quick      # smoke run: n = 2,000, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

from _common import clean_env, header, l2reg_command, load, load1, machine, median, run_json, verdict

GFLOP_PER_MODEL_EPOCH = 4.85  # at n = 50,000
SIZES = (784, 30, 10)
M, ETA, LMBDA, N_FULL = 10, 0.5, 5.0, 50_000
MLP = "scikit-learn MLPClassifier"
NUMPY = "NumPy per-example (network2 style)"


# ---------------------------------------------------------------- the l2reg contenders (child processes)


def contenders(ks) -> list[dict]:
    """The l2reg contenders: ``name``, ``K``, ``engine`` (``L2REG_ENGINE``) and ``how`` (library or cli)."""
    rows = []
    for K in ks:
        rows.append(dict(name=f"l2reg K={K} per-step", K=K, engine="per-step", how="library"))
        rows.append(dict(name=f"l2reg K={K} blocked", K=K, engine="blocked", how="library"))
        if K == 1:
            rows.append(dict(name="l2reg K=1 CLI (one core)", K=1, engine="auto", how="cli"))
    return rows


def worker(spec: dict) -> dict:
    """In the child: train K identical models with ``l2reg.fronts.training.train``; the epochs' seconds."""
    import dataclasses

    from l2reg.core import engine
    from l2reg.data import load_dataset
    from l2reg.fronts.training import train
    from l2reg.core.update import OptimizerSpec, make_hyper

    K, n = spec["K"], spec["n"]
    data = load_dataset("mnist", spec["data_dir"])
    data = dataclasses.replace(data, X_train=data.X_train[:n], y_train=data.y_train[:n])
    r = train(dataset=data, lmbda=[LMBDA] * K, eta=ETA, epochs=spec["epochs"], batch_size=M, sizes=SIZES,
              init="default", seed=[0], monitor=())
    block = engine.choose_block(OptimizerSpec(), make_hyper(np.full(K, ETA), np.full(K, LMBDA), np.full(K, float(n))), K)
    return {"epoch_seconds": list(r.epoch_seconds), "compile_seconds": r.compile_seconds, "block": block,
            "cores": len(os.sched_getaffinity(0))}


def run_library(c: dict, args) -> dict:
    spec = {"K": c["K"], "n": args.n, "epochs": args.epochs, "data_dir": args.data_dir}
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    return run_json(cmd, env=clean_env(L2REG_ENGINE=c["engine"]))


def run_cli(c: dict, args) -> dict:
    """``l2reg train`` as a user runs it (K < 4: pinned to one core); the epochs' seconds from metrics.json."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        cmd = l2reg_command() + ["train", "--dataset", "mnist", "--train-size", str(args.n), "--sizes",
                                 ",".join(map(str, SIZES)), "--batch-size", str(M), "--eta", str(ETA), "--lmbda",
                                 ",".join([str(LMBDA)] * c["K"]), "--epochs", str(args.epochs), "--monitor", "",
                                 "--out", out, "--overwrite", "-q"]
        cmd += ["--data-dir", args.data_dir] if args.data_dir else []
        done = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        with open(os.path.join(out, "metrics.json")) as f:
            m = json.load(f)
    return {"epoch_seconds": m["epoch_seconds"], "compile_seconds": m["compile_seconds"], "block": None, "cores": None}


# ---------------------------------------------------------------- the references (this process)


def matmul_gflops(n: int = 2048, reps: int = 7) -> dict:
    """The float32 n² matmul rate, JAX (jitted) and NumPy, GFLOP/s (median of ``reps``)."""
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).random((n, n), dtype=np.float32))
    f = jax.jit(lambda x: x @ x)
    b = np.asarray(a)
    flop = 2 * n**3 / 1e9
    return {"jax": flop / _median_time(lambda: f(a).block_until_ready(), reps),
            "numpy": flop / _median_time(lambda: b @ b, reps)}


def tall_gemm_gflops(X, K: int, reps: int = 5) -> float:
    """The first layer's shape, (n × 784) @ (784 × 30K), float32, jitted (bench_blocked.py's reference)."""
    import jax
    import jax.numpy as jnp

    Xd = jnp.asarray(X, jnp.float32)
    W = jnp.asarray(np.random.default_rng(0).standard_normal((X.shape[1], SIZES[1] * K)), jnp.float32)
    f = jax.jit(lambda a, b: a @ b)
    return 2 * X.shape[0] * X.shape[1] * W.shape[1] / 1e9 / _median_time(lambda: f(Xd, W).block_until_ready(), reps)


def _median_time(fn, reps: int) -> float:
    fn()  # compile / warm up
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench_sklearn(X, y, epochs: int) -> float:
    """Median seconds of one MLPClassifier epoch (``partial_fit`` after a first one-iteration ``fit``)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(SIZES[1],), activation="logistic", solver="sgd", batch_size=M,
        learning_rate_init=ETA, momentum=0.0, nesterovs_momentum=False, alpha=LMBDA * M / len(X),
        max_iter=1, shuffle=True, random_state=0, tol=0.0, n_iter_no_change=10**9,
    )
    ts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(epochs):
            t = time.perf_counter()
            clf.partial_fit(X, y, classes=np.arange(10)) if ts else clf.fit(X, y)
            ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_network2_epoch(ws, bs, X, y, rng):
    """network2.py's loop: shuffle, mini-batches, backprop one example at a time (column vectors)."""
    n = len(X)
    order = rng.permutation(n)
    eye = np.eye(SIZES[-1])
    for k in range(0, n, M):
        batch = order[k : k + M]
        nw = [np.zeros_like(w) for w in ws]
        nb = [np.zeros_like(b) for b in bs]
        for i in batch:
            a = X[i].reshape(-1, 1)
            acts, zs = [a], []
            for w, b in zip(ws, bs):
                z = w @ a + b
                zs.append(z)
                a = _sigmoid(z)
                acts.append(a)
            delta = a - eye[y[i]].reshape(-1, 1)  # cross-entropy with sigmoid outputs
            nb[-1] += delta
            nw[-1] += delta @ acts[-2].T
            for layer in range(2, len(SIZES)):
                sp = _sigmoid(zs[-layer]) * (1 - _sigmoid(zs[-layer]))
                delta = (ws[-layer + 1].T @ delta) * sp
                nb[-layer] += delta
                nw[-layer] += delta @ acts[-layer - 1].T
        ws = [(1 - ETA * LMBDA / n) * w - (ETA / len(batch)) * g for w, g in zip(ws, nw)]
        bs = [b - (ETA / len(batch)) * g for b, g in zip(bs, nb)]
    return ws, bs


def bench_numpy(X, y, epochs: int) -> float:
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(o, i)) / np.sqrt(i) for i, o in zip(SIZES[:-1], SIZES[1:])]
    bs = [rng.normal(size=(o, 1)) for o in SIZES[1:]]
    X64 = X.astype(np.float64)
    ts = []
    for _ in range(epochs):
        t = time.perf_counter()
        ws, bs = numpy_network2_epoch(ws, bs, X64, y, rng)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


# ---------------------------------------------------------------- one run


def measure(args, X, y, ks) -> tuple[dict, dict]:
    """``--rounds`` rounds of every contender in turn; per contender its seconds per model-epoch and loads.

    Returns ``(samples, refs)``: ``samples[name]`` a list of ``(s/model-epoch, load, extra)`` per
    round; ``refs`` the GEMM rates (lists per round).
    """
    samples: dict[str, list] = {}
    refs: dict[str, list] = {}

    def add(name, seconds, extra=None):
        samples.setdefault(name, []).append((seconds, load1(), extra or {}))
        print(f"  {name:36s} {seconds:8.4f} s/model-epoch  ({load()})", flush=True)

    for r in range(args.rounds):
        print(f"round {r + 1} of {args.rounds}", flush=True)
        mm = matmul_gflops()
        refs.setdefault("matmul 2048² JAX", []).append(mm["jax"])
        refs.setdefault("matmul 2048² NumPy", []).append(mm["numpy"])
        for K in ks:
            refs.setdefault(f"tall GEMM K={K}", []).append(tall_gemm_gflops(X, K))
        print(f"  GEMM: 2048² JAX {mm['jax']:.0f}, NumPy {mm['numpy']:.0f} GFLOP/s; tall "
              + ", ".join(f"K={K} {refs[f'tall GEMM K={K}'][-1]:.0f}" for K in ks) + f" GFLOP/s  ({load()})",
              flush=True)
        for c in contenders(ks):
            out = run_cli(c, args) if c["how"] == "cli" else run_library(c, args)
            add(c["name"], median(out["epoch_seconds"]) / c["K"],
                {"compile_seconds": out["compile_seconds"], "block": out["block"], "cores": out["cores"]})
        if not args.skip_slow:
            add(MLP, bench_sklearn(X, y, args.epochs))
            add(NUMPY, bench_numpy(X, y, max(1, args.epochs - 1)))
    return samples, refs


def summarize(samples: dict, refs: dict, ks, n: int) -> list[dict]:
    """One row per contender: medians over the rounds, rates, and the ratios of the same run."""
    flop = GFLOP_PER_MODEL_EPOCH * n / N_FULL
    mm = median(refs["matmul 2048² JAX"])
    rows = []
    for name, got in samples.items():
        s = median([g[0] for g in got])
        K = next((c["K"] for c in contenders(ks) if c["name"] == name), None)
        row = {"name": name, "K": K, "seconds": s, "spread": [min(g[0] for g in got), max(g[0] for g in got)],
               "load": statistics.mean(g[1] for g in got), "gflops": flop / s,
               "pct_matmul": 100 * flop / s / mm, "extra": got[-1][2]}
        if K is not None:
            row["pct_tall_gemm"] = 100 * flop / s / median(refs[f"tall GEMM K={K}"])
            row["per_step_over_this"] = median([g[0] for g in samples[f"l2reg K={K} per-step"]]) / s
        if MLP in samples:
            row["mlp_over_this"] = median([g[0] for g in samples[MLP]]) / s
        if NUMPY in samples:
            row["numpy_over_this"] = median([g[0] for g in samples[NUMPY]]) / s
        rows.append(row)
    return rows


def print_table(rows, refs, n: int) -> None:
    print("\n| contender | s / model-epoch (n = %d) | min–max | GFLOP/s | %% of tall GEMM | %% of 2048² "
          "| per-step ÷ this | MLPClassifier ÷ this | NumPy ÷ this | load |" % n)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    fmt = lambda row, key, f: f.format(row[key]) if key in row else "—"  # noqa: E731
    for r in rows:
        lo, hi = r["spread"]
        print(f"| {r['name']} | {r['seconds']:.4f} | {lo:.4f}–{hi:.4f} | {r['gflops']:.1f} "
              f"| {fmt(r, 'pct_tall_gemm', '{:.0f}%')} | {r['pct_matmul']:.0f}% "
              f"| {fmt(r, 'per_step_over_this', '{:.2f}×')} | {fmt(r, 'mlp_over_this', '{:.1f}×')} "
              f"| {fmt(r, 'numpy_over_this', '{:.1f}×')} | {r['load']:.1f} |")
    print("GEMM rates (GFLOP/s, median over the rounds): "
          + ", ".join(f"{k} {median(v):.0f}" for k, v in refs.items()))


def verdicts(rows) -> list[str]:
    """The issue's targets, each met or missed by how much (rows missing from this run are skipped)."""
    by = {r["name"]: r for r in rows}
    out = []
    b16 = by.get("l2reg K=16 blocked")
    if b16 is not None:
        out.append(verdict("16 λ at once, blocked: per-step (today's engine) ÷ blocked, per model-epoch",
                           b16["per_step_over_this"], 2.0))
        out.append(verdict("16 λ at once, blocked: % of the tall (n × 784) @ (784 × 480) GEMM rate",
                           b16["pct_tall_gemm"], 45, goal=50, unit="%"))
        out.append(f"  (against the 2048² matmul instead: {b16['pct_matmul']:.0f}%)")
    for name, what in (("l2reg K=1 CLI (one core)", "as the command line runs it, one core"),
                       ("l2reg K=1 per-step", "as the library runs it, both cores")):
        if name in by and "mlp_over_this" in by[name]:
            out.append(verdict(f"a single model {what}: MLPClassifier ÷ l2reg, per epoch",
                               by[name]["mlp_over_this"], 8.0, goal=10.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Every timing is printed with the load average; run on a quiet machine.")
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (else $L2REG_DATA)")
    ap.add_argument("--n", type=int, default=N_FULL, help="training images used (the first n; default 50,000)")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per l2reg and MLPClassifier run (median)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of all contenders in turn (medians over them)")
    ap.add_argument("--ks", default="1,16,64", help="numbers of models trained at once by l2reg")
    ap.add_argument("--skip-slow", action="store_true", help="skip scikit-learn and NumPy")
    ap.add_argument("--quick", action="store_true", help="smoke run: n = 2,000, 2 epochs, 1 round, K = 1,16")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.quick:
        args.n, args.epochs, args.rounds, args.ks = min(args.n, 2000), 2, 1, "1,16"
    ks = [int(k) for k in args.ks.split(",")]

    from l2reg.data import load_dataset

    data = load_dataset("mnist", args.data_dir)
    X, y = data.X_train[: args.n], data.y_train[: args.n]
    print(header(f"n = {len(X)}, {args.epochs} epochs × {args.rounds} round(s), K = {ks}"), flush=True)
    samples, refs = measure(args, X, y, ks)
    rows = summarize(samples, refs, ks, len(X))
    print_table(rows, refs, len(X))
    lines = verdicts(rows)
    print("\nTargets (issue 15):")
    for line in lines:
        print(line)
    if args.quick:
        print("QUICK smoke run (small n, one round): the numbers above say nothing about the targets.")
    print(f"({load()} at the end)")
    if args.json:
        result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "n": len(X),
                  "epochs": args.epochs, "rounds": args.rounds, "ks": ks, "quick": args.quick,
                  "gemm_gflops": {k: median(v) for k, v in refs.items()}, "gemm_rounds": refs, "rows": rows,
                  "samples": samples, "verdicts": lines, "load_average_end": os.getloadavg()}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
