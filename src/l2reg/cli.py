"""The ``l2reg`` command line. Each command parses its options and calls the library."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import L2RegError
from . import validation as V

app = typer.Typer(
    help="L2 regularization of neural networks: train, sweep λ, explain, convert.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()


@app.callback()
def _root() -> None:
    """L2 regularization of neural networks: train, sweep λ, explain, convert."""

err_console = Console(stderr=True)

# Typer may vendor its own copy of click: take click's exception base from Typer.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

TRAIN_MONITOR = "training_cost,training_accuracy,evaluation_cost,evaluation_accuracy"


@contextmanager
def _progress(total: int, quiet: bool, what: str = "epoch"):
    """A Rich progress bar over epochs; yields the library's per-epoch callback.

    The bar appears on the first call (``epoch=None``: compiling), so that
    errors in the options are reported before any bar is drawn.
    """
    if quiet:
        yield None
        return
    progress = Progress(
        TextColumn(f"[bold]{what}"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    task = None

    def on_epoch(epoch: int | None, metrics: dict | None) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task(what, total=total, status="compiling…")
        if epoch is None:
            return
        parts = []
        for key, label in (("training_cost", "train cost"), ("evaluation_accuracy", "eval acc")):
            if key in metrics:
                lo, hi = float(metrics[key].min()), float(metrics[key].max())
                fmt = (lambda x: f"{100 * x:.2f}%") if "accuracy" in key else (lambda x: f"{x:.4g}")
                parts.append(f"{label} {fmt(lo)}" if lo == hi else f"{label} {fmt(lo)}–{fmt(hi)}")
        progress.update(task, completed=epoch + 1, status="  ".join(parts))

    try:
        yield on_epoch
    finally:
        progress.stop()


def _default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def _lmbdas(text: str) -> list[float]:
    return V.parse_list("--lmbda", text, float)


@app.command()
def train(
    dataset: str = typer.Option("digits", help="digits (built in), mnist, fashion-mnist, or a .npz/.csv path."),
    sizes: Optional[str] = typer.Option(None, help="Layer sizes, e.g. 784,30,10 (default: features,30,classes)."),
    epochs: int = typer.Option(30, help="Training epochs."),
    batch_size: int = typer.Option(10, help="Mini-batch size m."),
    eta: float = typer.Option(0.5, help="Learning rate η."),
    lmbda: str = typer.Option("5.0", help="λ, or a comma-separated list trained at once (e.g. 0,0.1,1,5)."),
    init: str = typer.Option("default", help="default: N(0,1/n_in) weights; large: N(0,1)."),
    cost: str = typer.Option("cross-entropy", help="cross-entropy, log-likelihood (softmax) or quadratic."),
    activation: str = typer.Option("sigmoid", help="Hidden activation: sigmoid, tanh or relu."),
    penalty: str = typer.Option("l2", help="l2 or none."),
    train_size: Optional[int] = typer.Option(None, help="Train on the first N training examples only."),
    eval: str = typer.Option("validation", "--eval", help="Evaluation set: validation or test."),
    seed: int = typer.Option(0, help="Seed of the initial weights and the mini-batch order."),
    seeds: Optional[str] = typer.Option(None, help="Several seeds, e.g. 0,1,2 (overrides --seed)."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder with the IDX files (else $L2REG_DATA, else download)."),
    monitor: str = typer.Option(TRAIN_MONITOR, help="What to compute each epoch (comma-separated)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default runs/train-TIMESTAMP)."),
    overwrite: bool = typer.Option(False, help="Allow writing into a folder that holds a previous run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
) -> None:
    """Train networks on C = C0 + (λ/2n)·Σw², every λ at once."""
    from . import report, store
    from .train import train as run_train

    seed_list = V.parse_list("--seeds", seeds, int) if seeds is not None else seed
    monitor_list = [m.strip() for m in monitor.split(",") if m.strip()]
    out = store.prepare_out_dir(out or _default_out("train"), overwrite=overwrite)
    with _progress(epochs, quiet) as on_epoch:
        result = run_train(
            dataset=dataset, sizes=sizes, epochs=epochs, batch_size=batch_size, eta=eta, lmbda=_lmbdas(lmbda),
            init=init, cost=cost, activation=activation, penalty=penalty, train_size=train_size, eval=eval,
            seed=seed_list, data_dir=data_dir, monitor=monitor_list, on_epoch=on_epoch,
        )
    result.save(out)
    if not quiet:
        for note in result.notes:
            err_console.print(note)
        console.print(report.train_table(result))
        console.print(f"Trained {len(result.runs)} model(s) in {result.train_seconds:.2f} s "
                      f"(+{result.compile_seconds:.1f} s compiling). Wrote {out}/metrics.json and {out}/params.npz.")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app; any bad input is one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        app(args=argv, standalone_mode=False)
    except L2RegError as e:
        err_console.print(f"error: {_one_line(e)}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except _ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            err_console.print(e.format_message(), markup=False, highlight=False)
            return 0
        hint = f" (see 'l2reg {e.ctx.info_name} --help')" if getattr(e, "ctx", None) and e.ctx.parent else ""
        err_console.print(f"error: {_one_line(e.format_message())}{hint}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted.")
        return 130
    except typer.Exit as e:
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
