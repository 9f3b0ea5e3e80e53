"""l2reg.torch: a 16-λ ensemble against 16 ordinary PyTorch loops, against the JAX engine, and DecayMonitor.

Ensemble against loops (issue 20): for each model, the same initial weights,
data and batch order on both sides; batch 64, plain SGD with coupled L2 on
the weights (``decay_groups``, l2reg policy), λ from 0.1 to 100 (16 values),
every model evaluated on its training and validation rows after each epoch
(what a sweep records). The sequential side is the loop a PyTorch user
writes, one λ after another; the ensemble is ``train_ensemble`` with
``strategy="auto"`` (it measures its first steps each way and keeps the
fastest; ``--strategies auto,vmap,loop,chunked`` times the others too).

| model | data | target (× of the 16 loops) |
|---|---|---|
| ``examples/models.py:digits_cnn`` | digits, 1077 train + 360 validation rows | ≥ 1.0×, goal 1.5× |
| ``examples/models.py:mnist_cnn`` | the first ``--train-size`` MNIST images + ``--val-size`` | ≥ 1.0×, goal 1.5× |
| ``mlp`` (784-30-10, sigmoid) | MNIST, as above | ≥ 3× |
| ``examples/models.py:digits_bn_cnn`` (BatchNorm2d) | digits | ≥ 1.0× |

Against ``l2reg sweep``'s JAX engine (issue 11): the PyTorch vectorized
sweep of the seed's MLP (784-30-10, sigmoid hidden units, softmax +
cross-entropy, m = 10, η = 0.5, plain SGD with coupled L2) over ``--k`` λ ×
``--vs-jax-folds`` stratified folds of the training images, against the same
grid trained by the engine of ``l2reg sweep``
(:func:`l2reg.fronts.sweeping.cross_validate`, the same network and cost); both record
every model's training and validation cost and accuracy after each epoch.
Seconds per model-epoch (the epochs after the first, medians), with torch at
each of ``--vs-jax-threads`` threads; the ratio is reported as measured.

DecayMonitor: the same ordinary loop (one model) with and without a monitor
attached, recording every step (and every 10th), for plain SGD (closed-form
split) and SGD with momentum (split by a shadow step on clones).

Medians of ``--repeats`` runs; ratios are measured in the same run; the load
average is printed beside every timing. The ensemble and monitor parts take about
5 minutes, the comparison with the JAX engine 3 to 4 more (``--skip-vs-jax`` skips it):

    python bench/bench_torch.py --data-dir /work/shared/data
    python bench/bench_torch.py --data-dir /work/shared/data --skip-vs-jax --skip-monitor   # the issue-20 table
    python bench/bench_torch.py --data-dir /work/shared/data --quick     # smoke run, seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _common import cpu_name, load, verdict
from l2reg.data import load_dataset
from l2reg.torch import DecayMonitor, Member, decay_groups, epoch_order, fold_seeds, train_ensemble

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import models as examples  # noqa: E402  (examples/models.py, the factories the README sweeps)


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 10))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 30), nn.Sigmoid(), nn.Linear(30, 10))


#: name -> (factory, dataset, target, goal): the ensemble's speed-up over the 16 ordinary loops
MODELS = {
    "digits_cnn": (examples.digits_cnn, "digits", 1.0, 1.5),
    "mnist_cnn": (examples.mnist_cnn, "mnist", 1.0, 1.5),
    "mlp": (mlp, "mnist", 3.0, None),
    "digits_bn_cnn": (examples.digits_bn_cnn, "digits", 1.0, None),
    "cnn": (cnn, "mnist", None, None),  # the CNN of the issue-11 table ((1, 28, 28) images)
}


@torch.no_grad()
def _evaluate(model, X, y, rows, chunk=1024):
    model.eval()
    loss = correct = 0.0
    for s in range(0, len(rows), chunk):
        idx = torch.as_tensor(rows[s:s + chunk])
        out = model(X[idx])
        loss += float(F.cross_entropy(out, y[idx], reduction="sum"))
        correct += float((out.argmax(1) == y[idx]).sum())
    model.train()
    return loss / len(rows), correct / len(rows)


def ordinary_run(model_fn, X, y, *, lmbda, eta, train, val, seed, epochs, m, momentum=0.0, monitor=None):
    """The loop a PyTorch user writes for one λ; returns the model and the monitor (if any)."""
    torch.manual_seed(seed)
    model = model_fn()
    opt = torch.optim.SGD(decay_groups(model, lmbda / len(train)), lr=eta, momentum=momentum)
    mon = DecayMonitor(opt, model=model, **monitor) if monitor is not None else None
    for e in range(epochs):
        order = train[epoch_order(seed, len(train), e)]
        for i in range(0, len(order), m):
            idx = torch.as_tensor(order[i:i + m])
            opt.zero_grad()
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
        _evaluate(model, X, y, train)
        _evaluate(model, X, y, val)
    return model, mon


def bench_sweep(name, data, args) -> dict:
    """16 ordinary loops against the ensemble (each strategy of ``--strategies``), medians of ``--repeats``."""
    model_fn, _, target, goal = MODELS[name]
    X, y, train, val = data
    grid = np.geomspace(0.1, 100, args.k)
    seed = fold_seeds(args.seed, 1)[0]
    members = [Member(lmbda=float(lm), eta=args.eta) for lm in grid]
    strategies = args.strategies.split(",")
    times = {"sequential": [], **{s: [] for s in strategies}}
    cpu = {k: [] for k in times}  # process CPU time: what other jobs on a shared machine do not inflate
    lines = {}
    # warm-up, not timed: the first convolution, allocation and vmap of a process are slower than the rest
    ordinary_run(model_fn, X, y, lmbda=1.0, eta=args.eta, train=train[:4 * args.batch_size], val=val[:64],
                 seed=seed, epochs=1, m=args.batch_size)
    train_ensemble(model_fn, X[:4 * args.batch_size].numpy(), y[:4 * args.batch_size].numpy(), members=members[:4],
                   epochs=1, batch_size=args.batch_size, seed=[seed])
    for r in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        models = [ordinary_run(model_fn, X, y, lmbda=float(lm), eta=args.eta, train=train, val=val, seed=seed,
                               epochs=args.epochs, m=args.batch_size)[0] for lm in grid]
        times["sequential"].append(time.perf_counter() - t0)
        cpu["sequential"].append(time.process_time() - c0)
        print(f"  {name} repeat {r}: sequential {times['sequential'][-1]:7.2f} s  ({load()})", flush=True)
        for strategy in strategies:
            t0, c0 = time.perf_counter(), time.process_time()
            result = train_ensemble(model_fn, X.numpy(), y.numpy(), members=members, folds=[(train, val)],
                                    epochs=args.epochs, batch_size=args.batch_size, seed=[seed], strategy=strategy)
            times[strategy].append(time.perf_counter() - t0)
            cpu[strategy].append(time.process_time() - c0)
            lines.setdefault(strategy, []).append(result.config["strategy"]["line"])
            print(f"  {name} repeat {r}: {strategy:8s} {times[strategy][-1]:7.2f} s  ({load()})  "
                  f"{result.config['strategy']['line']}", flush=True)
            if strategy == strategies[0]:
                diff = max(float(np.max(np.abs(result.state_dicts[k][p] - v.detach().numpy().astype(np.float64))))
                           for k, model in enumerate(models) for p, v in model.state_dict().items())
    seq, seq_cpu = statistics.median(times["sequential"]), statistics.median(cpu["sequential"])
    out = {"model": name, "sequential": seq, "diff": diff, "cpu_ratio": seq_cpu / statistics.median(cpu[strategies[0]])}
    for strategy in strategies:
        vec = statistics.median(times[strategy])
        out[strategy] = vec
        print(f"{name}: {args.k} λ × {args.epochs} epoch(s), n = {len(train)}, m = {args.batch_size}: sequential "
              f"{seq:.2f} s, ensemble ({strategy}) {vec:.2f} s (medians of {args.repeats}): {seq / vec:.2f}× "
              f"(CPU time {seq_cpu / statistics.median(cpu[strategy]):.2f}×) [max |Δ| of parameters and buffers "
              f"against the loops {diff:.1e}]  ({load()})", flush=True)
    if target is not None:
        ratio = seq / out[strategies[0]]
        print("  " + verdict(f"{name}, ensemble ({strategies[0]}) against {args.k} ordinary loops", ratio, target,
                             goal=goal), flush=True)
    return out


def _dataset(name, args):
    """``(X, y, train, val)`` with X flat ``(N, features)`` float32 tensors: digits, or the first MNIST images."""
    if name == "digits":
        d = load_dataset("digits")
        X, y = np.concatenate([d.X_train, d.X_val]), np.concatenate([d.y_train, d.y_val])
        n = len(d.X_train)
    else:
        d = load_dataset("mnist", args.data_dir, train_size=args.train_size + args.val_size)
        X, y, n = d.X_train, d.y_train, args.train_size
    X = torch.as_tensor(X.reshape(len(X), -1), dtype=torch.float32)
    return X, torch.as_tensor(y, dtype=torch.int64), np.arange(n), np.arange(n, len(X))


def summary_table(rows: list, strategies: list, args) -> None:
    """The table for docs/torch.md: seconds and speed-up per model."""
    print(f"\n| model | {args.k} ordinary loops | {' | '.join(f'ensemble ({s})' for s in strategies)} | speed-up "
          f"({strategies[0]}) | in CPU time | target | max \\|Δ\\| |")
    print("|---|---:|" + "---:|" * len(strategies) + "---:|---:|---|---:|")
    for r in rows:
        _, _, target, goal = MODELS[r["model"]]
        aim = "" if target is None else f"≥ {target:g}×" + (f" (goal {goal:g}×)" if goal else "")
        print(f"| {r['model']} | {r['sequential']:.2f} s | " + " | ".join(f"{r[s]:.2f} s" for s in strategies)
              + f" | **{r['sequential'] / r[strategies[0]]:.2f}×** | {r['cpu_ratio']:.2f}× | {aim} | {r['diff']:.1e} |")
    print(f"({load()})", flush=True)


def _epoch_seconds(stamps: list[float]) -> float:
    """Median seconds of the epochs after the first, from the times each epoch ended."""
    return statistics.median(np.diff(stamps))


def torch_sweep_epoch(X, y, folds, grid, args) -> float:
    """Seconds per epoch of the PyTorch vectorized sweep (every λ × fold in one ``train_ensemble``)."""
    members = [Member(lmbda=float(lm), eta=args.vs_jax_eta, fold=f) for f in range(len(folds)) for lm in grid]
    stamps: list[float] = []
    train_ensemble(mlp, X, y, members=members, folds=folds, epochs=args.vs_jax_epochs, batch_size=args.vs_jax_m,
                   seed=args.seed, on_epoch=lambda e, metrics: stamps.append(time.perf_counter()))
    return _epoch_seconds(stamps)


def jax_sweep_epoch(X, y, folds, grid, args) -> float:
    """Seconds per epoch of ``l2reg sweep``'s engine on the same grid, network and cost (the CV stage)."""
    from l2reg.core.network import NetworkSpec
    from l2reg.options import MONITORS, TrainOptions
    from l2reg.fronts.sweeping import cross_validate

    spec = NetworkSpec((784, 30, 10), "sigmoid", "log-likelihood")
    opts = TrainOptions(lmbda=tuple(grid), eta=(args.vs_jax_eta,), epochs=args.vs_jax_epochs,
                        batch_size=args.vs_jax_m, cost="log-likelihood", monitor=MONITORS).checked()
    stamps: list[float] = []
    cross_validate(spec, X, y, opts, folds, pair_lmbda=list(grid), pair_eta=[args.vs_jax_eta] * len(grid),
                   group_seeds=fold_seeds(args.seed, len(folds)),
                   on_epoch=lambda e, metrics: stamps.append(time.perf_counter()) if e is not None else None)
    return _epoch_seconds(stamps)


def bench_vs_jax(X, y, args) -> None:
    """Issue 11: the PyTorch vectorized sweep of the seed's MLP against ``l2reg sweep``'s JAX engine."""
    from l2reg.fronts.cv import make_folds

    Xf, yf = X.reshape(len(X), -1).numpy(), y.numpy()
    folds = make_folds(yf, args.vs_jax_folds, args.seed, True)
    grid = [float(v) for v in np.geomspace(0.1, 100, args.k)]
    K = len(grid) * len(folds)
    times: dict[str, list] = {}
    for r in range(args.repeats):
        for threads in [int(t) for t in args.vs_jax_threads.split(",")]:
            torch.set_num_threads(threads)
            name = f"PyTorch train_ensemble, {threads} thread(s)"
            times.setdefault(name, []).append(torch_sweep_epoch(Xf, yf, folds, grid, args) / K)
            print(f"  vs JAX repeat {r}: {name:36s} {times[name][-1]:.5f} s/model-epoch  ({load()})", flush=True)
        torch.set_num_threads(args.threads)
        name = "l2reg sweep engine (JAX)"
        times.setdefault(name, []).append(jax_sweep_epoch(Xf, yf, folds, grid, args) / K)
        print(f"  vs JAX repeat {r}: {name:36s} {times[name][-1]:.5f} s/model-epoch  ({load()})", flush=True)
    jax_s = statistics.median(times["l2reg sweep engine (JAX)"])
    print(f"MLP 784-30-10 (sigmoid, softmax), {args.k} λ × {len(folds)} folds = {K} models, n_fold = "
          f"{len(folds[0][0])}, m = {args.vs_jax_m}, η = {args.vs_jax_eta}, per-epoch train+validation scoring; "
          f"medians of {args.repeats}:")
    for name, ts in times.items():
        med = statistics.median(ts)
        rel = "1×" if name.startswith("l2reg") else (
            f"the JAX engine is {med / jax_s:.1f}× faster" if med >= jax_s else f"PyTorch is {jax_s / med:.1f}× faster")
        print(f"  {name:36s} {med:.5f} s/model-epoch   {rel}  ({load()})", flush=True)


def bench_monitor(X, y, args, train, val) -> None:
    seed = fold_seeds(args.seed, 1)[0]
    steps = -(-len(train) // args.batch_size)
    variants = {
        "sgd, no monitor": (0.0, None),
        "sgd, monitor every step": (0.0, {"record_every": 1, "steps_per_epoch": steps}),
        "sgd, monitor every 10th step": (0.0, {"record_every": 10, "steps_per_epoch": steps}),
        "momentum 0.9, no monitor": (0.9, None),
        "momentum 0.9, monitor every step": (0.9, {"record_every": 1, "steps_per_epoch": steps}),
    }
    times = {k: [] for k in variants}
    for _ in range(args.repeats):
        for label, (mu, mon) in variants.items():
            t0 = time.perf_counter()
            ordinary_run(cnn, X, y, lmbda=5.0, eta=args.eta / (10 if mu else 1), train=train, val=val, seed=seed,
                         epochs=args.epochs, m=args.batch_size, momentum=mu, monitor=mon)
            times[label].append(time.perf_counter() - t0)
    for label, ts in times.items():
        base = statistics.median(times[label.split(",")[0] + ", no monitor"])
        med = statistics.median(ts)
        print(f"DecayMonitor, cnn, {label:32s} median {med:6.2f} s  ×{med / base:5.2f}  ({load()})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="/work/shared/data", help="folder with the MNIST IDX files")
    ap.add_argument("--train-size", type=int, default=5000, help="training images (the first N)")
    ap.add_argument("--val-size", type=int, default=1000, help="validation images (the next ones)")
    ap.add_argument("--k", type=int, default=16, help="number of λ (0.1 to 100, log-spaced)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs of the ensemble-vs-loops runs")
    ap.add_argument("--batch-size", type=int, default=64, help="mini-batch of the ensemble-vs-loops runs")
    ap.add_argument("--eta", type=float, default=0.1, help="learning rate of the ensemble-vs-loops runs")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of every timing (medians)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="digits_cnn,mnist_cnn,mlp,digits_bn_cnn",
                    help=f"models of the ensemble-vs-loops runs, of {', '.join(MODELS)}")
    ap.add_argument("--strategies", default="auto",
                    help="the ensemble's strategies to time, the first against the targets (auto,vmap,chunked,loop)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the 2 shared cores are oversubscribed)")
    ap.add_argument("--skip-monitor", action="store_true", help="skip the DecayMonitor overhead")
    ap.add_argument("--skip-vs-jax", action="store_true", help="skip the comparison with l2reg sweep's JAX engine")
    ap.add_argument("--vs-jax-folds", type=int, default=5, help="folds of the sweep compared with the JAX engine")
    ap.add_argument("--vs-jax-epochs", type=int, default=3, help="its epochs (≥ 2: the first is not timed)")
    ap.add_argument("--vs-jax-m", type=int, default=10, help="its mini-batch size (the seed's m = 10)")
    ap.add_argument("--vs-jax-eta", type=float, default=0.5, help="its learning rate")
    ap.add_argument("--vs-jax-threads", default="1,2", help="torch threads for the PyTorch side, each measured")
    ap.add_argument("--quick", action="store_true", help="smoke run: 600 images, 4 λ, 2 epochs, MLP, one repeat")
    args = ap.parse_args()
    if args.quick:
        args.train_size, args.val_size, args.k, args.repeats, args.models = 500, 100, 4, 1, "mlp,digits_bn_cnn"
        args.vs_jax_epochs, args.skip_monitor = 2, True
    if args.vs_jax_epochs < 2:
        ap.error("--vs-jax-epochs must be at least 2 (the first epoch is not timed).")
    torch.set_num_threads(args.threads)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {cpu_name()}  {os.cpu_count()} cores  torch {torch.__version__} "
          f"threads {torch.get_num_threads()}  ({load()})", flush=True)
    datasets, rows = {}, []
    for name in args.models.split(","):
        if name not in MODELS:
            ap.error(f"--models: {name!r} is not one of {', '.join(MODELS)}.")
        which = MODELS[name][1]
        if which not in datasets:
            datasets[which] = _dataset(which, args)
        X, y, train, val = datasets[which]
        data = (X.reshape(-1, 1, 28, 28), y, train, val) if name == "cnn" else datasets[which]
        rows.append(bench_sweep(name, data, args))
    summary_table(rows, args.strategies.split(","), args)
    if args.skip_vs_jax and args.skip_monitor:
        return
    X, y, train, val = datasets.get("mnist") or _dataset("mnist", args)
    X = X.reshape(-1, 1, 28, 28)
    if not args.skip_vs_jax:
        bench_vs_jax(X[: args.train_size], y[: args.train_size], args)
    if not args.skip_monitor:
        bench_monitor(X, y, args, train, val)


if __name__ == "__main__":
    main()
