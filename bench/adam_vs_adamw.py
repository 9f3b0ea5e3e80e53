"""Adam with coupled L2 against AdamW (decoupled weight decay): does the best λ depend on η?

Loshchilov & Hutter ("Decoupled Weight Decay Regularization", ICLR 2019)
claim that with decoupled decay the best decay depends less on the learning
rate than with L2 in the cost under Adam. This script trains, on a subset of
Fashion-MNIST, a grid of learning rates η × decay values for three update
rules (each grid one vectorized stack, :func:`l2reg.core.engine.fit_stack`):

* ``adam``:            coupled L2, C = C0 + (λ/2n)·Σw², the penalty's gradient
                       goes through Adam's moments (PyTorch ``Adam(weight_decay=λ/n)``);
* ``adamw-lr``:        w ← w − η_t·(m̂/(√v̂+ε) + wd·w)   (PyTorch ``AdamW``, ``optax.adamw``);
* ``adamw-schedule``:  w ← w − η_t·m̂/(√v̂+ε) − wd·s_t·w  (the paper's form, s_t = η_t/η).

Same network, data, seed, initial weights and mini-batch order for every
cell; cosine learning-rate schedule (as in the paper); weights only decay.
Every grid includes 0 (no decay: the three rules then coincide). Reported per
cell: final-epoch test accuracy and test C0 (the mean log-likelihood cost,
without the penalty), and validation accuracy (the 10,000 images held out
of the training set), which is what a user would select on.

    python bench/adam_vs_adamw.py --data-dir ../shared/data [--train-size 5000 --epochs 30]
    python bench/adam_vs_adamw.py --data-dir ../shared/data --quick    # smoke run, into a temporary folder

Writes ``docs/adam_vs_adamw.png`` (heat maps) and ``docs/adam_vs_adamw.json``
(every number, the configuration, date and machine); ``--quick`` (500
images, 2 epochs, one seed) writes into a temporary folder unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import header, load

ETAS = [1e-3, 3e-3, 1e-2, 3e-2]
#: Decay grids, each 0 plus 5 values a factor √10 apart. Adam's is λ/n (×n gives λ).
GRIDS = {
    "adam": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
    "adamw-lr": [0.03, 0.1, 0.3, 1.0, 3.0],
    "adamw-schedule": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
}
LABELS = {
    "adam": "Adam + coupled L2: λ/n",
    "adamw-lr": "AdamW, decay × lr (PyTorch/optax): wd",
    "adamw-schedule": "AdamW, decay × schedule (paper): wd",
}


def run_case(name, data, spec, args) -> dict:
    from _common import fit_stack

    n = len(data.X_train)
    grid = [0.0] + GRIDS[name]
    E, D = (a.ravel() for a in np.meshgrid(ETAS, grid, indexing="ij"))  # (len(ETAS)·len(grid),), decay fastest
    kw = {"optimizer": "adam"} if name == "adam" else {
        "optimizer": "adamw", "weight_decay": D, "decay_scaling": name.split("-")[1]}
    lmbda = D * n if name == "adam" else np.zeros_like(D)
    t0 = time.perf_counter()
    seeds = [args.seed + i for i in range(args.seeds)]
    S = len(seeds)
    kw = {k: (np.tile(v, S) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    r = fit_stack(
        spec, data.X_train, data.y_train, groups=[np.arange(n)] * S, group_seeds=seeds, lmbda=np.tile(lmbda, S),
        eta=np.tile(E, S), epochs=args.epochs, batch_size=args.batch_size, schedule="cosine",
        eval_sets={"evaluation": (data.X_val, data.y_val, None), "test": (data.X_test, data.y_test, None)},
        monitor=("evaluation_accuracy", "evaluation_cost", "test_cost", "test_accuracy", "training_accuracy"), **kw,
    )
    seconds = time.perf_counter() - t0
    print(f"{name}: {len(E) * S} models, {seconds:.1f} s (compiling {r.compile_seconds:.1f} s)  ({load()})", flush=True)
    h = r.history
    shape = (S, len(ETAS), len(grid))
    # Final epoch, mean over the seeds: (η, decay). Costs are C0 (the penalty taken out).
    final = lambda key: np.mean(h[key][-1].reshape(shape), axis=0)  # noqa: E731
    pen = np.mean(h["penalty"][-1].reshape(shape), axis=0)
    # Seed-to-seed standard error of a cell's mean, averaged over the cells (S = 2 makes it rough).
    se = lambda a: float(np.mean(np.std(a.reshape(shape), axis=0, ddof=1)) / np.sqrt(S)) if S > 1 else None  # noqa: E731
    return {
        "se": {"test_accuracy": se(h["test_accuracy"][-1]), "test_c0": se(h["test_cost"][-1] - h["penalty"][-1]),
               "validation_c0": se(h["evaluation_cost"][-1] - h["penalty"][-1])},
        "grid": grid,
        "test_accuracy": final("test_accuracy").tolist(),
        "test_c0": (final("test_cost") - pen).tolist(),
        "validation_accuracy": final("evaluation_accuracy").tolist(),
        "validation_c0": (final("evaluation_cost") - pen).tolist(),
        "training_accuracy": final("training_accuracy").tolist(),
        "seeds": seeds,
        "seconds": seconds,
        "compile_seconds": r.compile_seconds,
    }


def dependence(score, grid, higher_is_better=True) -> dict:
    """How much the best decay moves with η, on the nonzero part of the grid (log-spaced).

    * ``best``: the best decay per η, refined between grid points by a
      parabola through the best cell and its neighbours in log(decay)
      (clipped to the grid's ends);
    * ``slope``: least-squares slope of log10(best decay) against
      log10(η): 0 means the best decay does not depend on η, 1 that it grows
      like η, −1 like 1/η;
    * ``regret``: mean over η of (best score at that η − score at the one
      decay that is best on average over η), in the score's units: the cost
      of having to pick one decay for every η;
    * ``gain_over_no_decay``: mean over η of (best score − score at decay 0).
    """
    sign = 1.0 if higher_is_better else -1.0
    full = sign * np.nan_to_num(np.asarray(score, np.float64), nan=-np.inf if higher_is_better else np.inf)
    s = full[:, 1:]  # (η, nonzero decay)
    x = np.log10(grid[1:])
    best = []
    for row in s:
        i = int(row.argmax())
        if 0 < i < len(row) - 1 and np.all(np.isfinite(row[i - 1 : i + 2])):
            y0, y1, y2 = row[i - 1 : i + 2]
            denom = y0 - 2 * y1 + y2
            off = 0.5 * (y0 - y2) / denom if denom < 0 else 0.0
            best.append(float(x[i] + np.clip(off, -0.5, 0.5) * (x[1] - x[0])))
        else:
            best.append(float(x[i]))
    slope = float(np.polyfit(np.log10(ETAS), best, 1)[0])
    common = int(s.mean(axis=0).argmax())
    return {
        "best": [float(10**b) for b in best],
        "best_cell": [grid[1 + int(i)] for i in s.argmax(axis=1)],
        "slope": slope,
        "common_best": grid[1 + common],
        "regret": float(np.mean(s.max(axis=1) - s[:, common])),
        "gain_over_no_decay": float(np.mean(s.max(axis=1) - full[:, 0])),
    }


def plot(results, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("test_accuracy", "test accuracy (%)", True), ("test_c0", "test C0 (log-likelihood)", False),
            ("validation_c0", "validation C0", False)]
    fig, axes = plt.subplots(len(rows), len(results), figsize=(4.6 * len(results), 3.9 * len(rows)),
                             constrained_layout=True)
    for j, (name, res) in enumerate(results.items()):
        for i, (key, label, higher) in enumerate(rows):
            ax = axes[i, j]
            a = np.asarray(res[key]) * (100 if key.endswith("accuracy") else 1)
            im = ax.imshow(a, origin="lower", aspect="auto", cmap="viridis" if higher else "viridis_r")
            best = np.argmax(a, axis=1) if higher else np.argmin(a, axis=1)
            for r in range(a.shape[0]):
                for c in range(a.shape[1]):
                    bright = (im.norm(a[r, c]) > 0.6) == higher  # yellow end of viridis(_r)
                    color = "r" if c == best[r] else ("k" if bright else "w")
                    ax.text(c, r, f"{a[r, c]:.1f}" if higher else f"{a[r, c]:.3f}", ha="center", va="center",
                            fontsize=7, color=color, fontweight="bold" if c == best[r] else None)
            ax.set_xticks(range(len(res["grid"])), [f"{g:g}" for g in res["grid"]], rotation=45, fontsize=7)
            ax.set_yticks(range(len(ETAS)), [f"{e:g}" for e in ETAS], fontsize=7)
            ax.set_xlabel(LABELS[name], fontsize=8)
            ax.set_ylabel("η (base learning rate)", fontsize=8)
            ax.set_title(f"{name}: {label}", fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title + "  (red: best decay per η, λ = 0 included)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _title(n, hidden, epochs, m) -> str:
    return f"Fashion-MNIST, n = {n:,}, 784-{hidden}-10 ReLU/softmax, {epochs} epochs, m = {m}, cosine schedule"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Takes minutes at the default size; every timing is printed with the load average.")
    ap.add_argument("--data-dir", default=os.environ.get("L2REG_DATA", "../shared/data"),
                    help="folder with the Fashion-MNIST IDX files")
    ap.add_argument("--train-size", type=int, default=5000, help="the first N training images")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=100, help="hidden units (784-H-10, ReLU, softmax)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=2, help="Seeds per cell (initial weights and data order), averaged.")
    ap.add_argument("--out", default=None, help="output folder (default docs; --quick: a temporary folder)")
    ap.add_argument("--replot", action="store_true", help="Redraw the PNG from OUT/adam_vs_adamw.json; no training.")
    ap.add_argument("--quick", action="store_true", help="smoke run: 500 images, 2 epochs, 1 seed, a temporary folder")
    args = ap.parse_args()
    if args.quick:
        args.train_size, args.epochs, args.seeds = min(args.train_size, 500), 2, 1
        args.out = args.out or tempfile.mkdtemp(prefix="adam-vs-adamw-")
    out = Path(args.out or "docs")
    if args.replot:
        saved = json.loads((out / "adam_vs_adamw.json").read_text())
        c = saved["config"]
        plot(saved["results"], out / "adam_vs_adamw.png", _title(c["train_size"], c["sizes"][1], c["epochs"],
                                                                  c["batch_size"]))
        return

    from l2reg.data import load_dataset
    from l2reg.core.network import NetworkSpec

    data = load_dataset("fashion-mnist", args.data_dir, train_size=args.train_size)
    print(header(f"n = {len(data.X_train)}, {args.epochs} epochs, {args.seeds} seed(s)"), flush=True)
    spec = NetworkSpec((784, args.hidden, 10), "relu", "log-likelihood")
    t0 = time.perf_counter()
    results = {name: run_case(name, data, spec, args) for name in GRIDS}
    total = time.perf_counter() - t0
    for name, res in results.items():
        res["dependence"] = {
            "test_accuracy": dependence(res["test_accuracy"], res["grid"]),
            "test_c0": dependence(res["test_c0"], res["grid"], higher_is_better=False),
            "validation_accuracy": dependence(res["validation_accuracy"], res["grid"]),
            "validation_c0": dependence(res["validation_c0"], res["grid"], higher_is_better=False),
        }
        print(f"{name} ({res['seconds']:.0f} s):")
        for key, d in res["dependence"].items():
            print(f"  {key:20s} best per η {['%.2g' % b for b in d['best']]}  slope {d['slope']:+.2f}  "
                  f"regret {d['regret']:.4f}  gain over no decay {d['gain_over_no_decay']:.4f}")
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "dataset": "fashion-mnist", "train_size": len(data.X_train), "n_validation": len(data.X_val),
        "n_test": len(data.X_test), "sizes": list(spec.sizes), "activation": spec.activation, "cost": spec.cost,
        "epochs": args.epochs, "batch_size": args.batch_size, "schedule": "cosine", "seeds": args.seeds, "etas": ETAS,
        "date": time.strftime("%Y-%m-%d"), "machine": f"{_cpu()}, {os.cpu_count()} cores", "total_seconds": total,
    }
    (out / "adam_vs_adamw.json").write_text(json.dumps({"config": config, "results": results}, indent=1))
    plot(results, out / "adam_vs_adamw.png", _title(len(data.X_train), args.hidden, args.epochs, args.batch_size))
    print(f"total {total:.0f} s ({load()}); wrote {out}/adam_vs_adamw.json and {out}/adam_vs_adamw.png")


if __name__ == "__main__":
    main()
