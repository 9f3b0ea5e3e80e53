"""The λ path of your own PyTorch model: every λ × fold in one ``torch.func`` ensemble, chosen by CV.

:func:`sweep` is :func:`l2reg.fronts.sweeping.sweep` for a model factory: the
stratified folds, the grid (λ × η, λ fastest), the selection
(:func:`l2reg.fronts.sweeping.choose`, ``min`` or ``1se``), the refit of the whole λ
path at the chosen η on all the training rows, the result
(:class:`l2reg.fronts.sweeping.SweepResult`, hence the same ``sweep.json`` and
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

from ..data import _is_whole
from ..errors import DataError
from ..fronts.cv import DEFAULT_GRID_SIZE, BlockResult, SweepResult, _round_sig, cv_folds_for, default_grid, fold_seeds
from ..fronts.orchestration import Blocks, make_executor, run_sweep
from ..options import DEFAULT_FOLDS, TorchSweepOptions, documented
from .ensemble import Member, train_ensemble
from .factory import load_factory
from .groups import decayed_names
from .stack import classification_loss, regression_loss

#: The default grid under AdamW: wd = 0 plus 12 log-spaced values from 1e-4 to 1.
DEFAULT_WD_GRID = (1e-4, 1.0)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class TorchData:
    """The arrays of a PyTorch sweep: ``X`` ``(n, ...)`` float32 (any shape the model takes), ``y``
    ``(n,)`` integer labels or float targets, and the test split."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    notes: tuple = ()

    @property
    def classification(self) -> bool:
        return np.issubdtype(self.y.dtype, np.integer)


def load_data(data) -> TorchData:
    """``data``: a ``.npz`` path (``X``, ``y``, optional ``X_test``, ``y_test``), a tuple
    ``(X, y[, X_test, y_test])``, or a built-in dataset's name (``digits``, ``mnist``, ``fashion-mnist``:
    features as l2reg loads them, validation rows added to training)."""
    if isinstance(data, str) and data.strip().lower() in ("digits", "mnist", "fashion-mnist"):
        from ..data import load_dataset

        d = load_dataset(data)
        X = np.concatenate([d.X_train, d.X_val])
        return TorchData(X, np.concatenate([d.y_train, d.y_val]).astype(np.int64), d.X_test,
                         d.y_test.astype(np.int64), d.notes)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.suffix.lower() != ".npz" or not path.is_file():
            raise DataError(f"data must be a .npz file with X and y (optional X_test, y_test); got {data}.")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if "X" not in arrays or "y" not in arrays:
            raise DataError(f"{path.name} must hold arrays X and y; it holds {', '.join(sorted(arrays)) or 'nothing'}.")
        parts = [arrays["X"], arrays["y"], arrays.get("X_test"), arrays.get("y_test")]
    else:
        parts = list(data) + [None] * (4 - len(data))
    X, y, X_test, y_test = (None if a is None else np.asarray(a) for a in parts[:4])
    y = _labels(y, "y", len(X))
    if X_test is None:
        return _hold_out_test(np.asarray(X, np.float32), y)
    return TorchData(np.asarray(X, np.float32), y, np.asarray(X_test, np.float32), _labels(y_test, "y_test",
                                                                                          len(X_test)))


def _labels(y, name: str, n: int) -> np.ndarray:
    if y is None or len(y) != n:
        raise DataError(f"{name} must have one entry per row of its X ({n}); got {None if y is None else len(y)}.")
    if y.ndim != 1 or not _is_whole(y):  # as l2reg's own data files: whole numbers are class labels
        return y.astype(np.float32)
    if len(y) and y.min() < 0:
        raise DataError(f"{name}: labels must be integers in 0..C-1; found {int(y.min())}.")
    return y.astype(np.int64)


def _hold_out_test(X: np.ndarray, y: np.ndarray) -> TorchData:
    from sklearn.model_selection import train_test_split

    strat = y if np.issubdtype(y.dtype, np.integer) and np.bincount(y).min(initial=2) >= 2 else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=strat, random_state=0)
    note = (f"Held out 20% of X ({len(X_te)} examples) as the test set{', stratified by label' if strat is not None else ''}"
            f" (random_state=0); {len(X_tr)} examples train.")
    return TorchData(X_tr, y_tr, X_te, y_te, (note,))


# ---------------------------------------------------------------- the two stages


def _members(pairs, folds: Sequence[int], adamw: bool) -> list[Member]:
    """The ensemble's members: each (η, value) pair on each fold, fold-major (model k = g·P + p)."""
    return [Member(lmbda=0.0 if adamw else v, weight_decay=v if adamw else 0.0, eta=e, fold=g)
            for g in folds for e, v in pairs]


@dataclass(frozen=True)
class TorchTask:
    """Everything a block of a PyTorch sweep needs (what a Ray worker receives once, ``ray.put``).

    ``model``: the factory, or its ``"module:function"`` name (resolved where the block runs).
    Pairs and folds as :class:`l2reg.fronts.sweeping.CVTask`'s, so :func:`l2reg.fronts.sweeping.assemble` assembles the blocks.
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
    r = train_ensemble(model_fn, d.X, d.y, members=_members(pairs, range(k), opts.optimizer == "adamw"),
                       folds=folds, epochs=opts.epochs, batch_size=opts.batch_size, optimizer=opts.optimizer,
                       momentum=(opts.momentum or (0.9,))[0], policy=opts.policy,
                       seed=[task.seeds[g] for g in block.folds], device=opts.device, on_epoch=on_epoch,
                       strategy=opts.strategy)
    by_fold = lambda a: np.asarray(a, np.float64).reshape(*np.shape(a)[:-1], k, P).swapaxes(-1, -2)  # (..., P, k)
    h = r.history
    c0 = {name: h[name] - h["penalty"] for name in ("training_cost", "validation_cost")}
    history = {"validation_cost": by_fold(c0["validation_cost"]), "weight_sq_norm": by_fold(h["weight_sq_norm"])}
    final = {"training_cost": by_fold(c0["training_cost"][-1]), "validation_cost": by_fold(c0["validation_cost"][-1]),
             "weight_sq_norm": by_fold(h["weight_sq_norm"][-1])}
    test = _evaluate(model_fn, r, d.X_test, d.y_test, opts.device)
    final.update(test_cost=by_fold(test["cost"]), test_accuracy=by_fold(test["accuracy"]))
    for name in ("training_accuracy", "validation_accuracy"):
        if name in h:
            final[name] = by_fold(h[name][-1])
            history[name] = by_fold(h[name])
    if "validation_accuracy" not in final:  # regression: no accuracies
        final.update(training_accuracy=np.full((P, k), np.nan), validation_accuracy=np.full((P, k), np.nan))
    return BlockResult(final=final, history=history, diverged=by_fold(r.diverged_epoch > 0),
                       train_seconds=r.train_seconds, meta={"strategy": r.config["strategy"]})


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
    (as the ensemble's ``validation``); :func:`l2reg.fronts.sweeping.refit_path`'s result."""
    model_fn, data, opts, grid, eta = task.model_fn(), task.data, task.opts, list(block.lmbdas), block.eta
    n = len(data.X)
    X = np.concatenate([data.X, data.X_test])
    y = np.concatenate([data.y, data.y_test])
    fold = (np.arange(n), np.arange(n, len(X)))
    r = train_ensemble(model_fn, X, y, members=_members([(eta, v) for v in grid], [0], opts.optimizer == "adamw"),
                       folds=[fold], epochs=opts.epochs, batch_size=opts.batch_size, optimizer=opts.optimizer,
                       momentum=(opts.momentum or (0.9,))[0], policy=opts.policy, seed=opts.seed[0],
                       device=opts.device, on_epoch=on_epoch, strategy=opts.strategy)
    h = r.history
    history = {name.replace("validation", "test"): (v - h["penalty"] if name.endswith("_cost") else v)
               for name, v in h.items() if name != "penalty"}
    final = {name: v[-1] for name, v in history.items() if name != "weight_sq_norm"}
    final["weight_sq_norm"] = history["weight_sq_norm"][-1]
    if "training_accuracy" not in final:
        final.update(training_accuracy=np.full(len(grid), np.nan), test_accuracy=np.full(len(grid), np.nan))
    return BlockResult(final=final, history=history, diverged=r.diverged_epoch > 0, train_seconds=r.train_seconds,
                       params=[_as_layers(sd, r.decayed) for sd in r.state_dicts],
                       terms=_terms(model_fn, r, data, opts, eta), meta={"strategy": r.config["strategy"]})


#: The PyTorch sweep's block functions, for the orchestration and a cluster.
TORCH_BLOCKS = Blocks(cv=cv_block, refit=refit_block)


def _as_layers(state_dict: dict, decayed: list) -> list[dict]:
    """A model's decayed parameters as the sweep report's "layers": ``{"w": (fan_in, fan_out)}`` each."""
    out = []
    for name in decayed:
        w = np.asarray(state_dict[name])
        out.append({"w": w.reshape(w.shape[0], -1).T if w.ndim > 1 else w.reshape(-1, 1), "b": np.zeros(0, w.dtype)})
    return out


def _terms(model_fn, result, data: TorchData, opts: TorchSweepOptions, eta: float) -> dict:
    """:func:`l2reg.fronts.explaining.final_terms` for the refit models: d = −η·(λ/n)·w (or −η·wd·w), g = −η·∂C0/∂w
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


@documented()
def sweep(model_fn: Callable | str, data, *, lmbda: Sequence[float] | None = None, eta: float | Sequence[float] = 0.1,
          folds: int = DEFAULT_FOLDS, select: str = "min", epochs: int = 10, batch_size: int = 64,
          optimizer: str = "sgd", momentum: float | None = None, policy: str = "l2reg", seed: int = 0,
          device: str = "cpu", backend: str = "local", address: str | None = None, block_size: int | None = None,
          strategy: str = "auto", on_epoch: Callable | None = None) -> SweepResult:
    """Choose λ (and η) for your own PyTorch model by k-fold CV, every λ × fold in one ``torch.func`` ensemble.

    ``model_fn``: a no-argument factory of the ``nn.Module`` (or ``"module:function"``);
    ``data``: a ``.npz`` (``X``, ``y``, optional ``X_test``, ``y_test``) or ``(X, y[, X_test, y_test])``,
    X of any shape the model takes; ``y`` class labels 0..C−1, whole numbers of any dtype (cross-entropy),
    or other floats (mean squared error).
    ``lmbda``: the grid (default λ = 0 plus 12 values with λ/n from 1e-5 to 3e-2; under ``adamw``
    the decoupled ``weight_decay`` grid, default 0 plus 1e-4 … 1); ``eta`` one η or a list (the grid
    η × λ); ``policy``: which parameters decay (:data:`l2reg.torch.POLICIES`). Then as
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


def sweep_with(model_fn, data, opts: TorchSweepOptions, *, on_epoch=None, on_block=None) -> SweepResult:
    """:func:`sweep` for an options object (checked); ``opts.backend="ray"`` trains it in blocks on Ray."""
    name = model_fn if isinstance(model_fn, str) else getattr(model_fn, "__qualname__", "model_fn")
    spec = _absolute(model_fn) if isinstance(model_fn, str) else None
    model_fn = load_factory(model_fn) if isinstance(model_fn, str) else model_fn
    d = load_data(data)
    cv_folds = cv_folds_for(opts, d.y, d.classification)
    k = len(cv_folds)
    grid = list(opts.lmbda) if opts.lmbda is not None else _default_grid(len(d.X), opts.optimizer)
    pairs = [(e, v) for e in opts.eta for v in grid]
    # a worker elsewhere loads the factory by name; in this process it is loaded once, above
    model = spec if spec is not None and opts.backend == "ray" else model_fn
    task = TorchTask(model, d, opts, cv_folds, fold_seeds(opts.seed[0], k), np.array([e for e, _ in pairs]),
                     np.array([v for _, v in pairs]))
    executor = make_executor(opts, on_block=on_block)
    result = run_sweep(task, TORCH_BLOCKS, executor, select=opts.select, regression=not d.classification,
                       n=len(d.X), config=_config(opts, name, d, task, grid, model_fn), on_epoch=on_epoch,
                       notes=d.notes, options=opts.to_config())
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


def _absolute(spec: str) -> str:
    """``"file.py:function"`` with the file's absolute path, so a worker elsewhere finds it."""
    module, _, fn = spec.rpartition(":")
    return f"{Path(module).resolve()}:{fn}" if module.endswith(".py") else spec


def _default_grid(n: int, optimizer: str) -> list[float]:
    if optimizer != "adamw":
        return default_grid(n)
    return [0.0] + [_round_sig(v) for v in np.geomspace(*DEFAULT_WD_GRID, DEFAULT_GRID_SIZE)]


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
