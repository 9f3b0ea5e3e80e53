"""The λ path of your own Flax or Equinox model: every λ × fold in one compiled program, chosen by CV.

:func:`sweep` is :func:`l2reg.torch.sweep` for a JAX model factory
``model_fn(key)``: the same stratified folds, grid (λ × η, λ fastest),
selection (:func:`l2reg.fronts.cv.choose`, ``min`` or ``1se``), refit of the λ
path at the chosen η on all the training rows, and result
(:class:`l2reg.fronts.cv.SweepResult`: the same ``sweep.json`` and
``report.html``), through the fronts' shared orchestration
(:func:`l2reg.fronts.orchestration.run_sweep`); only the training is
:func:`l2reg.jax.train_ensemble`'s (block functions :func:`cv_block` and
:func:`refit_block`, also what a Ray worker runs). λ is coupled L2 on
C = C0 + (λ/2n)·Σw² over the leaves the policy decays, n = the model's
training rows; under ``adamw`` the grid is the decoupled ``weight_decay``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import numpy as np

from ..errors import ConfigError, ConfigTypeError
from ..models.factories import import_factory, one_line
from ..models.sweeping import FrontData, as_layers, cv_outputs, refit_outputs, sweep_front, sweep_members
from ..options import DEFAULT_FOLDS, JaxSweepOptions, documented
from ..fronts.cv import BlockResult, SweepResult
from ..fronts.orchestration import Blocks
from .ensemble import DOC, build, train_ensemble
from .policy import decay_mask


def load_factory(spec: str) -> Callable:
    """The factory ``model_fn(key)`` that ``spec`` names, ``"module:function"`` or ``"file.py:function"``,
    checked once (it must build a model from ``jax.random.key(0)``)."""
    fn = import_factory(spec)
    try:
        build(fn, 0)
    except (ConfigError, ConfigTypeError):
        raise
    except Exception as e:  # the user's factory: any failure is bad input
        raise ConfigError(f"factory {spec!r} raised {one_line(e)}.") from None
    return fn


@dataclass(frozen=True)
class JaxTask:
    """Everything a block of a JAX sweep needs (what a Ray worker receives once): the factory or its name,
    the data, the options, the folds and their seeds, the (η, λ) pairs."""

    model: object
    data: FrontData
    opts: JaxSweepOptions
    folds: list
    seeds: list
    pair_eta: np.ndarray
    pair_lmbda: np.ndarray

    def model_fn(self):
        return load_factory(self.model) if isinstance(self.model, str) else self.model


def _train(task: JaxTask, X, y, *, members, folds, seed, on_epoch, checkpoint):
    o = task.opts
    return train_ensemble(task.model_fn(), X, y, members=members, folds=folds, epochs=o.epochs,
                          batch_size=o.batch_size, optimizer=o.optimizer, momentum=(o.momentum or (0.9,))[0],
                          policy=o.policy, seed=seed, strategy=o.strategy, on_epoch=on_epoch, checkpoint=checkpoint)


def cv_block(task: JaxTask, block, *, on_epoch=None, checkpoint=None) -> BlockResult:
    """One block (some folds × some pairs) as one ensemble: the fold models' final scores ``(P_b, k_b)``."""
    d = task.data
    pairs = [(float(task.pair_eta[p]), float(task.pair_lmbda[p])) for p in block.pairs]
    k = len(block.folds)
    r = _train(task, d.X, d.y, members=sweep_members(pairs, range(k), task.opts.optimizer == "adamw"),
               folds=[task.folds[g] for g in block.folds], seed=[task.seeds[g] for g in block.folds],
               on_epoch=on_epoch, checkpoint=checkpoint)
    return cv_outputs(r, len(pairs), k, r.evaluate(d.X_test, d.y_test),
                      meta={"strategy": {"chosen": r.config["strategy"], "probe_ms": r.config["probe_ms"]}})


def refit_block(task: JaxTask, block, *, on_epoch=None, checkpoint=None) -> BlockResult:
    """The λ path ``block.lmbdas`` at ``block.eta`` on all the training rows, the test set watched each epoch."""
    d, opts, grid, eta = task.data, task.opts, list(block.lmbdas), block.eta
    n = len(d.X)
    X, y = np.concatenate([d.X, d.X_test]), np.concatenate([d.y, d.y_test])
    r = _train(task, X, y, members=sweep_members([(eta, v) for v in grid], [0], opts.optimizer == "adamw"),
               folds=[(np.arange(n), np.arange(n, len(X)))], seed=opts.seed[0], on_epoch=on_epoch,
               checkpoint=checkpoint)
    return refit_outputs(r, len(grid), terms=_terms(r, d, opts, eta), params=[_layers(r, sd) for sd in r.state_dicts])


#: The JAX models' block functions, for the orchestration and a cluster.
JAX_BLOCKS = Blocks(cv=cv_block, refit=refit_block)


def _layers(r, state_dict: dict) -> list[dict]:
    """Decayed leaves as the report's layers ``{"w": (fan_in, fan_out)}``: Flax kernels are ``(..., in, out)``,
    Equinox weights ``(out, in, ...)`` as PyTorch's."""
    if r.config["library"] == "equinox":
        return as_layers([state_dict[n] for n in r.decayed])
    return [{"w": np.asarray(state_dict[n]).reshape(-1, np.shape(state_dict[n])[-1]), "b": np.zeros(0, np.float32)}
            for n in r.decayed]


def _terms(r, d: FrontData, opts: JaxSweepOptions, eta: float) -> dict:
    """:func:`l2reg.core.terms.final_terms` for the refit models: d = −η·(λ/n)·w (or −η·wd·w), g = −η·∂C0/∂w over
    all training rows, per weight of the decayed leaves."""
    grads = r.data_gradients(d.X, d.y)
    n = len(d.X)
    out = {"mean_abs_decay": [], "mean_abs_data": [], "frac_away": []}
    for k, member in enumerate(r.members):
        coef = member.weight_decay if opts.optimizer == "adamw" else member.lmbda / n
        w = np.concatenate([np.ravel(r.state_dicts[k][name]) for name in r.decayed])
        g = -eta * np.concatenate([np.ravel(grads[name][k]) for name in r.decayed])
        out["mean_abs_decay"].append(float(np.abs(eta * coef * w).mean()))
        out["mean_abs_data"].append(float(np.abs(g).mean()))
        out["frac_away"].append(float(((g * w) > 0).mean()))
    return {k: np.array(v) for k, v in out.items()}


@documented({
    **DOC,
    "lmbda": "the λ grid (None: λ = 0 plus 12 values with λ/n from 1e-5 to 3e-2); under ``adamw`` the grid is "
             "``weight_decay`` instead.",
    "on_epoch": "``on_epoch(epoch, metrics)`` after every epoch of the CV stage and then of the refit "
                "(2·epochs epochs)."})
def sweep(model_fn: Callable | str, data, *, lmbda: Sequence[float] | None = None,
          weight_decay: float | Sequence[float] | None = None, eta: float | Sequence[float] = 0.1,
          folds: int = DEFAULT_FOLDS, select: str = "min", epochs: int = 10, batch_size: int = 64,
          optimizer: str = "sgd", momentum: float | None = None, policy: str = "l2reg", seed: int = 0,
          strategy: str = "auto", backend: str = "local", address: str | None = None,
          block_size: int | None = None, label_column: str = "label", on_epoch: Callable | None = None) -> SweepResult:
    """Choose λ (and η) for your own Flax NNX, Linen or Equinox model by k-fold CV, every λ × fold at once.

    ``model_fn``: a factory ``model_fn(key)`` (:func:`l2reg.jax.train_ensemble`) or ``"module:function"``
    (``"file.py:function"``; by name is how a Ray worker best gets it); ``data``: as :func:`l2reg.torch.sweep`'s
    (a ``.npz`` with ``X``, ``y``, optional ``X_test``, ``y_test``; a ``.csv`` with its ``label_column``;
    ``(X, y[, X_test, y_test])``; or a built-in dataset's name, its rows as ``l2reg sweep``'s); ``y`` class
    labels (cross-entropy) or floats (mean squared error). ``weight_decay``: under ``adamw`` the grid instead
    of ``lmbda``, decoupled (default wd = 0 plus 12 log-spaced values from 0.0001 to 1).
    ``strategy``: how the members are stepped (``auto`` measures; ``vmap``, ``map``, ``chunked``). Then as
    :func:`l2reg.torch.sweep`: the λ path refit at the chosen η on all the training rows and reported on
    the test set. Returns an :class:`l2reg.fronts.cv.SweepResult`.
    """
    dataset = str(data) if isinstance(data, (str, Path)) else "arrays"
    opts = JaxSweepOptions.from_flat(dict(locals(), model=model_fn if isinstance(model_fn, str) else None)).checked()
    return sweep_with(model_fn, data, opts, on_epoch=on_epoch)


def sweep_with(model_fn, data, opts: JaxSweepOptions, *, on_epoch=None, on_block=None, checkpoint_dir=None,
               resume: bool = False) -> SweepResult:
    """:func:`sweep` for an options object (checked); ``checkpoint_dir`` and ``resume`` as
    :func:`l2reg.torch.sweeping.sweep_with`'s (``l2reg jax sweep``)."""
    result = sweep_front(model_fn, data, opts, load_factory=load_factory, task_cls=JaxTask, blocks=JAX_BLOCKS,
                         config_fn=_config, on_epoch=on_epoch, on_block=on_block, engine="jax",
                         checkpoint_dir=checkpoint_dir, resume=resume)
    cv = result.stages.get("cv", {})
    # the probe's choice for the CV stack (a stage of several blocks, on Ray: the first block's)
    chosen = (cv.get("blocks") or [cv])[0].get("strategy") if cv else None
    return replace(result, config=dict(result.config, strategy_chosen=chosen))


def _config(opts: JaxSweepOptions, name: str, d: FrontData, task: JaxTask, grid, model_fn) -> dict:
    """``sweep.json``'s config: every option, the grid, the model, and what the data fixed."""
    adapted = build(model_fn, 0)
    n_params = sum(int(np.size(v)) for v in adapted.params.values())
    decayed = [k for k, v in decay_mask(adapted.params, adapted.owners, opts.policy).items() if v]
    config = opts.to_config()
    config.update(
        dataset=str(opts.dataset), model=f"{name}: {n_params:,} parameters ({adapted.kind}), {len(decayed)} leaves "
        f"decayed (policy {opts.policy}), {opts.optimizer}", lmbda=list(grid), etas=list(opts.eta),
        seed=opts.seed[0], folds=len(task.folds), fold_seeds=list(task.seeds), n=len(d.X),
        n_fold=[int(len(tr)) for tr, _ in task.folds], n_test=int(len(d.X_test)), regression=not d.classification,
        models_cv=len(grid) * len(opts.eta) * len(task.folds), models_refit=len(grid), engine="jax",
        library=adapted.kind, jax=jax.__version__, decay="weight_decay" if opts.optimizer == "adamw" else "lmbda")
    return config
