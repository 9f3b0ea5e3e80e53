"""The λ path of your own PyTorch model: every λ × fold in one ``torch.func`` ensemble, chosen by CV.

:func:`sweep` is :func:`l2reg.fronts.sweeping.sweep` for a model factory: the
stratified folds, the grid (λ × η, λ fastest), the selection
(:func:`l2reg.fronts.cv.choose`, ``min`` or ``1se``), the refit of the whole λ
path at the chosen η on all the training rows, the result
(:class:`l2reg.fronts.cv.SweepResult`, hence the same ``sweep.json`` and
``report.html``) are the JAX sweep's; only the training is
:func:`~l2reg.torch.ensemble.train_ensemble`'s. λ means what it means
everywhere: coupled L2 on C = C0 + (λ/2n)·Σw² over the parameters the
``policy`` decays, n = the model's training rows (``weight_decay`` = λ/n);
under ``adamw`` the grid is the decoupled ``weight_decay`` itself.

The test set (``X_test`` in the data, else a stratified 20% held out of X)
is used only for the report, never for the choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..models.ensembles import MODEL_HELP
from ..models.sweeping import DEFAULT_WD_GRID  # noqa: F401  (l2reg.torch.sweeping.DEFAULT_WD_GRID)
from ..models.sweeping import FrontData as TorchData
from ..models.sweeping import GRID_HELP, as_layers, cv_outputs, load_data, refit_outputs, sweep_front, sweep_members  # noqa: F401
from ..fronts.cv import BlockResult, SweepResult
from ..fronts.orchestration import Blocks
from ..options import DEFAULT_FOLDS, TorchSweepOptions, documented
from .ensemble import train_ensemble
from .factory import load_factory
from .groups import decayed_names
from .stack import classification_loss, regression_loss

# ---------------------------------------------------------------- the two stages


@dataclass(frozen=True)
class TorchTask:
    """Everything a block of a PyTorch sweep needs (what a Ray worker receives once, ``ray.put``).

    ``model``: the factory, or its ``"module:function"`` name (resolved where the block runs).
    Pairs and folds as :class:`l2reg.fronts.sweeping.CVTask`'s, so :func:`l2reg.fronts.cv.assemble` assembles the blocks.
    """

    model: object
    data: TorchData
    opts: TorchSweepOptions
    folds: list
    seeds: list  # one per fold
    pair_eta: np.ndarray  # (P,)
    pair_lmbda: np.ndarray  # (P,)

    def model_fn(self):
        return load_factory(self.model) if isinstance(self.model, str) else self.model


def cv_block(task: TorchTask, block, *, on_epoch=None, checkpoint=None) -> BlockResult:
    """One block (some folds × some pairs) as one ensemble: the fold models' final scores ``(P_b, k_b)``."""
    model_fn, d, opts = task.model_fn(), task.data, task.opts
    folds = [task.folds[g] for g in block.folds]
    pairs = [(float(task.pair_eta[p]), float(task.pair_lmbda[p])) for p in block.pairs]
    P, k = len(pairs), len(folds)
    r = train_ensemble(model_fn, d.X, d.y, members=sweep_members(pairs, range(k), opts.optimizer == "adamw"),
                       folds=folds, epochs=opts.epochs, batch_size=opts.batch_size, optimizer=opts.optimizer,
                       momentum=(opts.momentum or (0.9,))[0], policy=opts.policy,
                       seed=[task.seeds[g] for g in block.folds], device=opts.device, on_epoch=on_epoch,
                       strategy=opts.strategy, checkpoint=checkpoint)
    return cv_outputs(r, P, k, _evaluate(model_fn, r, d.X_test, d.y_test, opts.device),
                      meta={"strategy": r.config["strategy"]})


def _evaluate(model_fn, result, X, y, device) -> dict:
    """Each member's mean C0 and accuracy on ``(X, y)``, ``(K,)`` (loaded one by one: the test set is small)."""
    model = model_fn().to(device)
    Xt, yt = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    cost, acc = [], []
    with torch.no_grad():
        for k in range(len(result.members)):
            out = result.load_into(model, k).eval()(Xt)
            if yt.dtype == torch.int64:
                cost.append(float(classification_loss(out, yt)))
                acc.append(float((out.argmax(1) == yt).float().mean()))
            else:
                cost.append(float(regression_loss(out, yt)))
                acc.append(math.nan)
    return {"cost": np.array(cost), "accuracy": np.array(acc)}


def refit_block(task: TorchTask, block, *, on_epoch=None, checkpoint=None) -> BlockResult:
    """The λ path ``block.lmbdas`` at ``block.eta`` on all the training rows, the test set watched each epoch
    (as the ensemble's ``validation``); :func:`l2reg.fronts.sweeping.refit_block`.s result."""
    model_fn, data, opts, grid, eta = task.model_fn(), task.data, task.opts, list(block.lmbdas), block.eta
    n = len(data.X)
    X = np.concatenate([data.X, data.X_test])
    y = np.concatenate([data.y, data.y_test])
    fold = (np.arange(n), np.arange(n, len(X)))
    r = train_ensemble(model_fn, X, y, members=sweep_members([(eta, v) for v in grid], [0], opts.optimizer == "adamw"),
                       folds=[fold], epochs=opts.epochs, batch_size=opts.batch_size, optimizer=opts.optimizer,
                       momentum=(opts.momentum or (0.9,))[0], policy=opts.policy, seed=opts.seed[0],
                       device=opts.device, on_epoch=on_epoch, strategy=opts.strategy, checkpoint=checkpoint)
    return refit_outputs(r, len(grid), terms=_terms(model_fn, r, data, opts, eta),
                         params=[_as_layers(sd, r.decayed) for sd in r.state_dicts],
                         meta={"strategy": r.config["strategy"]})


#: The PyTorch sweep's block functions, for the orchestration and a cluster.
TORCH_BLOCKS = Blocks(cv=cv_block, refit=refit_block)


def _as_layers(state_dict: dict, decayed: list) -> list[dict]:
    """A model's decayed parameters as the sweep report's "layers": ``{"w": (fan_in, fan_out)}`` each."""
    return as_layers([state_dict[name] for name in decayed])


def _terms(model_fn, result, data: TorchData, opts: TorchSweepOptions, eta: float) -> dict:
    """:func:`l2reg.core.terms.final_terms` for the refit models: d = −η·(λ/n)·w (or −η·wd·w), g = −η·∂C0/∂w
    over all training rows, per weight of the decayed parameters."""
    model = model_fn().to(opts.device)
    X, y = torch.as_tensor(data.X, device=opts.device), torch.as_tensor(data.y, device=opts.device)
    loss = classification_loss if data.classification else regression_loss
    n = len(data.X)
    out = {"mean_abs_decay": [], "mean_abs_data": [], "frac_away": []}
    for k, member in enumerate(result.members):
        model = result.load_into(model, k).train(False)
        model.zero_grad()
        loss(model(X), y).backward()
        params = dict(model.named_parameters())
        coef = member.weight_decay if opts.optimizer == "adamw" else member.lmbda / n
        d = [(-eta * coef * params[name].detach()).flatten() for name in result.decayed]
        g = [(-eta * params[name].grad).flatten() for name in result.decayed]
        w = [params[name].detach().flatten() for name in result.decayed]
        d, g, w = torch.cat(d), torch.cat(g), torch.cat(w)
        out["mean_abs_decay"].append(float(d.abs().mean()))
        out["mean_abs_data"].append(float(g.abs().mean()))
        out["frac_away"].append(float(((g * w) > 0).float().mean()))
    return {k: np.array(v) for k, v in out.items()}


# ---------------------------------------------------------------- the API


@documented({**GRID_HELP, **MODEL_HELP})
def sweep(model_fn: Callable | str, data, *, lmbda: Sequence[float] | None = None,
          weight_decay: float | Sequence[float] | None = None, eta: float | Sequence[float] = 0.1,
          folds: int = DEFAULT_FOLDS, select: str = "min", epochs: int = 10, batch_size: int = 64,
          optimizer: str = "sgd", momentum: float | None = None, policy: str = "l2reg", seed: int = 0,
          device: str = "cpu", backend: str = "local", address: str | None = None, block_size: int | None = None,
          strategy: str = "auto", label_column: str = "label", on_epoch: Callable | None = None) -> SweepResult:
    """Choose λ (and η) for your own PyTorch model by k-fold CV, every λ × fold in one ``torch.func`` ensemble.

    ``model_fn``: a no-argument factory of the ``nn.Module`` (or ``"module:function"``);
    ``data``: a ``.npz`` (``X``, ``y``, optional ``X_test``, ``y_test``), ``(X, y[, X_test, y_test])``, a
    ``.csv`` (its ``label_column``, default ``label``; string labels become classes 0..C−1, sorted), or
    ``digits``, ``mnist``, ``fashion-mnist`` (the rows ``l2reg sweep`` cross-validates on: the training
    split, its validation split unused). X of any shape the model takes: integer X (token ids) reaches the
    model as ``torch.long``, uint8 and float X as float32; ``y`` class labels 0..C−1, whole numbers of any
    dtype (cross-entropy), or other floats (mean squared error).
    ``lmbda``: the grid (default λ = 0 plus 12 values with λ/n from 1e-5 to 3e-2); ``weight_decay``: under
    ``optimizer="adamw"`` the grid instead, decoupled, the same folds, choice and refit (default wd = 0 plus
    12 log-spaced values from 0.0001 to 1); ``eta`` one η or a list (the grid η × λ, or η × wd);
    ``policy``: which parameters decay (:data:`l2reg.torch.POLICIES`). Then as
    :func:`l2reg.fronts.sweeping.sweep`: ``select`` ``min`` or ``1se``, the whole λ path refit at the chosen η on
    all the training rows and reported on the test set. ``on_epoch`` sees 2·epochs epochs.
    ``backend="ray"`` trains the grid in blocks on a Ray cluster (``address``, ``block_size``), as
    :func:`l2reg.sweep` does; the model factory is then best given by name (``"module:function"``).
    ``strategy``: how each ensemble steps its members (``auto`` measures its first steps; ``vmap``,
    ``chunked``, ``loop``: :mod:`l2reg.torch.strategy`); the choice and the probe's timings are in
    ``config["strategy_taken"]`` (sweep.json) and the notes. ``device``: ``cpu`` or ``cuda[:N]``.
    Returns an :class:`l2reg.fronts.cv.SweepResult` (:func:`l2reg.save` writes sweep.json, params.npz,
    report.html).
    """
    dataset = str(data) if isinstance(data, (str, Path)) else "arrays"
    opts = TorchSweepOptions.from_flat(dict(locals(), model=model_fn if isinstance(model_fn, str) else None)).checked()
    return sweep_with(model_fn, data, opts, on_epoch=on_epoch)


def sweep_with(model_fn, data, opts: TorchSweepOptions, *, on_epoch=None, on_block=None, checkpoint_dir=None,
               resume: bool = False) -> SweepResult:
    """:func:`sweep` for an options object (checked); ``opts.backend="ray"`` trains it in blocks on Ray.
    ``checkpoint_dir``: each stage's ensemble is checkpointed there (``l2reg torch sweep``), and ``resume``
    continues from it (:func:`l2reg.models.sweeping.sweep_front`)."""
    result = sweep_front(model_fn, data, opts, load_factory=load_factory, task_cls=TorchTask, blocks=TORCH_BLOCKS,
                         config_fn=_config, on_epoch=on_epoch, on_block=on_block, engine="torch",
                         checkpoint_dir=checkpoint_dir, resume=resume)
    return _with_strategies(result)


def _with_strategies(result: SweepResult) -> SweepResult:
    """config["strategy"] is the option (auto, ...); ``strategy_taken``: how each stage stepped its members, why,
    and the probe's timings (a stage of several blocks, on Ray: each block's), and a line per stage in the notes."""
    taken = {}
    for stage, meta in result.stages.items():
        blocks = meta["blocks"] if "blocks" in meta else [meta]
        taken[stage] = blocks[0]["strategy"] if len(blocks) == 1 else {"blocks": [b["strategy"] for b in blocks]}
    config = dict(result.config, strategy_taken=taken)
    lines = []
    for stage, v in taken.items():
        blocks = v.get("blocks", [v])
        lines.append(f"{stage}: {blocks[0]['line']}" + (f" ({len(blocks)} blocks)" if len(blocks) > 1 else ""))
    return replace(result, config=config, notes=tuple(result.notes) + tuple(lines))


def _config(opts: TorchSweepOptions, name: str, d: TorchData, task: TorchTask, grid, model_fn) -> dict:
    """``sweep.json``'s config: every option, the grid, the model, and what the data fixed."""
    model = model_fn()
    n_params = sum(p.numel() for p in model.parameters())
    decayed = decayed_names(model, opts.policy)
    config = opts.to_config()
    config.update(
        dataset=str(opts.dataset), model=f"{name}: {n_params:,} parameters, {len(decayed)} tensors decayed "
        f"(policy {opts.policy}), {opts.optimizer}", lmbda=list(grid), etas=list(opts.eta),
        seed=opts.seed[0], folds=len(task.folds), fold_seeds=list(task.seeds), n=len(d.X),
        n_fold=[int(len(tr)) for tr, _ in task.folds], n_test=int(len(d.X_test)), regression=not d.classification,
        models_cv=len(grid) * len(opts.eta) * len(task.folds), models_refit=len(grid), engine="torch",
        torch=torch.__version__, decay="weight_decay" if opts.optimizer == "adamw" else "lmbda")
    return config
