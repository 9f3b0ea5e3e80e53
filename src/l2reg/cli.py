"""The ``l2reg`` command line. Each command turns its options into the library's options
object (:mod:`l2reg.options`, checked before JAX is imported or anything is created),
calls the library, and prints what it returns.

Every option is defined once, as an ``Annotated`` alias below, and shared by
the commands that take it; defaults come from the library's constants.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import options as O
from .base import cores, helper, interrupts
from .base import validation as V
from .errors import Interrupted, L2RegError

# ---------------------------------------------------------------- consoles and the app


def _console(stderr: bool = False) -> Console:
    """Rich console; piped output is not wrapped at 80 columns mid-formula, and paths keep their colour."""
    c = Console(stderr=stderr, highlight=False)
    if not c.is_terminal:
        c = Console(stderr=stderr, highlight=False, width=160)
    return c


console = _console()
err_console = _console(stderr=True)


class _PlainHelp:
    """``--help`` listed without a type (Typer would show ``<bool>``)."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class _Command(_PlainHelp, typer.core.TyperCommand):
    pass


class _Group(_PlainHelp, typer.core.TyperGroup):
    pass


app = typer.Typer(help="L2 regularization of neural networks: train, sweep λ, explain, convert.",
                  add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=_Group)

# Typer may vendor its own copy of click: take click's exception base from Typer.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"l2reg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, metavar="",
                                                help="Print the version and exit.")] = False) -> None:
    """L2 regularization of neural networks: train, sweep λ, explain, convert."""


# ---------------------------------------------------------------- the options, defined once

DATA, MODEL, OPTIM, PENALTY, STOP, OUTPUT, CV = ("Data", "Model", "Optimizer", "Penalty", "Early stopping",
                                                 "Output", "Cross-validation")


class Numbers(list):
    """A comma-separated list of numbers on the command line, e.g. ``0,0.1,1``."""


class Integers(list):
    """A comma-separated list of integers, e.g. ``0,1,2``."""


def _parser(name: str, kind):
    """Parse ``"0,0.1,1"``; a bad list is the library's one-line error naming the option.

    (Raised as a plain :class:`L2RegError`: Typer would reword a ``ValueError``.)
    """
    wrap = Integers if kind is int else Numbers

    def parse(text):
        if isinstance(text, list):
            return text
        try:
            return wrap(V.parse_list(name, text, kind))
        except ValueError as e:
            raise L2RegError(str(e)) from None

    return parse


def _opt(panel: str, help: str, *names: str, **kw):
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


def _list_opt(panel: str, help: str, *names: str, ints: bool = False):
    parser = _parser(names[0] if names else "list", int if ints else float)
    return _opt(panel, help, *names, parser=parser, metavar="LIST")


def _choice_of(choices, panel: str, help: str, *names: str):
    """A string option whose choices are listed in --help; the library checks them (same message as the API)."""
    return _opt(panel, help, *names, metavar="[" + "|".join(choices) + "]")


def _flag(panel: str, help: str, name: str):
    return _opt(panel, help, name, metavar="")


Dataset = Annotated[str, _opt(DATA, "digits (built in), mnist, fashion-mnist, or a .npz/.csv path.")]
DataDir = Annotated[Optional[Path], _opt(DATA, "Folder with the IDX files (else $L2REG_DATA, else download).")]
TrainSize = Annotated[Optional[int], _opt(DATA, "Train on the first N training examples only.")]
Eval = Annotated[str, _choice_of(O.EVALS, DATA, "Evaluation set after every epoch.", "--eval")]
LabelColumn = Annotated[str, _opt(DATA, "A .csv dataset's label column (string labels become classes 0..C-1, sorted).")]
Standardize = Annotated[bool, _flag(DATA, "Z-score every feature by the training set's mean and sd (for raw features "
                                    "far outside [0, 1]).", "--standardize")]
Sizes = Annotated[Optional[str], _opt(MODEL, "Layer sizes, e.g. 784,30,10 (default: features,30,classes).")]
Activation = Annotated[str, _choice_of(O.ACTIVATIONS, MODEL, "Hidden activation.")]
Cost = Annotated[str, _choice_of(O.COSTS, MODEL, "C0: cross-entropy (sigmoid outputs), log-likelihood (softmax), quadratic.")]
Init = Annotated[str, _choice_of(O.INITS, MODEL, "default: weights N(0, 1/n_in); large: N(0, 1) (Nielsen's).")]
Epochs = Annotated[int, _opt(OPTIM, "Training epochs.")]
BatchSize = Annotated[int, _opt(OPTIM, "Mini-batch size m.")]
Eta = Annotated[Numbers, _list_opt(OPTIM, "Learning rate η, or a list trained at once (the grid η × λ).",
                                   "--eta", "--etas")]
Optimizer = Annotated[str, _choice_of(O.OPTIMIZERS, OPTIM, "adam: coupled L2 through Adam's moments; adamw: decoupled --weight-decay.")]
TrainOptimizer = Annotated[str, _choice_of(O.OPTIMIZERS + O.FULL_BATCH, 
    OPTIM, "adam: coupled L2 through Adam's moments; adamw: decoupled --weight-decay; lbfgs: full batch, --epochs caps its iterations.")]
Momentum = Annotated[Optional[Numbers], _list_opt(OPTIM, f"momentum/nesterov: μ (default {O.DEFAULT_MOMENTUM}), or a list.",
                                                  "--momentum")]
WeightDecay = Annotated[Optional[Numbers], _list_opt(
    OPTIM, f"adamw only: decoupled weight decay wd (PyTorch's; default {O.DEFAULT_WEIGHT_DECAY}), or a list.",
    "--weight-decay")]
DecayScaling = Annotated[Optional[str], _choice_of(O.DECAY_SCALINGS, 
    OPTIM, "adamw: lr (wd·η_t, PyTorch/optax; the default) or schedule (wd·η_t/η, the paper's).")]
Schedule = Annotated[str, _choice_of(O.SCHEDULES, OPTIM, "Learning-rate schedule.")]
WarmupEpochs = Annotated[int, _opt(OPTIM, "Epochs of linear learning-rate warm-up before the schedule.")]
StepEpochs = Annotated[Optional[int], _opt(OPTIM, "step schedule: epochs between drops (default a third of --epochs).")]
StepGamma = Annotated[float, _opt(OPTIM, "step schedule: factor of each drop.")]
Seed = Annotated[Integers, _list_opt(OPTIM, "Seed of the initial weights and the mini-batch order, or a list.",
                                     "--seed", "--seeds", ints=True)]
# sweep and explain take one seed and one momentum (a sweep's seed draws the folds; its grid is λ): their help says
# so, and a list still reaches the library's one-line refusal.
OneSeed = Annotated[Integers, _opt(OPTIM, "Seed of the initial weights, the mini-batch order (and a sweep's folds): "
                                   "one value.", "--seed", parser=_parser("--seed", int), metavar="INT")]
OneMomentum = Annotated[Optional[Numbers], _opt(OPTIM, f"momentum/nesterov: μ, one value (default {O.DEFAULT_MOMENTUM}).",
                                                "--momentum", parser=_parser("--momentum", float), metavar="FLOAT")]
Lmbda = Annotated[Optional[Numbers], _list_opt(
    PENALTY, f"λ, or a list trained at once (e.g. 0,0.1,1,5); default {O.DEFAULT_LMBDA:g} (0 with adamw).",
    "--lmbda", "--lmbdas")]
Penalty = Annotated[str, _choice_of(O.PENALTIES, PENALTY, "l2 (λ/2n)·Σw², l1 (λ/n)·Σ|w|, elastic-net, or none.")]
L1Ratio = Annotated[Optional[float], _opt(PENALTY, "elastic-net: ρ in (λ/n)·[ρ·Σ|w| + ((1−ρ)/2)·Σw²] (default 0.5).")]
L1Update = Annotated[str, _choice_of(O.L1_UPDATES, PENALTY, "l1/elastic-net: subgradient, or prox (soft threshold: exact zeros).")]
LmbdaPerLayer = Annotated[Optional[str], _opt(
    PENALTY, "One λ per weight layer instead of --lmbda, e.g. 5,0.5 (';' separates configurations trained at once).")]
PenalizeBiases = Annotated[bool, _flag(PENALTY, "Penalize (or decay) the biases too.", "--penalize-biases")]
EarlyStopping = Annotated[bool, _flag(STOP, "Stop each run when its validation score has not improved for --patience epochs.",
                                      "--early-stopping")]
Patience = Annotated[int, _opt(STOP, "Epochs without improvement (Nielsen's rule: 10).")]
StopOn = Annotated[str, _choice_of(O.STOP_ON, STOP, "What early stopping watches on the validation set.")]
Monitor = Annotated[Optional[str], _opt(OUTPUT, "What to compute each epoch (comma-separated; '' for nothing).")]
Out = Annotated[Optional[Path], _opt(OUTPUT, "Output folder (default runs/COMMAND-TIMESTAMP).")]
Overwrite = Annotated[bool, _flag(OUTPUT, "Allow writing into a folder that holds a previous run.", "--overwrite")]
Resume = Annotated[Optional[Path], _opt(OUTPUT, "Continue the interrupted run in this folder; options default to its own.")]
Figures = Annotated[Optional[str], _choice_of(O.FIGURE_FORMATS, OUTPUT, "Also write every figure alone, in this format, to OUT/figures/.")]
KeepCheckpoints = Annotated[bool, _flag(OUTPUT, "Keep the checkpoints of a finished run (they are removed by default).",
                                        "--keep-checkpoints")]
Quiet = Annotated[bool, _opt(OUTPUT, "No progress bar or table; one line says where the results are.", "--quiet", "-q",
                             metavar="")]
Folds = Annotated[int, _opt(CV, "Number of stratified cross-validation folds of the training set.")]
Select = Annotated[str, _choice_of(O.SELECT, CV, "min: best mean CV score; 1se: largest λ within one standard error of it.")]
LmbdaGrid = Annotated[Optional[str], _opt(CV, "λ = 0 plus K log-spaced values: LO:HI:K, e.g. 0.01:10:12.")]
Backend = Annotated[str, _choice_of(O.BACKENDS, CV, "Where the grid trains: in this process, or in blocks on a Ray cluster.")]
Address = Annotated[Optional[str], _opt(CV, "ray: the cluster, 'auto' or HOST:PORT (default: start a local one).")]
BlockSize = Annotated[Optional[int], _opt(CV, "ray: (η, λ) pairs per task (default: all of a fold's pairs).")]
SweepLmbda = Annotated[Optional[Numbers], _list_opt(
    CV, "The λ grid, e.g. 0,0.01,0.1,1 (default: 0 plus 12 values, λ/n from 1e-5 to 3e-2).", "--lmbda", "--lmbdas")]
ModelLmbda = Annotated[Optional[Numbers], _list_opt(
    CV, "The λ grid (coupled L2), e.g. 0,0.01,0.1,1 (default: 0 plus 12 values, λ/n from 1e-5 to 3e-2); with "
        "--optimizer adamw give --weight-decay instead.", "--lmbda", "--lmbdas")]
SweepWeightDecay = Annotated[Optional[Numbers], _list_opt(
    CV, "--optimizer adamw only: the grid of its decoupled weight decay, e.g. 0,0.01,0.1 (default: "
        "0 plus 12 log-spaced values from 0.0001 to 1).", "--weight-decay")]


def _monitor(text: str | None, default) -> tuple:
    return tuple(default) if text is None else tuple(m.strip() for m in text.split(",") if m.strip())


def _default_out(command: str) -> Path:
    return Path("runs") / f"{command.replace(' ', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"


#: Parameters of a command named otherwise in the options object (the model sweeps' factory and data).
_OPTION_OF = {"factory": "model", "data": "dataset"}


def _explicit(ctx: typer.Context) -> set:
    """The options the user typed, by their names in the options object (a resume keeps the run's own for the
    others)."""
    return {_OPTION_OF.get(name, name) for name in ctx.params
            if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")}


# ---------------------------------------------------------------- progress and results


@contextmanager
def _progress(total: int, quiet: bool, what: str = "epoch"):
    """A Rich progress bar over epochs; yields the library's per-epoch callback.

    The bar appears on the first call (``epoch=None``: compiling), so that
    errors found while loading the data are reported before any bar is drawn.
    """
    if quiet:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn(f"[bold]{what}"), MofNCompleteColumn(), BarColumn(),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=err_console)
    task = None

    def on_epoch(epoch: int | None, metrics: dict | None) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task(what, total=total, status="compiling…")
        if epoch is None:
            return
        parts = []
        # the held-out accuracy: the evaluation split (train), a CV fold (validation) or the test set (refit)
        held_out = next((k for k in ("evaluation_accuracy", "validation_accuracy", "test_accuracy") if k in metrics),
                        "evaluation_accuracy")
        for key, label in (("training_cost", "train cost"), (held_out, "eval acc")):
            if key in metrics:
                lo, hi = float(metrics[key].min()), float(metrics[key].max())
                fmt = (lambda x: f"{100 * x:.2f}%") if "accuracy" in key else (lambda x: f"{x:.4g}")
                parts.append(f"{label} {fmt(lo)}" if lo == hi else f"{label} {fmt(lo)}–{fmt(hi)}")
        progress.update(task, completed=epoch + 1, status="  ".join(parts))

    try:
        yield on_epoch
    finally:
        if task is not None:  # a bar never drawn: rich would still print an empty line to a pipe
            progress.stop()


def _stopped(e: Interrupted, command: str, folder: Path) -> str:
    """What Ctrl-C stopped, what is saved, and the command that continues."""
    from .base.checkpoint import saved_in

    saved = [p.name + ("/" if p.is_dir() else "") for p in saved_in(folder)]
    if not saved:
        return f"{e} Nothing was saved yet; run the same command again to start over."
    return f"{e} Saved in {folder}: {', '.join(saved)}. Resume with: l2reg {command} --resume {folder}"


def _check_figures(fmt) -> None:
    if fmt is not None:
        V.choice("figures", fmt, O.FIGURE_FORMATS)


def _trained(what: str, result, folder: Path) -> None:
    files = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")))
    compiling = f" (+{result.compile_seconds:.1f} s compiling)" if result.compile_seconds >= 0.05 else ""
    console.print(f"Trained {what} in {result.train_seconds:.2f} s{compiling}. Wrote {folder}/: {files}.",
                  soft_wrap=True)


@contextmanager
def _block_progress(quiet: bool):
    """A Rich progress bar over a cluster's finished blocks; yields the ``on_block(done, total, cluster)`` hook."""
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]blocks"), MofNCompleteColumn(), BarColumn(),
                        TextColumn("{task.fields[cluster]}"), TimeElapsedColumn(), console=err_console)
    task = None

    def on_block(done: int, total: int, cluster: str) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task("blocks", total=total, cluster=cluster)
        progress.update(task, completed=done, total=total, cluster=cluster)

    try:
        yield on_block
    finally:
        if task is not None:
            progress.stop()


def _notes(notes) -> None:
    for note in notes:
        err_console.print(note, soft_wrap=True)


def _run_folder(command: str, out: Path | None, resume: Path | None, overwrite: bool, marker: str) -> Path:
    """The output folder, checked (created only when the first file is written)."""
    from .base import store

    if resume is not None:
        return store.check_out_dir(resume, overwrite=True, marker=marker)
    return store.check_out_dir(out or _default_out(command), overwrite=overwrite, marker=marker)


def _train_with(opts, **kw):
    from .fronts.training import train_with  # JAX: imported only once the options are checked

    return train_with(opts, **kw)


def _sweep_with(opts, **kw):
    from .fronts.sweeping import sweep_with

    return sweep_with(opts, **kw)


def _train_models(opts) -> int:
    from .fronts.training import grid

    return len(grid(opts))


#: What a sweep's helper process imports (:mod:`l2reg.base.helper`): scikit-learn for the folds, then the
#: report's figures (train draws none by default).
HELPER_FIGURES = ("matplotlib.pyplot", "l2reg.present.pages")
HELPER_SWEEP = (("sklearn.model_selection",), HELPER_FIGURES)


def _run_and_save(command: str, opts, flat: dict, run, folder: Path, *, resume, stages: int, models):
    """``run`` under a progress bar, then its folder written; Ctrl-C in either says how to resume."""
    blocks = getattr(opts, "backend", "local") == "ray"
    with cores.one_core_for(models(opts) if models is not None else cores.BELOW), (
            _block_progress(flat["quiet"]) if blocks else _progress(
                stages * opts.epochs, flat["quiet"], what="epoch" if stages == 1 else command)) as hook:
        try:
            interrupts.phase("options")
            kw = {"on_block": hook} if blocks else {"on_epoch": hook}
            result = run(opts, checkpoint_dir=folder, resume=resume is not None, **kw)
        except Interrupted as e:
            raise Interrupted(_stopped(e, command, folder), epoch=e.epoch) from None
    from .present.save import save

    try:
        save(result, folder, interruptible=True)  # Ctrl-C here: the checkpoints stay; --resume writes it again
    except Interrupted as e:
        raise Interrupted(_stopped(e, command, folder), epoch=e.epoch) from None
    return result


def _run(ctx, command: str, cls, flat: dict, run, *, marker: str, stages: int = 1, models=None):
    """The flow of train and the sweeps (``sweep``, ``torch sweep``, ``jax sweep``): the options checked (on
    ``--resume``, the run's own), the folder checked, ``run(opts, checkpoint_dir=, resume=, on_epoch= or
    on_block=)`` under a progress bar, the result saved. Returns ``(result, folder)``.
    ``models(opts)``: how many models the run trains (a small run is pinned to one core)."""
    _check_figures(flat["figures"])
    opts = cls.from_flat(flat).checked()
    resume = flat["resume"]
    if resume is not None:
        from .base.checkpoint import resume_note, resume_options

        opts = resume_options(resume, flat, _explicit(ctx), cls=cls, command=command)
        err_console.print(resume_note(resume), soft_wrap=True)
    folder = _run_folder(command, flat["out"], resume, flat["overwrite"], marker)
    with helper.started(*HELPER_SWEEP) if stages == 2 else nullcontext():  # train: no folds, no figures
        result = _run_and_save(command, opts, flat, run, folder, resume=resume, stages=stages, models=models)
    if not flat["keep_checkpoints"]:
        from .base.checkpoint import remove_all

        remove_all(folder)
    if flat["figures"] is not None:
        from .present.report import write_figures

        write_figures(result, folder / "figures", fmt=flat["figures"])
    if flat["quiet"]:
        console.print(f"Wrote {folder}/", soft_wrap=True)
    else:
        _notes(result.notes)
    return result, folder


# ---------------------------------------------------------------- train


@app.command(cls=_Command)
def train(
    ctx: typer.Context,
    dataset: Dataset = "digits", data_dir: DataDir = None, train_size: TrainSize = None, label_column: LabelColumn = "label",
    standardize: Standardize = False, eval: Eval = "validation",
    sizes: Sizes = None, activation: Activation = "sigmoid", cost: Cost = "cross-entropy", init: Init = "default",
    optimizer: TrainOptimizer = "sgd", eta: Eta = Numbers([O.DEFAULT_ETA]), epochs: Epochs = O.DEFAULT_EPOCHS,
    batch_size: BatchSize = O.DEFAULT_BATCH_SIZE, momentum: Momentum = None, weight_decay: WeightDecay = None,
    decay_scaling: DecayScaling = None, schedule: Schedule = "constant", warmup_epochs: WarmupEpochs = 0,
    step_epochs: StepEpochs = None, step_gamma: StepGamma = 0.1, seed: Seed = Integers([0]),
    lmbda: Lmbda = None, penalty: Penalty = "l2", l1_ratio: L1Ratio = None, l1_update: L1Update = "subgradient",
    lmbda_per_layer: LmbdaPerLayer = None, penalize_biases: PenalizeBiases = False,
    early_stopping: EarlyStopping = False, patience: Patience = O.DEFAULT_PATIENCE, stop_on: StopOn = "accuracy",
    monitor: Monitor = None, out: Out = None, overwrite: Overwrite = False, resume: Resume = None,
    keep_checkpoints: KeepCheckpoints = False, figures: Figures = None, quiet: Quiet = False,
) -> None:
    """Train networks on C = C0 + (λ/2n)·Σw² (or L1, elastic net), every λ at once."""
    flat = dict(locals(), monitor=_monitor(monitor, O.MONITORS))
    result, folder = _run(ctx, "train", O.TrainOptions, flat, _train_with, marker="metrics.json",
                          models=_train_models)
    if quiet:
        return
    from .present import report

    console.print(report.train_table(result))
    _trained(f"{len(result.runs)} model(s)", result, folder)


# ---------------------------------------------------------------- sweep


@app.command(cls=_Command)
def sweep(
    ctx: typer.Context,
    dataset: Dataset = "digits", data_dir: DataDir = None, train_size: TrainSize = None, label_column: LabelColumn = "label",
    standardize: Standardize = False,
    sizes: Sizes = None, activation: Activation = "sigmoid", cost: Cost = "cross-entropy", init: Init = "default",
    lmbda: SweepLmbda = None, lmbda_grid: LmbdaGrid = None, folds: Folds = O.DEFAULT_FOLDS, select: Select = "min",
    optimizer: Optimizer = "sgd", eta: Eta = Numbers([O.DEFAULT_ETA]), epochs: Epochs = O.DEFAULT_EPOCHS,
    batch_size: BatchSize = O.DEFAULT_BATCH_SIZE, momentum: OneMomentum = None, weight_decay: WeightDecay = None,
    decay_scaling: DecayScaling = None, schedule: Schedule = "constant", warmup_epochs: WarmupEpochs = 0,
    step_epochs: StepEpochs = None, step_gamma: StepGamma = 0.1, seed: OneSeed = Integers([0]),
    penalty: Penalty = "l2", l1_ratio: L1Ratio = None, l1_update: L1Update = "subgradient",
    penalize_biases: PenalizeBiases = False, monitor: Monitor = None, backend: Backend = "local",
    address: Address = None, block_size: BlockSize = None, out: Out = None,
    overwrite: Overwrite = False, resume: Resume = None, keep_checkpoints: KeepCheckpoints = False,
    figures: Figures = None, quiet: Quiet = False,
) -> None:
    """Choose λ by k-fold cross-validation: every λ × fold trains at once, then the λ path is refit."""
    flat = dict(locals(), monitor=_monitor(monitor, O.CV_MONITOR))
    result, folder = _run(ctx, "sweep", O.SweepOptions, flat, _sweep_with, marker="sweep.json", stages=2)
    if not quiet:
        _print_sweep(result, folder)


def _print_sweep(result, folder: Path) -> None:
    """A finished sweep's table, gap, answer and files (``l2reg sweep``, ``torch sweep``, ``jax sweep``)."""
    from .present import report

    console.print(report.sweep_table(result))
    console.print(report.sweep_gap_sentence(result), soft_wrap=True)
    console.print(report.sweep_answer(result), soft_wrap=True, markup=False)
    console.print(report.test_set_note(result))
    _trained(f"{result.config['models_cv']} CV models and {result.config['models_refit']} refit models", result,
             folder)


# ---------------------------------------------------------------- explain

_RUN_TAKES = ("dataset", "data_dir", "train_size", "label_column", "standardize", "eval", "sizes", "activation", "cost", "init", "optimizer", "eta",
              "epochs", "batch_size", "momentum", "weight_decay", "seed", "lmbda")


@app.command(cls=_Command)
def explain(
    ctx: typer.Context,
    run: Annotated[Optional[Path], _opt(DATA, "A finished 'l2reg train' folder: re-run it with recording (its options are used).")] = None,
    dataset: Dataset = "digits", data_dir: DataDir = None, train_size: TrainSize = None, label_column: LabelColumn = "label",
    standardize: Standardize = False, eval: Eval = "validation",
    sizes: Sizes = None, activation: Activation = "sigmoid", cost: Cost = "cross-entropy", init: Init = "default",
    optimizer: Optimizer = "sgd", eta: Eta = Numbers([O.DEFAULT_ETA]), epochs: Epochs = O.DEFAULT_EPOCHS,
    batch_size: BatchSize = O.DEFAULT_BATCH_SIZE, momentum: OneMomentum = None, weight_decay: WeightDecay = None,
    seed: OneSeed = Integers([0]),
    lmbda: Annotated[Optional[Numbers], _list_opt(
        PENALTY, f"λ, or a list; λ = 0 is always added as the companion (default {O.DEFAULT_LMBDA:g}, 0 with adamw).",
        "--lmbda", "--lmbdas")] = None,
    record_every: Annotated[Optional[int], _opt(OUTPUT, "Record every k-th step (default: about 50 records per epoch).")] = None,
    track: Annotated[int, _opt(OUTPUT, "Weights per layer whose trajectories are recorded.")] = 4,
    snapshots: Annotated[int, _opt(OUTPUT, "Epochs whose every weight, data term and decay term are kept for plots.")] = 4,
    out: Out = None, overwrite: Overwrite = False, figures: Figures = None,
    json_out: Annotated[bool, _flag(OUTPUT, "Print the numbers as JSON on stdout (no progress bar or text).", "--json")] = False,
    quiet: Quiet = False,
) -> None:
    """Why is L2 an addition? Record the decay and data terms of every weight, with a λ = 0 companion."""
    import json

    _check_figures(figures)
    given = sorted(_explicit(ctx) & set(_RUN_TAKES))
    if run is not None and given:
        raise L2RegError(f"--run takes the training options from the run; drop "
                         f"{', '.join('--' + g.replace('_', '-') for g in given)}.")
    if run is None:
        opts = O.ExplainOptions.from_flat(locals()).checked()
    folder = _run_folder("explain", out, None, overwrite, "explain.json")
    with helper.started(then=HELPER_FIGURES):  # the report's figures, drawn while explain trains
        from .fronts.explaining import explain_run, explain_with, load_run_config
        from .present import report
        from .present.save import explain_document, save
        from .present.words import answer, derivation

        total = epochs if run is None else load_run_config(run).get("epochs", epochs)
        # the λs and their λ = 0 companion
        models = len(set(opts.decay_values) | {0.0}) if run is None else cores.BELOW
        with cores.one_core_for(models), _progress(total, quiet or json_out) as on_epoch:
            try:
                interrupts.phase("options")
                if run is not None:
                    result = explain_run(run, record_every=record_every, track=track, snapshots=snapshots,
                                         on_epoch=on_epoch)
                else:
                    result = explain_with(opts, on_epoch=on_epoch)
            except Interrupted as e:
                raise Interrupted(_stopped(e, "explain", folder), epoch=e.epoch) from None
        save(result, folder)
    if figures is not None:
        report.write_figures(result, folder / "figures", fmt=figures)
    if json_out:
        console.file.write(json.dumps(explain_document(result), indent=2, ensure_ascii=False) + "\n")
        return
    if quiet:
        console.print(f"Wrote {folder}/", soft_wrap=True)
        return
    _notes(result.notes)
    for k in range(len(result.lmbdas)):
        if result.strength(k) > 0:
            console.print(f"[bold]{result.label(k)}: is L2 regularization an addition?[/bold]")
            for line in answer(result, k):
                console.print(f"• {line}", soft_wrap=True)
            console.print("\n".join(derivation(result, k)), markup=False, soft_wrap=True)
    console.print(report.explain_table(result))
    _trained(f"{len(result.lmbdas)} model(s)", result, folder)


# ---------------------------------------------------------------- convert


def _conventions_help() -> str:
    """Every convention with its aliases, e.g. ``decoupled-adam (adamw)``."""
    from .fronts.conventions import ALIASES, CONVENTIONS

    names = [key + (f" ({', '.join(a for a, k in ALIASES.items() if k == key)})" if key in ALIASES.values() else "")
             for key in CONVENTIONS]
    return "Its convention (aliases in brackets): " + ", ".join(names) + "."


# ignore_unknown_options: a negative value ("convert -5") reaches the library's one-line refusal
# instead of Click's "No such option: -5".
@app.command(cls=_Command, context_settings={"ignore_unknown_options": True})
def convert(
    value: Annotated[float, typer.Argument(help="The value to convert (>= 0).")],
    source: Annotated[str, typer.Option("--from", help=_conventions_help())] = "nielsen",
    n: Annotated[Optional[int], typer.Option("--n", help="Training-set size n.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Mini-batch size m.")] = None,
    eta: Annotated[Optional[float], typer.Option(help="SGD learning rate η that λ goes with (from decoupled-adam: "
                                                 "default --lr).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate of the decoupled-decay optimizer (default η).")] = None,
    momentum: Annotated[Optional[float], typer.Option(help="Momentum μ of the SGD that λ goes with (its timescale).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="The run's length: warn when τ_epoch exceeds it.")] = None,
    to_batch_size: Annotated[Optional[int], typer.Option(help="Transfer the setting to this batch size, keeping τ_epoch.")] = None,
    to_n: Annotated[Optional[int], typer.Option(help="Transfer the setting to this training-set size, keeping τ_epoch.")] = None,
    to_eta: Annotated[Optional[float], typer.Option(help="Transfer the setting to this learning rate, keeping τ_epoch.")] = None,
    to: Annotated[Optional[str], typer.Option(help="Only these conventions (comma-separated); default all.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.", metavar="")] = False,
) -> None:
    """Convert λ between Nielsen, PyTorch, Keras, scikit-learn and optax conventions."""
    import json

    from .fronts import conventions
    from .present import report

    targets = [t.strip() for t in to.split(",") if t.strip()] if to is not None else None
    result = conventions.convert(value, source, n=n, batch_size=batch_size, eta=eta, lr=lr, to=targets,
                                 momentum=momentum, epochs=epochs, to_batch_size=to_batch_size, to_n=to_n,
                                 to_eta=to_eta)
    if json_out:
        console.file.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
        return
    console.print(report.convert_table(result))
    for line in report.convert_code(result):  # unwrapped, so that each line pastes as is
        console.print(line, markup=False, soft_wrap=True)
    console.print(report.convert_caveats(result))
    for note in result.notes:
        console.print(note, soft_wrap=True)
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", soft_wrap=True)


# ---------------------------------------------------------------- reproduce

reproduce_app = typer.Typer(help="Reproduce published results.", no_args_is_help=True, cls=_Group)
app.add_typer(reproduce_app, name="reproduce")


@reproduce_app.command("nielsen", cls=_Command)
def reproduce_nielsen(
    data_dir: DataDir = None,
    seeds: Annotated[Integers, _list_opt(OPTIM, "Seeds: each λ trains once per seed, all at once.", "--seeds", "--seed",
                                         ints=True)] = Integers([0, 1, 2]),
    experiments: Annotated[str, typer.Option(help="small (1,000 images, 400 epochs), full (50,000, 30), or both.")] = "small,full",
    cv: Annotated[bool, typer.Option("--cv/--no-cv", help="Also choose λ for the small experiment by 5-fold CV on its training images.")] = True,
    quick: Annotated[bool, _flag(OUTPUT, "Smoke test: 100 and 500 images, 5 and 1 epochs (not the real experiment).", "--quick")] = False,
    out: Out = None, overwrite: Overwrite = False, quiet: Quiet = False,
) -> None:
    """Nielsen's chapter-3 experiments on MNIST (784-30-10, λ = 0 against 0.1 and 5.0), beside his numbers."""
    from .fronts import reproduce
    from .present import report
    from .present.save import save

    which = [x.strip() for x in experiments.split(",") if x.strip()]
    folder = _run_folder("reproduce-nielsen", out, None, overwrite, "nielsen.json")
    result = reproduce.nielsen(data_dir, seeds=list(seeds), quick=quick, experiments=which, cv=cv,
                               progress=lambda label, total: _progress(total, quiet, label))
    written = save(result, folder)
    if quiet:
        console.print(f"Wrote {folder}/", soft_wrap=True)
        return
    _notes(result.notes)
    console.print(report.reproduction_table(result))
    console.print(f"Done in {result.seconds:.0f} s. Wrote {', '.join(str(p) for p in written)}.", soft_wrap=True)


# ---------------------------------------------------------------- your own PyTorch model

torch_app = typer.Typer(help="Your own PyTorch model: which parameters decay, and λ by cross-validation.",
                        no_args_is_help=True, cls=_Group)
app.add_typer(torch_app, name="torch")
Factory = Annotated[str, typer.Argument(help="The model factory, module:function or file.py:function (no arguments).",
                                        metavar="MODULE:FACTORY")]
SweepFactory = Annotated[Optional[str], typer.Argument(
    help="The model factory, module:function or file.py:function (no arguments); --resume: the run's own.",
    metavar="MODULE:FACTORY", show_default=False)]
SweepData = Annotated[Optional[str], _opt(DATA, "A .npz with X (any shape the model takes) and y, optional X_test and "
                                          "y_test; a .csv (its --label-column); or digits, mnist, fashion-mnist "
                                          "(the rows l2reg sweep cross-validates on). --resume: the run's own.")]
Policy = Annotated[str, _choice_of(O.POLICIES, PENALTY, "Which parameters decay: l2reg (weights, never biases or "
                                   "norms) or the rule of timm, hf, mingpt or nanogpt.")]


@torch_app.command("audit", cls=_Command)
def torch_audit(
    factory: Factory, policy: Policy = "l2reg",
    compare: Annotated[Optional[str], _opt(PENALTY, "Other policies to compare with, e.g. timm,hf.")] = None,
) -> None:
    """Every parameter of the model: decayed or not, by which rule; totals; where two policies differ."""
    from .torch import audit, load_factory

    _print_audit(audit(load_factory(factory)(), policy, compare=_names(compare)))


def _names(text: str | None) -> list[str] | None:
    """A comma-separated option as its names (None when not given)."""
    return None if text is None else [p.strip() for p in text.split(",") if p.strip()]


def _print_audit(result) -> None:
    from .models.audit import audit_tables

    for table in audit_tables(result):
        console.print(table)


@torch_app.command("sweep", cls=_Command)
def torch_sweep(
    ctx: typer.Context, factory: SweepFactory = None, data: SweepData = None, label_column: LabelColumn = "label",
    lmbda: ModelLmbda = None, weight_decay: SweepWeightDecay = None, eta: Eta = Numbers([0.1]),
    folds: Folds = O.DEFAULT_FOLDS, select: Select = "min",
    optimizer: Optimizer = "sgd", epochs: Epochs = 10, batch_size: BatchSize = 64, momentum: Momentum = None,
    seed: Seed = Integers([0]), policy: Policy = "l2reg",
    device: Annotated[str, _opt(OPTIM, "cpu, or cuda where available.")] = "cpu",
    strategy: Annotated[str, _choice_of(O.STRATEGIES, OPTIM, "How the ensemble steps its members: auto measures "
                                        "the first steps of each way and keeps the fastest.")] = "auto",
    backend: Backend = "local", address: Address = None, block_size: BlockSize = None,
    out: Out = None, overwrite: Overwrite = False, resume: Resume = None, keep_checkpoints: KeepCheckpoints = False,
    figures: Figures = None, quiet: Quiet = False,
) -> None:
    """Choose λ for your own PyTorch model: every λ × fold in one torch.func ensemble, then the λ path refit.

    Under --optimizer adamw the grid is its decoupled --weight-decay (default 0 plus 12 log-spaced values from 0.0001
    to 1), chosen and refit the same way."""
    _model_sweep(ctx, "torch sweep", O.TorchSweepOptions, dict(locals(), dataset=data, model=factory))


# ---------------------------------------------------------------- your own JAX model

jax_app = typer.Typer(help="Your own Flax NNX, Linen or Equinox model: which leaves decay, and λ by cross-validation.",
                      no_args_is_help=True, cls=_Group)
app.add_typer(jax_app, name="jax")
JaxFactory = Annotated[str, typer.Argument(help="The model factory model_fn(key), module:function or "
                                           "file.py:function.", metavar="MODULE:FACTORY")]
JaxSweepFactory = Annotated[Optional[str], typer.Argument(help="The model factory model_fn(key), module:function or "
                                                          "file.py:function; --resume: the run's own.",
                                                          metavar="MODULE:FACTORY", show_default=False)]
JaxPolicy = Annotated[str, _choice_of(O.JAX_POLICIES, PENALTY, "Which leaves decay: l2reg (kernels, conv kernels, "
                                      "embeddings; never biases or norms) or ndim (x.ndim > 1, optax's habit).")]


@jax_app.command("audit", cls=_Command)
def jax_audit(
    factory: JaxFactory, policy: JaxPolicy = "l2reg",
    compare: Annotated[Optional[str], _opt(PENALTY, "Other policies to compare with, e.g. ndim.")] = None,
) -> None:
    """Every parameter leaf of the model: decayed or not, by which rule; totals; where two policies differ."""
    from .jax import audit
    from .jax.sweep import load_factory

    _print_audit(audit(load_factory(factory), policy, compare=_names(compare)))


@jax_app.command("sweep", cls=_Command)
def jax_sweep(
    ctx: typer.Context, factory: JaxSweepFactory = None, data: SweepData = None, label_column: LabelColumn = "label",
    lmbda: ModelLmbda = None, weight_decay: SweepWeightDecay = None, eta: Eta = Numbers([0.1]),
    folds: Folds = O.DEFAULT_FOLDS, select: Select = "min",
    optimizer: Optimizer = "sgd", epochs: Epochs = 10, batch_size: BatchSize = 64, momentum: Momentum = None,
    seed: Seed = Integers([0]), policy: JaxPolicy = "l2reg",
    strategy: Annotated[str, _choice_of(O.JAX_STRATEGIES, OPTIM, "How the members are stepped in the compiled "
                                        "program: auto times a few steps of each way and keeps the fastest.")] = "auto",
    backend: Backend = "local", address: Address = None, block_size: BlockSize = None,
    out: Out = None, overwrite: Overwrite = False, resume: Resume = None, keep_checkpoints: KeepCheckpoints = False,
    figures: Figures = None, quiet: Quiet = False,
) -> None:
    """Choose λ for your own JAX model: every λ × fold in one compiled program, then the λ path refit.

    Under --optimizer adamw the grid is its decoupled --weight-decay (default 0 plus 12 log-spaced values from 0.0001
    to 1), chosen and refit the same way."""
    _model_sweep(ctx, "jax sweep", O.JaxSweepOptions, dict(locals(), dataset=data, model=factory))


def _model_sweep(ctx, command: str, cls, flat: dict) -> None:
    """``l2reg torch sweep`` and ``l2reg jax sweep``: :func:`_run`'s flow with the front's ``sweep_with`` (the
    factory and the data are options like the others: a resume takes the run's own)."""
    if flat["resume"] is None and (flat["model"] is None or flat["dataset"] is None):
        raise L2RegError(f"give the model factory MODULE:FACTORY and --data (or --resume DIR); see "
                         f"'l2reg {command} --help'.")

    def run(opts, **kw):
        if command == "torch sweep":
            from .torch.sweeping import sweep_with
        else:
            from .jax.sweep import sweep_with
        return sweep_with(opts.model, opts.dataset, opts, **kw)

    result, folder = _run(ctx, command, cls, flat, run, marker="sweep.json", stages=2)
    if not flat["quiet"]:
        _print_sweep(result, folder)


# ---------------------------------------------------------------- main


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(text: str) -> None:
    err_console.print(text, markup=False, soft_wrap=True)


def _command_path(ctx) -> str:
    """``l2reg torch sweep`` for a nested command's context (the root's own name may be a test runner's)."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(["l2reg", *reversed(names)])


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input is one line on stderr and exit code 2; Ctrl-C exits 130 saying what was saved."""
    interrupts.install()  # again (a no-op after l2reg._entry), for callers of main() itself
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from .base.checkpoint import AlreadyComplete

    try:
        result = app(args=argv, standalone_mode=False)
    except AlreadyComplete as e:
        _error(str(e))
        return 0
    except Interrupted as e:
        _error(f"interrupted: {_one_line(e)}")
        return 130
    except L2RegError as e:
        _error(f"error: {_one_line(e)}")
        return 2
    except _ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            _error(e.format_message())
            return 0
        hint = f" (see '{_command_path(e.ctx)} --help')" if getattr(e, "ctx", None) and e.ctx.parent else ""
        _error(f"error: {_one_line(e.format_message())}{hint}")
        return 2
    except (typer.Abort, KeyboardInterrupt):
        _error("interrupted: nothing was saved.")
        return 130
    except typer.Exit as e:
        return e.exit_code
    if interrupts.requested():  # Ctrl-C while the finished run was being saved
        _error("interrupted: the run had finished; its results are saved.")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
