"""Benchmark of the training engine (issue 2): seconds per model-epoch, side by side.

Configuration (network2's): 784-30-10, sigmoid, cross-entropy, m = 10, η = 0.5,
λ = 5.0, n = 50,000 MNIST images. In one run it measures

* l2reg (JAX + optax, jit + lax.scan), K = 1, 16 and 64 models at once;
* scikit-learn's MLPClassifier at the same settings (solver sgd, batch 10,
  logistic, no momentum, α = λ·m/n since under sgd scikit-learn divides its
  penalty by the batch size);
* a per-example NumPy implementation of the update, in the style of network2;
* a large float32 matrix multiply (the machine's reference rate).

One model-epoch of this configuration is about 4.85 GFLOP (forward
2·n·(784·30 + 30·10) ≈ 2.4, weight gradients about as much again).

    python bench/bench_train.py --data-dir ../shared/data [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings

import numpy as np

# Forward 2·n·(784·30 + 30·10), backward the same again for the weight gradients,
# plus the hidden layer's input gradient; the first layer needs none. The issue
# rounds this to 4.85 GFLOP; we use that figure.
GFLOP_PER_MODEL_EPOCH = 4.85
SIZES = (784, 30, 10)
M, ETA, LMBDA = 10, 0.5, 5.0


def matmul_gflops(n: int = 2048, reps: int = 7) -> dict:
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).random((n, n), dtype=np.float32))
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f(a).block_until_ready()
        ts.append(time.perf_counter() - t)
    b = np.asarray(a)
    b @ b
    tn = []
    for _ in range(reps):
        t = time.perf_counter()
        b @ b
        tn.append(time.perf_counter() - t)
    flop = 2 * n**3 / 1e9
    return {"jax": flop / statistics.median(ts), "numpy": flop / statistics.median(tn)}


def bench_l2reg(X, y, K: int, epochs: int) -> float:
    """Median seconds per epoch for K models (compilation excluded)."""
    from l2reg.network import NetworkSpec
    from l2reg.train import fit_stack

    r = fit_stack(
        NetworkSpec(SIZES), X, y, groups=[np.arange(len(X))], group_seeds=[0],
        lmbda=np.full(K, LMBDA), eta=np.full(K, ETA), epochs=epochs, batch_size=M, monitor=(),
    )
    return statistics.median(r.epoch_seconds)


def bench_sklearn(X, y, epochs: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(30,), activation="logistic", solver="sgd", batch_size=M,
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


def numpy_network2_epoch(ws, bs, X, y, rng, n_examples=None):
    """network2.py's loop: shuffle, mini-batches, backprop one example at a time (column vectors)."""
    n = len(X)
    order = rng.permutation(n)[:n_examples]
    eye = np.eye(10)
    for k in range(0, len(order), M):
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
            delta = a - eye[y[i]].reshape(-1, 1)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (else $L2REG_DATA)")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per contender (median reported)")
    ap.add_argument("--ks", default="1,16,64", help="numbers of models trained at once by l2reg")
    ap.add_argument("--skip-slow", action="store_true", help="skip scikit-learn and NumPy")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    from l2reg.data import load_dataset

    data = load_dataset("mnist", args.data_dir)
    X, y = data.X_train, data.y_train
    rows = {}
    mm = matmul_gflops()
    for K in [int(k) for k in args.ks.split(",")]:
        s = bench_l2reg(X, y, K, args.epochs)
        rows[f"l2reg K={K}"] = s / K
    if not args.skip_slow:
        rows["scikit-learn MLPClassifier"] = bench_sklearn(X, y, args.epochs)
        rows["NumPy per-example (network2 style)"] = bench_numpy(X, y, max(1, args.epochs - 1))
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average": __import__("os").getloadavg(),
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "matmul_gflops": mm,
        "seconds_per_model_epoch": rows,
    }
    ref = rows["l2reg K=1"]
    print(f"{result['date']}, {result['machine']}, load average {result['load_average'][0]:.1f} at the end")
    print(f"float32 2048² matmul: JAX {mm['jax']:.0f} GFLOP/s, NumPy {mm['numpy']:.0f} GFLOP/s")
    print("| contender | s / model-epoch | GFLOP/s | % of matmul | vs l2reg K=1 |")
    print("|---|---:|---:|---:|---:|")
    for name, s in rows.items():
        g = GFLOP_PER_MODEL_EPOCH / s
        print(f"| {name} | {s:.4f} | {g:.1f} | {100 * g / mm['jax']:.0f}% | {s / ref:.2f}× |")
    for name in ("scikit-learn MLPClassifier", "NumPy per-example (network2 style)"):
        if name in rows:
            for k in [k for k in rows if k.startswith("l2reg")]:
                print(f"{k} is {rows[name] / rows[k]:.1f}× faster per model-epoch than {name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
