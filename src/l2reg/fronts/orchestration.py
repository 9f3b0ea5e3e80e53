"""One sweep orchestration for every front: folds × grid → blocks → executor → selection → refit → result.

A front (the JAX MLP in :mod:`l2reg.fronts.sweeping`, PyTorch models in
:mod:`l2reg.torch.sweeping`, JAX models in :mod:`l2reg.jax`) supplies only
what trains one block, as :class:`Blocks`: ``cv(task, block, *, on_epoch,
checkpoint)`` for a :class:`~l2reg.fronts.cv.Block` of folds × pairs and
``refit(task, block, *, on_epoch, checkpoint)`` for a
:class:`~l2reg.fronts.cv.RefitBlock` of the λ path, each returning a
:class:`~l2reg.fronts.cv.BlockResult`. The ``task`` is the front's own
(what a cluster worker receives once); the orchestration reads only its
grid: ``folds``, ``seeds`` (one per fold), ``pair_eta`` and ``pair_lmbda``
(``(P,)``, λ fastest), and hands it to the block functions unopened.

:func:`run_sweep` then trains the CV stage, chooses (η, λ) by
:func:`~l2reg.fronts.cv.choose`, refits the λ path at the chosen η on all
the training rows, and returns the :class:`~l2reg.fronts.cv.SweepResult`.
The executor runs the blocks: :class:`LocalExecutor` in this process (the
whole grid as one block, a checkpoint per stage), or
:class:`~l2reg.fronts.distributed.RayExecutor` on a cluster.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..base import interrupts
from ..base.checkpoint import Checkpointing
from .cv import (CHECKPOINT_CV, CHECKPOINT_REFIT, Block, BlockResult, CVRun, RefitBlock, SweepResult, _summary_rows,
                 assemble, choose)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Blocks:
    """A front's two block functions (module-level, so that a cluster can pickle them), and optionally
    ``compile_refit(task)``, which compiles the refit's programs ahead (in a thread, while the CV trains)."""

    cv: Callable[..., BlockResult]
    refit: Callable[..., BlockResult]
    compile_refit: Callable | None = None


class _Beside:
    """``fn(task)`` in a thread from a stage's first trained epoch (its own compiling, which keeps both cores
    busy, is over by then) to the stage's end. Its failure costs only the head start: the refit then
    compiles when it starts, as without it."""

    def __init__(self, fn: Callable | None, task):
        self.fn, self.task, self.thread = fn, task, None

    def hook(self, on_epoch):
        if self.fn is None:
            return on_epoch

        def hooked(epoch, metrics):
            if epoch is not None and self.thread is None:
                self.thread = threading.Thread(target=self._run, name="l2reg-beside", daemon=True)
                self.thread.start()
            if on_epoch is not None:
                on_epoch(epoch, metrics)

        return hooked

    def _run(self) -> None:
        try:
            self.fn(self.task)
        except Exception:  # noqa: BLE001  (an optimization only)
            log.debug("compiling the refit ahead failed; it compiles when it starts", exc_info=True)

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


class LocalExecutor:
    """Trains a sweep's two stages in this process: the whole CV grid as one block, then the refit.

    With a run folder, each stage's block function gets a checkpoint
    (``checkpoint-cv.npz``, ``checkpoint-refit.npz``; ``config`` is what a
    resume must match) and ``resume`` continues from it.
    """

    def __init__(self, run_dir=None, *, resume: bool = False, config: dict | None = None):
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.resume = resume
        self.config = config or {}

    def _checkpoint(self, name: str, config: dict) -> Checkpointing | None:
        if self.run_dir is None:
            return None
        path = self.run_dir / name
        return Checkpointing(path, config, bool(self.resume and path.exists()))

    def cv(self, fn: Callable, task, on_epoch=None, beside: Callable | None = None) -> CVRun:
        """Every pair on every fold, as one stack; ``beside(task)`` in a thread once it trains (:class:`Blocks`)."""
        block = Block(tuple(range(len(task.folds))), tuple(range(len(task.pair_lmbda))))
        ahead = _Beside(beside, task)
        try:
            result = fn(task, block, on_epoch=ahead.hook(on_epoch),
                        checkpoint=self._checkpoint(CHECKPOINT_CV, self.config))
        finally:
            ahead.join()
        return assemble(task, [block], [result])

    def refit(self, fn: Callable, task, grid: list, eta: float, on_epoch=None) -> BlockResult:
        """The λ path ``grid`` at ``eta`` on all the training rows, as one stack."""
        config = dict(self.config, stage="refit", refit_eta=eta, refit_lmbdas=list(grid))
        block = RefitBlock(float(eta), tuple(float(v) for v in grid))
        return fn(task, block, on_epoch=on_epoch, checkpoint=self._checkpoint(CHECKPOINT_REFIT, config))


def make_executor(opts, run_dir=None, *, resume: bool = False, on_block=None, engine: str | None = None):
    """The executor of ``opts.backend``: in process, or on a Ray cluster (``address``, ``block_size``).
    ``engine``: a model's front (``torch``, ``jax``), marked in the checkpoints' config
    (:data:`l2reg.base.checkpoint.ENGINES`: which command resumes them)."""
    config = opts.to_config() if engine is None else dict(opts.to_config(), engine=engine)
    if opts.backend == "ray":
        from .distributed import RayExecutor

        return RayExecutor(run_dir, resume=resume, config=config, address=opts.address,
                           block_size=opts.block_size, on_block=on_block)
    return LocalExecutor(run_dir, resume=resume, config=config)


def run_sweep(task, blocks: Blocks, executor, *, select: str, regression: bool, n: int, config: dict,
              on_epoch=None, notes: tuple = (), options: dict | None = None) -> SweepResult:
    """Cross-validate ``task``'s grid, choose (η, λ) by ``select``, refit the λ path at the chosen η.

    ``n``: the training-set size (the refit's n, and λ/n in the rows);
    ``config``: sweep.json's config, to which the chosen ``eta`` is added;
    ``on_epoch`` sees the CV stage's epochs, then the refit's, numbered on
    (``epochs`` in ``config`` apart); ``options``: what a resume compares with.
    """
    etas = sorted(set(map(float, task.pair_eta)))
    cv = executor.cv(blocks.cv, task, on_epoch, beside=blocks.compile_refit)
    score = cv.final["validation_cost" if regression else "validation_accuracy"]
    choice = choose(score, cv.diverged, E=len(etas), rule=select, higher_is_better=not regression)
    refit_eta = cv.etas[choice.index]
    grid = [float(v) for v, e in zip(task.pair_lmbda, task.pair_eta) if e == refit_eta]
    epochs = config["epochs"]
    stage2 = None if on_epoch is None else (lambda ep, m: on_epoch(None if ep is None else epochs + ep, m))
    interrupts.phase("refit")
    refit = executor.refit(blocks.refit, task, grid, refit_eta, stage2)
    rows = _summary_rows(cv, choice, refit_eta, grid, refit.final, refit.diverged, regression, n)
    return SweepResult(
        config=dict(config, eta=refit_eta), rows=rows, chosen_index=choice.index, min_index=choice.best, cv=cv,
        refit_lmbdas=grid, refit_history=refit.history, refit_params=refit.params,
        train_seconds=cv.train_seconds + refit.train_seconds,
        compile_seconds=cv.compile_seconds + refit.compile_seconds, notes=notes, refit_terms=refit.terms,
        options=options, stages={k: v for k, v in (("cv", cv.meta), ("refit", refit.meta)) if v is not None})
