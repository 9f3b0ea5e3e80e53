"""l2reg.torch: a 16-λ vectorized ensemble against 16 ordinary PyTorch loops, and DecayMonitor's overhead.

Same model, data, initial weights and batch order on both sides: the 5,000
first MNIST training images (1,000 more held out for validation), batch 64,
plain SGD with coupled L2 on the weights (``decay_groups``, l2reg policy),
λ from 0.1 to 100 (16 values), evaluation of every model on its training and
validation rows after each epoch (what a sweep records). The sequential side
is the loop a PyTorch user writes, one λ after another. Target: ≥ 3× faster.

DecayMonitor: the same ordinary loop (one model) with and without a monitor
attached, recording every step (and every 10th), for plain SGD (closed-form
split) and SGD with momentum (split by a shadow step on clones).

Medians of ``--repeats`` runs; ratios are measured in the same run; the load
average is printed beside every timing. Keep it under ~5 minutes:

    python bench/bench_torch.py --data-dir /work/shared/data
    python bench/bench_torch.py --data-dir /work/shared/data --models cnn,mlp --epochs 1 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from l2reg.data import load_dataset
from l2reg.torch import DecayMonitor, Member, decay_groups, epoch_order, fold_seeds, train_ensemble


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 10))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 30), nn.Sigmoid(), nn.Linear(30, 10))


MODELS = {"cnn": cnn, "mlp": mlp}


def _load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


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


def bench_sweep(name, X, y, args, train, val) -> None:
    model_fn = MODELS[name]
    lmbdas = np.geomspace(0.1, 100, args.k)
    seed = fold_seeds(args.seed, 1)[0]
    members = [Member(lmbda=float(lm), eta=args.eta) for lm in lmbdas]
    times = {"sequential": [], "vectorized": []}
    for r in range(args.repeats):
        t0 = time.perf_counter()
        models = [ordinary_run(model_fn, X, y, lmbda=float(lm), eta=args.eta, train=train, val=val, seed=seed,
                               epochs=args.epochs, m=args.batch_size)[0] for lm in lmbdas]
        times["sequential"].append(time.perf_counter() - t0)
        print(f"  {name} repeat {r}: sequential {times['sequential'][-1]:7.2f} s  ({_load()})", flush=True)
        t0 = time.perf_counter()
        result = train_ensemble(model_fn, X.numpy(), y.numpy(), members=members, folds=[(train, val)],
                                epochs=args.epochs, batch_size=args.batch_size, seed=[seed])
        times["vectorized"].append(time.perf_counter() - t0)
        print(f"  {name} repeat {r}: vectorized {times['vectorized'][-1]:7.2f} s  ({_load()})", flush=True)
    diff = max(float(np.max(np.abs(result.state_dicts[k][p] - v.detach().numpy())))
               for k, model in enumerate(models) for p, v in model.state_dict().items())
    seq, vec = statistics.median(times["sequential"]), statistics.median(times["vectorized"])
    print(f"{name}: {args.k} λ × {args.epochs} epoch(s), n = {len(train)}, m = {args.batch_size}: sequential "
          f"{seq:.2f} s, vectorized {vec:.2f} s (medians of {args.repeats}): {seq / vec:.2f}× "
          f"[max |Δw| vectorized vs sequential {diff:.1e}]  ({_load()})", flush=True)


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
        print(f"DecayMonitor, cnn, {label:32s} median {med:6.2f} s  ×{med / base:5.2f}  ({_load()})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--train-size", type=int, default=5000)
    ap.add_argument("--val-size", type=int, default=1000)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--eta", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="cnn,mlp")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the 2 shared cores are oversubscribed)")
    ap.add_argument("--skip-monitor", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist", args.data_dir, train_size=args.train_size + args.val_size)
    X = torch.as_tensor(data.X_train.reshape(-1, 1, 28, 28), dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.int64)
    train, val = np.arange(args.train_size), np.arange(args.train_size, args.train_size + args.val_size)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {_cpu()}  {os.cpu_count()} cores  torch {torch.__version__} "
          f"threads {torch.get_num_threads()}  ({_load()})", flush=True)
    for name in args.models.split(","):
        bench_sweep(name, X, y, args, train, val)
    if not args.skip_monitor:
        bench_monitor(X, y, args, train, val)


if __name__ == "__main__":
    main()
