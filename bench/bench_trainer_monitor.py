"""The decay monitor's overhead inside transformers.Trainer and lightning.Trainer, as a ratio to the run without it.

Hugging Face: a small BERT from a config (hidden 128, 2 layers, 4 heads,
intermediate 512, vocabulary 1,000; 1.5 M parameters, no download) on 512
random sequences of 32 tokens, batch 16, gradient accumulation 2 (16
optimizer steps per epoch), 2 epochs, the Trainer's own AdamW and linear
schedule. Lightning: an MLP 784-256-LayerNorm-10 on the first 5,000 MNIST
training images, batch 32, ``accumulate_grad_batches=2`` (79 optimizer steps
per epoch), 2 epochs, AdamW on l2reg's groups. Each run: ``train()`` /
``fit()`` wall time, without the callback, with it recording every step
(``record_every=1``) and every 10th (``record_every=10``); the runs of one
repeat are interleaved, the ratios are medians over ``--repeats`` repeats
measured in the same process. The files the callback writes at the end
(``decay_monitor.json`` and ``.html``, whose figures matplotlib draws) are
timed apart and reported beside the ratio without them.

    flock /tmp/l2reg-bench.lock python bench/bench_trainer_monitor.py --data-dir /work/shared/data
    python bench/bench_trainer_monitor.py --data-dir /work/shared/data --quick     # smoke run
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import numpy as np
import torch

from _common import header, load, median

MODES = {"no monitor": None, "every step": 1, "every 10th step": 10}


class Timed:
    """Wraps the callback's end-of-training file writing to time it apart."""

    def __init__(self, cb, name):
        self.seconds = 0.0
        inner = getattr(cb, name)

        def timed(*a, **k):
            t = time.perf_counter()
            out = inner(*a, **k)
            self.seconds += time.perf_counter() - t
            return out

        setattr(cb, name, timed)


def hf_run(record_every, args, folder) -> tuple[float, float]:
    from transformers import BertConfig, BertForSequenceClassification, PrinterCallback, Trainer, TrainingArguments

    from l2reg.torch import hf

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2,
                                                     num_attention_heads=4, intermediate_size=512,
                                                     max_position_embeddings=64, num_labels=2))
    g = torch.Generator().manual_seed(0)
    n = 64 if args.quick else 512
    ids, labels = torch.randint(0, 1000, (n, 32), generator=g), torch.randint(0, 2, (n,), generator=g)
    data = [{"input_ids": ids[i], "labels": labels[i]} for i in range(n)]
    targs = TrainingArguments(output_dir=folder, num_train_epochs=2, per_device_train_batch_size=16,
                              gradient_accumulation_steps=2, learning_rate=1e-3, weight_decay=0.01,
                              logging_steps=10, report_to="none", use_cpu=True, save_strategy="no",
                              disable_tqdm=True, seed=0)
    callbacks, timer = [], None
    if record_every:
        cb = hf.DecayMonitorCallback(record_every=record_every)
        timer = Timed(cb, "on_train_end")
        callbacks.append(cb)
    trainer = Trainer(model=model, args=targs, train_dataset=data, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # no printed logs between the timings
    t = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t, timer.seconds if timer else 0.0


def lightning_run(record_every, args, folder, X, y) -> tuple[float, float]:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from l2reg.torch import lightning as ll

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # its start-up lines between the timings

    class MLP(L.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.LayerNorm(256), torch.nn.ReLU(),
                                           torch.nn.Linear(256, 10))

        def training_step(self, batch, batch_idx):
            return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.AdamW(ll.decay_groups(self, 0.01), lr=1e-3)

    callbacks, timer = [], None
    if record_every:
        cb = ll.DecayMonitorCallback(record_every=record_every)
        timer = Timed(cb, "on_fit_end")
        callbacks.append(cb)
    data = torch.utils.data.TensorDataset(X, y)
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, accumulate_grad_batches=2, logger=CSVLogger(folder),
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        log_every_n_steps=10, callbacks=callbacks)
    t = time.perf_counter()
    trainer.fit(MLP(), loader)
    return time.perf_counter() - t, timer.seconds if timer else 0.0


def bench(name, run, repeats, steps) -> None:
    """Each mode ``repeats`` times, interleaved; ``steps`` optimizer steps per run (for the cost per step)."""
    times = {m: [] for m in MODES}
    files = {m: [] for m in MODES}
    run(None)  # warm-up: imports, first allocations
    for r in range(repeats):
        for mode, every in MODES.items():
            total, written = run(every)
            times[mode].append(total)
            files[mode].append(written)
            print(f"  {name} repeat {r}: {mode:16s} {total:7.2f} s (files {written:.2f} s)  ({load()})", flush=True)
    base = median(times["no monitor"])
    for mode in MODES:
        med = median(times[mode])
        without = median(np.subtract(times[mode], files[mode]))
        per_step = 1000 * (without - base) / steps
        print(f"{name:13s} {mode:16s} median {med:6.2f} s  ×{med / base:5.2f}   without the files "
              f"{without:6.2f} s  ×{without / base:5.2f} ({per_step:+.1f} ms per step)   (files "
              f"{median(files[mode]):.2f} s)  ({load()})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="/work/shared/data", help="folder holding mnist/ (IDX, gzipped)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared 2-core machine)")
    ap.add_argument("--only", choices=["hf", "lightning"], help="one trainer only")
    ap.add_argument("--quick", action="store_true", help="a smoke run: small data, one repeat")
    args = ap.parse_args()
    if args.quick:
        args.repeats = 1
    torch.set_num_threads(args.threads)
    print(header(f"decay monitor in the trainers, torch {torch.__version__}, {args.threads} thread(s), medians of "
                 f"{args.repeats}"), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "hf"):
            bench("transformers", lambda every: hf_run(every, args, f"{folder}/hf"), args.repeats,
                  steps=2 * (2 if args.quick else 16))
        if args.only in (None, "lightning"):
            from l2reg.data import load_dataset

            data = load_dataset("mnist", args.data_dir, train_size=500 if args.quick else 5000)
            X = torch.tensor(np.asarray(data.X_train), dtype=torch.float32)
            y = torch.tensor(np.asarray(data.y_train), dtype=torch.long)
            bench("lightning", lambda every: lightning_run(every, args, f"{folder}/pl", X, y), args.repeats,
                  steps=2 * -(-len(X) // 64))


if __name__ == "__main__":
    main()
