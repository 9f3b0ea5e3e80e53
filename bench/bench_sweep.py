"""Benchmark of choosing λ by cross-validation (issue 3): l2reg's vectorized sweep against GridSearchCV.

The task: MNIST's first 1,000 training images, 784-30-10 sigmoid network,
cross-entropy, m = 10, η = 0.5, 100 epochs, 16 λ (0 plus 15 log-spaced
values, λ/n from 1e-5 to 3e-2) × 5 stratified folds (shuffled, seed 0; the
same folds for every contender), then a refit of the chosen λ on all 1,000
images and its accuracy on the 10,000 test images. In one run it measures

* ``l2reg sweep`` (the command, as a user runs it: process start, data,
  compilation, the 80 models in one vectorized run, the refit, the report);
  also with ``--monitor ''`` (no per-epoch validation of the 80 CV models);
* scikit-learn ``GridSearchCV(MLPClassifier(solver="sgd", batch_size=10,
  learning_rate_init=0.5, momentum=0, activation="logistic",
  alpha=λ·m/n_fold), n_jobs=2)`` over the 16 equivalent α (scikit-learn
  divides its penalty by the batch size, so α = λ·m/n gives the same decay);
* ``GridSearchCV(L2MLPClassifier(lmbda=...), n_jobs=2)``: one compiled
  network per fit;
* ``L2MLPClassifierCV``: the same grid, every λ × fold at once, in-process;
* a large float32 matrix multiply, the machine's reference rate.

The engine's effective rate counts 3 × 2 × (784·30 + 30·10) FLOP per example
and model (forward and backward multiply-adds) over the CV training only.

    python bench/bench_sweep.py --data-dir ../shared/data [--epochs 100] [--json out.json]

With ``--sklearn-epochs E`` (< epochs) the two GridSearchCV routes train E
epochs and their time is scaled by epochs/E; the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings


SIZES = (784, 30, 10)
M, ETA, N, FOLDS, SEED = 10, 0.5, 1000, 5, 0
FLOP_PER_EXAMPLE = 3 * 2 * (784 * 30 + 30 * 10)


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


def matmul_gflops() -> float:
    """The JAX float32 2048² matmul rate, as bench_train measures it."""
    from bench_train import matmul_gflops as probe  # bench/ is on sys.path when run as a script

    return probe()["jax"]


def run_cli_sweep(args, grid, monitor: str | None) -> dict:
    out = tempfile.mkdtemp(prefix="bench-sweep-")
    cmd = [sys.executable, "-m", "l2reg.cli", "sweep", "--dataset", "mnist", "--train-size", str(N),
           "--sizes", ",".join(map(str, SIZES)), "--batch-size", str(M), "--eta", str(ETA),
           "--epochs", str(args.epochs), "--folds", str(FOLDS), "--seed", str(SEED),
           "--lmbdas", ",".join(repr(x) for x in grid), "--out", out, "--overwrite", "-q"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if monitor is not None:
        cmd += ["--monitor", monitor]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t
    with open(os.path.join(out, "sweep.json")) as f:
        meta = json.load(f)
    chosen = next(r for r in meta["rows"] if r["chosen"])
    n_fold = meta["config"]["n_fold"]
    flop = sum(n_fold) * len(grid) * args.epochs * FLOP_PER_EXAMPLE
    return {
        "wall_seconds": wall, "chosen_lmbda": meta["chosen_lmbda"], "test_accuracy": chosen["test_accuracy"],
        "cv_train_seconds": meta["cv_train_seconds"], "compile_seconds": meta["compile_seconds"],
        "train_seconds": meta["train_seconds"], "cv_gflops": flop / 1e9 / meta["cv_train_seconds"],
        "cv_accuracy": {r["lmbda"]: r["cv_accuracy_mean"] for r in meta["rows"]},
    }


def gridsearch_mlp(X, y, X_test, y_test, grid, folds, epochs: int, n_fold: int) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPClassifier

    mlp = MLPClassifier(
        hidden_layer_sizes=(30,), activation="logistic", solver="sgd", batch_size=M, learning_rate_init=ETA,
        momentum=0.0, nesterovs_momentum=False, max_iter=epochs, tol=0.0, n_iter_no_change=10**9,
        shuffle=True, random_state=SEED,
    )
    alphas = [lm * M / n_fold for lm in grid]
    gs = GridSearchCV(mlp, {"alpha": alphas}, cv=folds, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        gs.fit(X, y)
        wall = time.perf_counter() - t
    best = gs.best_params_["alpha"]
    return {"wall_seconds": wall, "chosen_lmbda": grid[alphas.index(best)], "chosen_alpha": best,
            "test_accuracy": float(gs.best_estimator_.score(X_test, y_test)),
            "cv_accuracy": dict(zip(grid, map(float, gs.cv_results_["mean_test_score"])))}


def gridsearch_ours(X, y, X_test, y_test, grid, folds, epochs: int) -> dict:
    from sklearn.model_selection import GridSearchCV

    from l2reg.sklearn import L2MLPClassifier

    est = L2MLPClassifier(hidden_layer_sizes=(30,), eta=ETA, batch_size=M, epochs=epochs, random_state=SEED)
    gs = GridSearchCV(est, {"lmbda": list(grid)}, cv=folds, n_jobs=2)
    t = time.perf_counter()
    gs.fit(X, y)
    wall = time.perf_counter() - t
    return {"wall_seconds": wall, "chosen_lmbda": gs.best_params_["lmbda"],
            "test_accuracy": float(gs.best_estimator_.score(X_test, y_test)),
            "cv_accuracy": dict(zip(grid, map(float, gs.cv_results_["mean_test_score"])))}


def cv_estimator(X, y, X_test, y_test, grid, folds, epochs: int) -> dict:
    from l2reg.sklearn import L2MLPClassifierCV

    est = L2MLPClassifierCV(lmbdas=list(grid), cv=folds, hidden_layer_sizes=(30,), eta=ETA, batch_size=M,
                            epochs=epochs, random_state=SEED)
    t = time.perf_counter()
    est.fit(X, y)
    wall = time.perf_counter() - t
    return {"wall_seconds": wall, "chosen_lmbda": est.lmbda_, "test_accuracy": float(est.score(X_test, y_test)),
            "cv_accuracy": dict(zip(grid, map(float, est.cv_results_["mean_test_score"])))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (else $L2REG_DATA)")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--sklearn-epochs", type=int, default=None,
                    help="train the GridSearchCV routes this many epochs and scale their time (says so)")
    ap.add_argument("--skip", default="", help="comma-separated: monitorless, mlp, ours, cv")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    from l2reg.data import load_dataset
    from l2reg.sweep import default_grid, make_folds

    data = load_dataset("mnist", args.data_dir, train_size=N, eval="test")
    X, y, X_test, y_test = data.X_train, data.y_train, data.X_test, data.y_test
    grid = default_grid(N, 15)
    folds = make_folds(y, FOLDS, SEED, True)
    n_fold = len(folds[0][0])
    sk_epochs = args.sklearn_epochs or args.epochs
    scale = args.epochs / sk_epochs

    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "load_before": os.getloadavg(),
              "epochs": args.epochs, "sklearn_epochs": sk_epochs, "grid": grid, "n_fold": n_fold}
    result["matmul_gflops_before"] = matmul_gflops()
    rows = {}
    rows["l2reg sweep"] = run_cli_sweep(args, grid, None)
    if "monitorless" not in skip:
        rows["l2reg sweep --monitor ''"] = run_cli_sweep(args, grid, "")
    if "cv" not in skip:
        rows["L2MLPClassifierCV (in-process)"] = cv_estimator(X, y, X_test, y_test, grid, folds, args.epochs)
    if "mlp" not in skip:
        r = gridsearch_mlp(X, y, X_test, y_test, grid, folds, sk_epochs, n_fold)
        r["measured_seconds"], r["wall_seconds"] = r["wall_seconds"], r["wall_seconds"] * scale
        rows["GridSearchCV(MLPClassifier), n_jobs=2"] = r
    if "ours" not in skip:
        r = gridsearch_ours(X, y, X_test, y_test, grid, folds, sk_epochs)
        r["measured_seconds"], r["wall_seconds"] = r["wall_seconds"], r["wall_seconds"] * scale
        rows["GridSearchCV(L2MLPClassifier), n_jobs=2"] = r
    result["matmul_gflops_after"] = matmul_gflops()
    result["load_after"] = os.getloadavg()
    result["rows"] = rows

    mm = statistics.mean([result["matmul_gflops_before"], result["matmul_gflops_after"]])
    print(f"{result['date']}, {result['machine']}; load average before {result['load_before'][0]:.1f}, "
          f"after {result['load_after'][0]:.1f}")
    print(f"float32 2048² matmul (JAX): {result['matmul_gflops_before']:.0f} GFLOP/s before, "
          f"{result['matmul_gflops_after']:.0f} after")
    if scale != 1:
        print(f"NOTE: the GridSearchCV routes trained {sk_epochs} epochs; their times are scaled ×{scale:g} "
              f"to {args.epochs} epochs (extrapolated, not measured).")
    ref = rows.get("GridSearchCV(MLPClassifier), n_jobs=2")
    print("| route | wall s | vs GridSearchCV(MLPClassifier) | chosen λ | test acc of chosen |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        if ref is None or r is ref:
            ratio = "1×"
        elif ref["wall_seconds"] >= r["wall_seconds"]:
            ratio = f"{ref['wall_seconds'] / r['wall_seconds']:.1f}× faster"
        else:
            ratio = f"{r['wall_seconds'] / ref['wall_seconds']:.1f}× slower"
        print(f"| {name} | {r['wall_seconds']:.1f} | {ratio} | {r['chosen_lmbda']:g} | "
              f"{100 * r['test_accuracy']:.2f}% |")
    for name in ("l2reg sweep", "l2reg sweep --monitor ''"):
        if name in rows:
            r = rows[name]
            print(f"{name}: CV training {r['cv_train_seconds']:.1f} s for {len(grid) * FOLDS} models "
                  f"= {r['cv_gflops']:.1f} GFLOP/s effective ({100 * r['cv_gflops'] / mm:.0f}% of the matmul rate); "
                  f"compiling {r['compile_seconds']:.1f} s, all training {r['train_seconds']:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=float)


if __name__ == "__main__":
    main()
