"""The engine with flat keyword arguments, for tests that train stacks directly.

``fit_stack(spec, X, Y, groups=..., group_seeds=..., lmbda=..., eta=..., epochs=..., batch_size=..., **options)``
builds the options object and the per-model numbers that :func:`l2reg.core.engine.fit_stack` takes.
"""

from pathlib import Path

import numpy as np

from l2reg.base.checkpoint import Checkpointing
from l2reg.core import engine
from l2reg.options import MONITORS, TrainOptions


def fit_stack(spec, X, Y, *, groups, group_seeds, lmbda, eta, momentum=None, weight_decay=None, eval_sets=None,
              monitor=MONITORS, on_epoch=None, params0=None, checkpoint=None, checkpoint_config=None,
              resume=False, divergence_bound=engine.DIVERGENCE_BOUND, **options):
    lmbda = np.asarray(lmbda, np.float64)
    K = len(lmbda)
    col = lambda a: None if a is None else np.broadcast_to(np.asarray(a, np.float64), (K,)).copy()  # noqa: E731
    checked = dict(lmbda=None, lmbda_per_layer=[list(lmbda[0])]) if lmbda.ndim == 2 else dict(lmbda=tuple(lmbda))
    if options.get("optimizer") == "adamw":
        checked["lmbda"] = (0.0,)  # λ is not adamw's decay; the members carry the real values
    opts = TrainOptions(
        **checked, momentum=None if momentum is None else tuple(np.ravel(momentum)[:1]),
        weight_decay=None if weight_decay is None else tuple(np.ravel(weight_decay)[:1]), **options,
    ).checked()
    members = engine.Members(lmbda=lmbda, eta=col(eta), momentum=col(momentum) if opts.momentum else None,
                             weight_decay=col(weight_decay) if opts.weight_decay else None)
    ck = None if checkpoint is None else Checkpointing(Path(checkpoint), checkpoint_config or {}, resume)
    return engine.fit_stack(spec, X, Y, opts, groups=groups, group_seeds=group_seeds, members=members,
                            eval_sets=eval_sets, monitor=monitor, on_epoch=on_epoch, checkpoint=ck, params0=params0,
                            divergence_bound=divergence_bound)


def cross_validate(spec, X, y, lmbdas, folds, *, group_seeds, eta, monitor=(), **options):
    """:func:`l2reg.fronts.sweeping.cross_validate` with flat options; ``eta`` one η or one per member (pair)."""
    import importlib

    S = importlib.import_module("l2reg.fronts.sweeping")
    pair_eta = np.broadcast_to(np.asarray(eta, np.float64), (len(lmbdas),))
    opts = TrainOptions(lmbda=tuple(lmbdas), eta=tuple(sorted(set(pair_eta))), monitor=tuple(monitor),
                        **options).checked()
    return S.cross_validate(spec, X, y, opts, folds, pair_lmbda=list(lmbdas), pair_eta=pair_eta,
                            group_seeds=group_seeds)
