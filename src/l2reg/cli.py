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

from .errors import Interrupted, L2RegError
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
    batch_size: int = typer.Option(10, help="Mini-batch size m (ignored by --optimizer lbfgs: full batch)."),
    eta: str = typer.Option("0.5", help="Learning rate η, or a comma-separated list trained at once (grid η × λ)."),
    lmbda: Optional[str] = typer.Option(None, help="λ, or a comma-separated list trained at once (e.g. 0,0.1,1,5); default 5, or 0 with --optimizer adamw."),
    init: str = typer.Option("default", help="default: N(0,1/n_in) weights; large: N(0,1)."),
    cost: str = typer.Option("cross-entropy", help="cross-entropy, log-likelihood (softmax) or quadratic."),
    activation: str = typer.Option("sigmoid", help="Hidden activation: sigmoid, tanh or relu."),
    penalty: str = typer.Option("l2", help="l2 (λ/2n)·Σw², l1 (λ/n)·Σ|w|, elastic-net, or none."),
    l1_ratio: Optional[float] = typer.Option(None, help="elastic-net: ρ in (λ/n)·[ρ·Σ|w| + ((1−ρ)/2)·Σw²] (default 0.5)."),
    l1_update: str = typer.Option("subgradient", help="l1/elastic-net: subgradient (λ/n)·sgn(w), or prox (soft threshold: weights reach exactly 0)."),
    lmbda_per_layer: Optional[str] = typer.Option(None, help="One λ per weight layer instead of --lmbda, e.g. 5,0.5 (';' separates configurations trained at once)."),
    penalize_biases: bool = typer.Option(False, "--penalize-biases", help="Penalize (or decay) the biases too."),
    optimizer: str = typer.Option("sgd", help="sgd, momentum, nesterov, adam (coupled L2), adamw (decoupled weight decay), or lbfgs (full batch; --epochs caps its iterations)."),
    momentum: Optional[str] = typer.Option(None, help="momentum/nesterov: μ (default 0.9), or a comma-separated list trained at once."),
    weight_decay: Optional[str] = typer.Option(None, help="adamw only: decoupled weight decay wd (PyTorch-style; default 0.01), or a list trained at once."),
    decay_scaling: Optional[str] = typer.Option(None, help="adamw: lr (wd·η_t, PyTorch/optax; default) or schedule (wd·η_t/η, the paper's)."),
    schedule: str = typer.Option("constant", help="Learning-rate schedule: constant, step or cosine."),
    warmup_epochs: int = typer.Option(0, help="Epochs of linear learning-rate warm-up before the schedule."),
    step_epochs: Optional[int] = typer.Option(None, help="step schedule: epochs between drops (default a third of --epochs)."),
    step_gamma: float = typer.Option(0.1, help="step schedule: factor of each drop."),
    early_stopping: bool = typer.Option(False, "--early-stopping", help="Stop each run when its validation score has not improved for --patience epochs."),
    patience: int = typer.Option(10, help="Early stopping: epochs without improvement (Nielsen's rule: 10)."),
    stop_on: str = typer.Option("accuracy", help="Early stopping monitors validation accuracy or cost."),
    train_size: Optional[int] = typer.Option(None, help="Train on the first N training examples only."),
    eval: str = typer.Option("validation", "--eval", help="Evaluation set: validation or test."),
    seed: int = typer.Option(0, help="Seed of the initial weights and the mini-batch order."),
    seeds: Optional[str] = typer.Option(None, help="Several seeds, e.g. 0,1,2 (overrides --seed)."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder with the IDX files (else $L2REG_DATA, else download)."),
    monitor: str = typer.Option(TRAIN_MONITOR, help="What to compute each epoch (comma-separated)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default runs/train-TIMESTAMP). A checkpoint is saved there after every epoch."),
    overwrite: bool = typer.Option(False, help="Allow writing into a folder that holds a previous run."),
    resume: Optional[Path] = typer.Option(None, help="Continue the interrupted run in this folder from its last complete epoch; options default to the run's own."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
    ctx: typer.Context = typer.Option(None, hidden=True),
) -> None:
    """Train networks on C = C0 + (λ/2n)·Σw² (or L1, elastic net), every λ at once."""
    from . import report, store
    from .train import resume_kwargs
    from .train import train as run_train

    kwargs = dict(
        dataset=dataset, sizes=sizes, epochs=epochs, batch_size=batch_size, eta=V.parse_list("--eta", eta, float),
        lmbda=None if lmbda is None else _lmbdas(lmbda),
        init=init, cost=cost, activation=activation, penalty=penalty, train_size=train_size, eval=eval,
        seed=V.parse_list("--seeds", seeds, int) if seeds is not None else seed, data_dir=data_dir,
        monitor=[m.strip() for m in monitor.split(",") if m.strip()],
        optimizer=optimizer, momentum=None if momentum is None else V.parse_list("--momentum", momentum, float),
        weight_decay=None if weight_decay is None else V.parse_list("--weight-decay", weight_decay, float),
        decay_scaling=decay_scaling, l1_ratio=l1_ratio, l1_update=l1_update, lmbda_per_layer=lmbda_per_layer,
        penalize_biases=penalize_biases, schedule=schedule, warmup_epochs=warmup_epochs, step_epochs=step_epochs,
        step_gamma=step_gamma, early_stopping=early_stopping, patience=patience, stop_on=stop_on,
    )
    if resume is not None:
        explicit = {name for name in ctx.params if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")}
        explicit |= {"seed"} if "seeds" in explicit else set()
        kwargs = resume_kwargs(resume, kwargs, explicit)
        out = store.prepare_out_dir(resume, overwrite=True)
    else:
        out = store.prepare_out_dir(out or _default_out("train"), overwrite=overwrite)
    with _progress(kwargs["epochs"], quiet) as on_epoch:
        try:
            result = run_train(**kwargs, on_epoch=on_epoch, checkpoint_dir=out, resume=resume is not None)
        except Interrupted as e:
            raise Interrupted(f"{e} Resume with: l2reg train --resume {out}", epoch=e.epoch) from None
    result.save(out)
    if not quiet:
        for note in result.notes:
            err_console.print(note)
        console.print(report.train_table(result))
        console.print(f"Trained {len(result.runs)} model(s) in {result.train_seconds:.2f} s "
                      f"(+{result.compile_seconds:.1f} s compiling). Wrote {out}/metrics.json and {out}/params.npz.")


@app.command()
def sweep(
    dataset: str = typer.Option("digits", help="digits (built in), mnist, fashion-mnist, or a .npz/.csv path."),
    sizes: Optional[str] = typer.Option(None, help="Layer sizes, e.g. 784,30,10 (default: features,30,classes)."),
    epochs: int = typer.Option(30, help="Training epochs (of every CV model and of the refit)."),
    batch_size: int = typer.Option(10, help="Mini-batch size m."),
    eta: float = typer.Option(0.5, help="Learning rate η."),
    etas: Optional[str] = typer.Option(None, help="Several learning rates, e.g. 0.1,0.5,1 (replaces --eta): the grid η × λ in one run; the best (η, λ) pair is chosen."),
    lmbdas: Optional[str] = typer.Option(None, help="The λ grid, e.g. 0,0.01,0.1,1 (default: 0 plus 12 values, λ/n from 1e-5 to 3e-2)."),
    lmbda_grid: Optional[str] = typer.Option(None, help="λ = 0 plus K log-spaced values: LO:HI:K, e.g. 0.01:10:12."),
    folds: int = typer.Option(5, help="Number of stratified cross-validation folds of the training set."),
    select: str = typer.Option("min", help="min: best mean CV accuracy; 1se: largest λ within one SE of it."),
    init: str = typer.Option("default", help="default: N(0,1/n_in) weights; large: N(0,1)."),
    cost: str = typer.Option("cross-entropy", help="cross-entropy, log-likelihood (softmax) or quadratic."),
    activation: str = typer.Option("sigmoid", help="Hidden activation: sigmoid, tanh or relu."),
    penalty: str = typer.Option("l2", help="l2 (λ/2n)·Σw², l1 (λ/n)·Σ|w|, elastic-net, or none."),
    l1_ratio: Optional[float] = typer.Option(None, help="elastic-net: ρ in (λ/n)·[ρ·Σ|w| + ((1−ρ)/2)·Σw²] (default 0.5)."),
    l1_update: str = typer.Option("subgradient", help="l1/elastic-net: subgradient, or prox (soft threshold: exact zeros)."),
    penalize_biases: bool = typer.Option(False, "--penalize-biases", help="Penalize the biases too."),
    optimizer: str = typer.Option("sgd", help="sgd, momentum, nesterov, adam (coupled L2: the λ grid goes through Adam), or adamw (fixed --weight-decay; then sweep λ of --penalty l1)."),
    momentum: Optional[float] = typer.Option(None, help="momentum/nesterov: μ (default 0.9)."),
    weight_decay: Optional[float] = typer.Option(None, help="adamw only: decoupled weight decay (default 0.01)."),
    decay_scaling: Optional[str] = typer.Option(None, help="adamw: lr (wd·η_t, PyTorch/optax; default) or schedule (wd·η_t/η, the paper's)."),
    schedule: str = typer.Option("constant", help="Learning-rate schedule: constant, step or cosine."),
    warmup_epochs: int = typer.Option(0, help="Epochs of linear learning-rate warm-up."),
    step_epochs: Optional[int] = typer.Option(None, help="step schedule: epochs between drops (default a third of --epochs)."),
    step_gamma: float = typer.Option(0.1, help="step schedule: factor of each drop."),
    train_size: Optional[int] = typer.Option(None, help="Use the first N training examples only."),
    seed: int = typer.Option(0, help="Seed of the folds, and of each fold's initial weights and data order."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder with the IDX files (else $L2REG_DATA, else download)."),
    monitor: str = typer.Option("evaluation_cost,evaluation_accuracy", help="What the CV models record each epoch (evaluation = their held-out fold; '' for nothing). Selection uses the last epoch either way; the refit always records training and test."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default runs/sweep-TIMESTAMP). Checkpoints of the CV run and the refit are saved there after every epoch."),
    overwrite: bool = typer.Option(False, help="Allow writing into a folder that holds a previous sweep."),
    resume: Optional[Path] = typer.Option(None, help="Continue the interrupted sweep in this folder from its last complete epoch; options default to the sweep's own."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
    ctx: typer.Context = typer.Option(None, hidden=True),
) -> None:
    """Choose λ by k-fold cross-validation: every λ × fold trains at once, then the choice is refit."""
    from . import report, store
    from .sweep import resume_kwargs
    from .sweep import sweep as run_sweep

    kwargs = dict(
        dataset=dataset, sizes=sizes, epochs=epochs, batch_size=batch_size, eta=eta,
        etas=None if etas is None else V.parse_list("--etas", etas, float),
        lmbdas=V.parse_list("--lmbdas", lmbdas, float) if lmbdas is not None else None,
        lmbda_grid=lmbda_grid, folds=folds, select=select, init=init, cost=cost, activation=activation,
        penalty=penalty, train_size=train_size, seed=seed, data_dir=data_dir,
        monitor=[m.strip() for m in monitor.split(",") if m.strip()], optimizer=optimizer, momentum=momentum,
        weight_decay=weight_decay, decay_scaling=decay_scaling, l1_ratio=l1_ratio, l1_update=l1_update,
        penalize_biases=penalize_biases, schedule=schedule, warmup_epochs=warmup_epochs, step_epochs=step_epochs,
        step_gamma=step_gamma,
    )
    if resume is not None:
        explicit = {name for name in ctx.params if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")}
        kwargs = resume_kwargs(resume, kwargs, explicit)
        out = store.prepare_out_dir(resume, overwrite=True)
    else:
        out = store.prepare_out_dir(out or _default_out("sweep"), overwrite=overwrite, marker="sweep.json")
    with _progress(2 * kwargs["epochs"], quiet, what="sweep") as on_epoch:
        try:
            result = run_sweep(**kwargs, on_epoch=on_epoch, checkpoint_dir=out, resume=resume is not None)
        except Interrupted as e:
            raise Interrupted(f"{e} Resume with: l2reg sweep --resume {out}", epoch=e.epoch) from None
    result.save(out)
    if not quiet:
        for note in result.notes:
            err_console.print(note)
        console.print(report.sweep_table(result))
        console.print(result.gap_summary())
        console.print(report.TEST_SET_NOTE)
        console.print(f"Trained {result.config['models_cv']} CV models and {result.config['models_refit']} refit "
                      f"models in {result.train_seconds:.2f} s (+{result.compile_seconds:.1f} s compiling). "
                      f"Wrote {out}/sweep.json, {out}/report.html and {out}/params.npz.")


_EXPLAIN_TRAIN_OPTIONS = ("dataset", "sizes", "epochs", "batch_size", "eta", "lmbda", "init", "cost", "activation",
                          "train_size", "eval", "seed", "data_dir", "optimizer", "momentum", "weight_decay")


@app.command()
def explain(
    ctx: typer.Context,
    run: Optional[Path] = typer.Option(None, help="A finished 'l2reg train' folder: re-run it with recording (its options are used)."),
    dataset: str = typer.Option("digits", help="digits (built in), mnist, fashion-mnist, or a .npz/.csv path."),
    sizes: Optional[str] = typer.Option(None, help="Layer sizes, e.g. 784,30,10 (default: features,30,classes)."),
    epochs: int = typer.Option(30, help="Training epochs."),
    batch_size: int = typer.Option(10, help="Mini-batch size m."),
    eta: float = typer.Option(0.5, help="Learning rate η."),
    lmbda: Optional[str] = typer.Option(None, help="λ, or a comma-separated list; λ = 0 is always added as the companion (default 5, or 0 with --optimizer adamw)."),
    init: str = typer.Option("default", help="default: N(0,1/n_in) weights; large: N(0,1)."),
    cost: str = typer.Option("cross-entropy", help="cross-entropy, log-likelihood (softmax) or quadratic."),
    activation: str = typer.Option("sigmoid", help="Hidden activation: sigmoid, tanh or relu."),
    train_size: Optional[int] = typer.Option(None, help="Train on the first N training examples only."),
    eval: str = typer.Option("validation", "--eval", help="Evaluation set: validation or test."),
    seed: int = typer.Option(0, help="Seed of the initial weights and the mini-batch order."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder with the IDX files (else $L2REG_DATA, else download)."),
    record_every: Optional[int] = typer.Option(None, help="Record every k-th step (default: about 50 records per epoch)."),
    track: int = typer.Option(4, help="Weights per layer whose trajectories are recorded."),
    snapshots: int = typer.Option(4, help="Epochs whose every weight, data term and decay term are kept for plots."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default runs/explain-TIMESTAMP)."),
    overwrite: bool = typer.Option(False, help="Allow writing into a folder that holds a previous explain."),
    json_out: bool = typer.Option(False, "--json", help="Print the numbers as JSON on stdout (no progress bar or text)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or text."),
    optimizer: str = typer.Option("sgd", help="sgd, momentum, nesterov, adam (coupled L2) or adamw (decoupled weight decay)."),
    momentum: Optional[float] = typer.Option(None, help="momentum/nesterov: μ (default 0.9)."),
    weight_decay: Optional[str] = typer.Option(None, help="adamw only: decoupled weight decay wd (default 0.01), or a list; wd = 0 is added as the companion."),
) -> None:
    """Why is L2 an addition? Record the decay and data terms of every weight, with a λ = 0 companion."""
    import json

    from . import explain as E
    from . import report, store

    if run is not None:
        given = [f"--{name.replace('_', '-')}" for name in _EXPLAIN_TRAIN_OPTIONS
                 if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")]
        if given:
            raise L2RegError(f"--run takes the training options from the run; drop {', '.join(given)}.")
    total = epochs if run is None else E.load_run_config(run).get("epochs", epochs)
    out = store.prepare_out_dir(out or _default_out("explain"), overwrite=overwrite, marker="explain.json")
    with _progress(total, quiet or json_out) as on_epoch:
        if run is not None:
            result = E.explain_run(run, record_every=record_every, track=track, snapshots=snapshots, on_epoch=on_epoch)
        else:
            result = E.explain(
                dataset=dataset, sizes=sizes, epochs=epochs, batch_size=batch_size, eta=eta, lmbda=None if lmbda is None else _lmbdas(lmbda),
                init=init, cost=cost, activation=activation, train_size=train_size, eval=eval, seed=seed,
                data_dir=data_dir, record_every=record_every, track=track, snapshots=snapshots, on_epoch=on_epoch,
                optimizer=optimizer, momentum=momentum,
                weight_decay=None if weight_decay is None else V.parse_list("--weight-decay", weight_decay, float),
            )
    result.save(out)
    store.write_text(out / "report.html", report.explain_report_html(result))
    if json_out:
        console.file.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
        return
    if quiet:
        return
    for note in result.notes:
        err_console.print(note)
    for k, lm in enumerate(result.lmbdas):
        if result.strength(k) > 0:
            console.print(f"[bold]{result.label(k)}: is L2 regularization an addition?[/bold]")
            for line in E.answer(result, k):
                console.print(f"• {line}", highlight=False)
            console.print("\n".join(E.derivation(result, k)), highlight=False, markup=False)
    console.print(report.explain_table(result))
    console.print(f"Trained {len(result.lmbdas)} model(s) in {result.train_seconds:.2f} s "
                  f"(+{result.compile_seconds:.1f} s compiling). Wrote {out}/explain.json, {out}/explain.npz "
                  f"and {out}/report.html.")


@app.command()
def convert(
    value: float = typer.Argument(..., help="The value to convert."),
    source: str = typer.Option("nielsen", "--from", help="Its convention: nielsen, coupled, keras-l2, mlp-alpha, "
                               "mlp-alpha-lbfgs, ridge-alpha, logistic-c, sgd-alpha, decoupled-sgd, decoupled-adam."),
    n: Optional[int] = typer.Option(None, "--n", help="Training-set size n."),
    batch_size: Optional[int] = typer.Option(None, help="Mini-batch size m (scikit-learn MLP sgd/adam)."),
    eta: Optional[float] = typer.Option(None, help="SGD learning rate η that λ goes with."),
    lr: Optional[float] = typer.Option(None, help="Learning rate of the decoupled-decay optimizer (default η)."),
    to: Optional[str] = typer.Option(None, help="Only these conventions (comma-separated); default all."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Convert λ between Nielsen, PyTorch, Keras, scikit-learn and optax conventions."""
    import json

    from . import conventions, report

    targets = [t.strip() for t in to.split(",") if t.strip()] if to is not None else None
    result = conventions.convert(value, source, n=n, batch_size=batch_size, eta=eta, lr=lr, to=targets)
    if json_out:
        console.file.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
        return
    console.print(report.convert_table(result))
    console.print(report.convert_caveats(result))
    for note in result.notes:
        console.print(note, highlight=False)


reproduce_app = typer.Typer(help="Reproduce published results.", no_args_is_help=True)
app.add_typer(reproduce_app, name="reproduce")


@reproduce_app.command("nielsen")
def reproduce_nielsen(
    data_dir: Optional[Path] = typer.Option(None, help="Folder with the MNIST IDX files (else $L2REG_DATA, else download)."),
    seeds: str = typer.Option("0,1,2", help="Seeds, e.g. 0,1,2: each λ trains once per seed, all at once."),
    experiments: str = typer.Option("small,full", help="small (1,000 images, 400 epochs), full (50,000, 30), or both."),
    cv: bool = typer.Option(True, "--cv/--no-cv", help="Also choose λ for the small experiment by 5-fold CV on its training images."),
    quick: bool = typer.Option(False, help="Smoke test: 100 and 500 images, 5 and 1 epochs (not the real experiment)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default runs/reproduce-nielsen-TIMESTAMP)."),
    overwrite: bool = typer.Option(False, help="Allow writing into a folder that holds a previous reproduction."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
) -> None:
    """Nielsen's chapter-3 experiments on MNIST (784-30-10, λ = 0 against 0.1 and 5.0), beside his numbers."""
    from . import report, reproduce, store

    seed_list = V.parse_list("--seeds", seeds, int)
    which = [x.strip() for x in experiments.split(",") if x.strip()]
    out = store.prepare_out_dir(out or _default_out("reproduce-nielsen"), overwrite=overwrite, marker="nielsen.json")
    result = reproduce.nielsen(
        data_dir, seeds=seed_list, quick=quick, experiments=which, cv=cv,
        progress=lambda label, total: _progress(total, quiet, label),
    )
    written = result.save(out)
    if not quiet:
        for note in result.notes:
            err_console.print(note)
        console.print(report.reproduction_table(result))
        console.print(f"Done in {result.seconds:.0f} s. Wrote {', '.join(str(p) for p in written)}.")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app; any bad input is one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        app(args=argv, standalone_mode=False)
    except Interrupted as e:
        err_console.print(f"interrupted: {_one_line(e)}", markup=False, highlight=False, soft_wrap=True)
        return 130
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
