"""How much slower is `l2reg explain` than plain `l2reg train`? (target: at most 2×)

Times the epoch loop only (``train_seconds``: compilation excluded, the
per-epoch monitoring included) of :func:`l2reg.fronts.training.train` and
:func:`l2reg.fronts.explaining.explain` on the same configuration, in the same process,
``--repeats`` rounds of every contender in turn; reports medians, their
ratios and the load average beside each timing. Two baselines: train on the
same λ list as explain's stack (the λ = 0 companion included, K = 2) and
train on the user's λ alone (K = 1).

    python bench/explain_overhead.py                          # digits, 30 epochs
    python bench/explain_overhead.py --dataset mnist --data-dir ../shared/data --train-size 10000 --epochs 2
    python bench/explain_overhead.py --quick                  # smoke run: digits, 2 epochs, 1 round
"""

from __future__ import annotations

import argparse
import statistics

from _common import header, load, verdict

TARGET = 2.0


def contenders(args, data) -> dict:
    """name -> a function returning one run's epoch-loop seconds."""
    from l2reg.fronts.explaining import explain
    from l2reg.fronts.training import train

    common = dict(dataset=data, epochs=args.epochs, batch_size=args.batch_size, eta=0.5)
    out = {"train K=1 (λ only)": lambda: train(lmbda=[args.lmbda], **common).train_seconds,
           "train K=2 (0 and λ)": lambda: train(lmbda=[0.0, args.lmbda], **common).train_seconds}
    for every in args.record_every.split(","):
        k = None if every == "auto" else int(every)
        out[f"explain K=2, record every {every}"] = (
            lambda k=k: explain(lmbda=args.lmbda, record_every=k, **common).train_seconds)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Every timing is printed with the load average; run on a quiet machine.")
    ap.add_argument("--dataset", default="digits", help="digits (built in), mnist, fashion-mnist")
    ap.add_argument("--data-dir", default=None, help="folder with the IDX files (else $L2REG_DATA)")
    ap.add_argument("--train-size", type=int, default=None, help="the first N training examples")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--lmbda", type=float, default=5.0, help="the λ explained (a λ = 0 companion is added)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of every contender (medians over them)")
    ap.add_argument("--record-every", default="auto,1", help="explain's record_every values (auto: ~50 per epoch)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 epochs, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.repeats = 2, 1

    from l2reg.data import load_dataset

    data = load_dataset(args.dataset, args.data_dir, train_size=args.train_size)
    print(header(f"dataset={data.name} n={data.n_train} epochs={args.epochs} m={args.batch_size} "
                 f"repeats={args.repeats}"), flush=True)
    todo = contenders(args, data)
    times: dict[str, list[float]] = {name: [] for name in todo}
    for r in range(args.repeats):
        for name, fn in todo.items():
            times[name].append(fn())
            print(f"  round {r + 1}: {name:40s} {times[name][-1]:8.3f} s  ({load()})", flush=True)
    base2 = statistics.median(times["train K=2 (0 and λ)"])
    base1 = statistics.median(times["train K=1 (λ only)"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:40s} median {med:8.3f} s   ×{med / base2:5.2f} vs train K=2   ×{med / base1:5.2f} vs train K=1")
    print(f"\nTarget: explain at most {TARGET:g}× train on the same stack (K = 2):")
    for name in (n for n in times if n.startswith("explain")):
        print(verdict(f"{name} ÷ train K=2", statistics.median(times[name]) / base2, TARGET, lower_is_better=True))
    if args.quick:
        print("QUICK smoke run (2 epochs, one round): the ratios say little.")
    print(f"({load()} at the end)")


if __name__ == "__main__":
    main()
