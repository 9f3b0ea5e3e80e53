"""How much slower is `l2reg explain` than plain `l2reg train`? (target: at most 2x)

Times the epoch loop only (compile excluded) of train.train and explain.explain
on the same configuration, repeated; reports medians and their ratio, measured
in the same process. Two baselines: train on the same λ list as explain's stack
(λ = 0 companion included, same K) and train on the user's λ alone (K = 1).

    python bench/explain_overhead.py                          # digits
    python bench/explain_overhead.py --dataset mnist --data-dir ../shared/data --train-size 10000 --epochs 2
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from l2reg import explain as E
from l2reg import train as T
from l2reg.data import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--train-size", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--lmbda", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--record-every", default="auto,1")
    args = ap.parse_args()
    common = dict(dataset=args.dataset, data_dir=args.data_dir, train_size=args.train_size, epochs=args.epochs,
                  batch_size=args.batch_size, eta=0.5)
    data = load_dataset(args.dataset, args.data_dir, train_size=args.train_size)
    common["dataset"] = data
    common.pop("data_dir"), common.pop("train_size")
    times: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        times.setdefault("train K=1 (λ only)", []).append(T.train(lmbda=[args.lmbda], **common).train_seconds)
        times.setdefault("train K=2 (0 and λ)", []).append(T.train(lmbda=[0.0, args.lmbda], **common).train_seconds)
        for every in args.record_every.split(","):
            k = None if every == "auto" else int(every)
            r = E.explain(lmbda=args.lmbda, record_every=k, **common)
            times.setdefault(f"explain K=2, record every {r.record_every} step(s)", []).append(r.train_seconds)
    base = statistics.median(times["train K=2 (0 and λ)"])
    base1 = statistics.median(times["train K=1 (λ only)"])
    print(f"{time.strftime('%Y-%m-%d')}  {platform.processor() or platform.machine()}  dataset={data.name} "
          f"n={data.n_train} epochs={args.epochs} m={args.batch_size} repeats={args.repeats}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:45s} median {med:8.3f} s   x{med / base:5.2f} vs train K=2   x{med / base1:5.2f} vs train K=1")


if __name__ == "__main__":
    main()
