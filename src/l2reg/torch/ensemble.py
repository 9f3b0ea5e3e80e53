"""Train many copies of the user's PyTorch model at once: one ``torch.func`` ensemble over λ × folds.

Member k trains the model of its fold f = ``members[k].fold`` on that
fold's training rows, n = their number:

* initial weights: ``model_fn()`` called right after
  ``torch.manual_seed(seed_f)``, ``seed_f = fold_seeds(seed, F)[f]``, so all
  members of a fold start from the same weights (as in l2reg's JAX engine);
* batch order: in epoch e the fold's training rows in the order
  :func:`epoch_order` ``(seed_f, n, e)``, cut into mini-batches of m
  (the last one partial), the same for all members of the fold;
* loss: the batch mean of ``F.cross_entropy`` (integer ``y``) or
  ``F.mse_loss`` (float ``y``);
* update: a real ``torch.optim`` optimizer (``SGD``, ``SGD(momentum=μ)``,
  ``SGD(momentum=μ, nesterov=True)``, ``Adam`` or ``AdamW``) whose parameter
  groups come from :func:`~l2reg.torch.groups.decay_groups` under
  ``policy``. λ means what it means everywhere in l2reg: coupled L2 on
  C = C0 + (λ/2n)·Σw² over the decayed parameters, i.e. the decayed group's
  ``weight_decay`` = λ/n with n the member's own training-set size. Under
  ``adamw`` the decay is decoupled, w ← w − η·wd·w outside Adam's moments,
  and members differ by ``weight_decay`` = wd (λ = 0).

So member k follows exactly the ordinary loop ``torch.manual_seed(seed_f);
model = model_fn(); opt = SGD(decay_groups(model, λ/n, policy), lr=η)``,
then for each batch ``zero_grad(); loss.backward(); opt.step()``; the
vectorized result equals it up to float rounding (the batched matmuls and
convolutions sum in another order). See :mod:`l2reg.torch.stack` for how.

Per-member η and λ are the optimizer's per-group hyperparameters (members
with equal (η, weight_decay) share a group); dropout draws per member
(``vmap(randomness="different")``). BatchNorm (1d/2d/3d, any momentum,
affine or not) keeps each member's own running statistics: its buffers are
stacked and vmapped with the parameters, so member k's slice is updated as
its own module's would be, and evaluation (eval mode) uses it; they are in
member k's ``state_dict``. ``SyncBatchNorm`` is refused (convert it back).

How the members are stepped, ``strategy``: ``auto`` measures the first steps
of each applicable way (all members in one vmap, chunks of them, one member
at a time) and keeps the fastest; a model vmap cannot run (an RNN in eval
mode, ``.item()``, control flow, a custom ``autograd.Function``) is stepped one
member at a time. Every way gives the same result; which one was taken, why,
and the probe's timings are in ``result.config["strategy"]`` and in one line
of ``result.notes`` (logged as a warning when vmap could not run the model).
See :mod:`l2reg.torch.strategy`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..base import interrupts
from ..base import validation as V
from ..base.checkpoint import Checkpointing
from ..models.ensembles import (MODEL_HELP, METRICS, EnsembleRecord, EpochLog, Member, Position,  # noqa: F401
                                base_config, check_arrays, check_folds, check_members, check_momentum, check_seeds,
                                epoch_order, fold_seeds, output_error)
from ..options import documented
from ..errors import ConfigError, ConfigTypeError, DataError
from .groups import DEFAULT_POLICY, decayed_names, resolve_policy
from . import resume
from .stack import Stack, classification_loss, regression_loss
from .strategy import EVAL_PROBE_ROWS, SLOW_FALLBACK, STRATEGIES, Clock, Plan, check_norms

log = logging.getLogger(__name__)


@dataclass
class EnsembleResult(EnsembleRecord):
    """What :func:`train_ensemble` returns.

    ``history[name]`` is ``(epochs, K)`` (:data:`METRICS`; costs are the
    mean data cost C0 plus the penalty (λ/2n)·Σw², which is 0 under AdamW;
    accuracies only for classification; validation NaN for a fold without
    held-out rows); ``weight_sq_norm`` is Σw² over the decayed parameters.
    ``state_dicts[k]`` is member k's final ``state_dict`` as NumPy arrays.
    ``diverged_epoch[k]`` is the 1-based epoch whose training cost was not
    finite (0: never); from then on the member takes no steps.
    """

    def load_into(self, model: nn.Module, k: int) -> nn.Module:
        """Load member k's final weights into ``model`` (built by the same factory) and return it."""
        model.load_state_dict({name: torch.as_tensor(a) for name, a in self.state_dicts[k].items()})
        return model


# ---------------------------------------------------------------- checks


def _device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} is not available here (torch.cuda.is_available() is False); "
                          "use device='cpu'.")
    return dev


def _data(X, y, device) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(X, y, classification)`` on the device; X ``(n, ...)`` int64 (token ids) or float32, y int64 ``(n,)`` or float ``(n, ...)``."""
    X = X.detach().cpu() if isinstance(X, torch.Tensor) else X
    y = y.detach().cpu() if isinstance(y, torch.Tensor) else y
    X, y, classification = check_arrays(X, y)
    return torch.as_tensor(X, device=device), torch.as_tensor(y, device=device), classification


def _check_same_architecture(models: Sequence[nn.Module]) -> None:
    def layout(m) -> dict:
        tensors = list(m.named_parameters()) + list(m.named_buffers())
        return {k: f"shape {tuple(v.shape)}, {v.dtype}" for k, v in tensors}

    first = layout(models[0])
    for f, model in enumerate(models[1:], start=1):
        other = layout(model)
        name = next((k for k in {**first, **other} if first.get(k) != other.get(k)), None)
        if name is not None:
            raise ConfigError(f"model_fn built different architectures: {name!r} has "
                              f"{first.get(name, 'no such tensor')} in fold 0's model and "
                              f"{other.get(name, 'no such tensor')} in fold {f}'s; model_fn must build the same "
                              f"architecture on every call.")


def _expected_input(model: nn.Module) -> str:
    first = next((m for m in model.modules() if next(m.parameters(recurse=False), None) is not None), None)
    if isinstance(first, nn.Linear):
        return f"; its first layer (Linear) takes {first.in_features} features"
    if isinstance(first, nn.modules.conv._ConvNd):
        return (f"; its first layer ({type(first).__name__}) takes {first.in_channels} input channels, "
                f"examples shaped ({first.in_channels}, ...)")
    return ""


def _check_forward(model: nn.Module, X, y, classification: bool) -> None:
    """Run the model on 2 examples: a wrong data shape becomes one line naming both shapes."""
    r = min(2, len(X))
    kept = {k: v.clone() for k, v in model.named_buffers()}  # the check must not move BatchNorm's statistics
    try:
        with torch.no_grad():
            out = model(X[:r])
            for k, v in model.named_buffers():
                v.copy_(kept[k])
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not X.is_floating_point():  # integer X is kept as token ids; a model of features wants floats
            msg += ("; integer X reaches the model as torch.long (token ids): give float X, e.g. "
                    "X.astype('float32'), to a model that takes features")
        raise DataError(f"the model rejects X's examples of shape {tuple(X.shape[1:])}{_expected_input(model)}: "
                        f"{msg}") from None
    if not isinstance(out, torch.Tensor):
        raise DataError(f"the model must return a tensor; got {type(out).__name__}.")
    error = output_error(tuple(out.shape), r, tuple(y[:r].shape), classification, int(y.max()) + 1 if classification else 0)
    if error:
        raise DataError(error)


# ---------------------------------------------------------------- the optimizer


def _make_optimizer(name: str, momentum: float | None) -> Callable:
    def make(groups):
        # foreach: one call per group over all members' tensors, not a Python loop over K·P tensors (the
        # same update; on a CPU torch.optim's default is the per-tensor loop)
        if name == "sgd":
            return torch.optim.SGD(groups, lr=groups[0]["lr"], foreach=True)
        if name in ("momentum", "nesterov"):
            return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=momentum, nesterov=name == "nesterov",
                                   foreach=True)
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(groups, lr=groups[0]["lr"], foreach=True)

    return make


def _member_groups(member: Member, n: int, decayed: list, others: list, optimizer: str) -> list:
    wd = member.weight_decay if optimizer == "adamw" else member.lmbda / n
    return [(decayed, member.eta, wd), (others, member.eta, 0.0)]


# ---------------------------------------------------------------- training


def _fold_models(model_fn: Callable, seeds: Sequence[int], device: torch.device) -> list[nn.Module]:
    """One initial model per fold: ``model_fn()`` right after ``torch.manual_seed(seed_f)``."""
    models = []
    with torch.random.fork_rng(devices=[]):
        for s in seeds:
            torch.manual_seed(s)
            model = model_fn()
            if not isinstance(model, nn.Module):
                raise ConfigTypeError(f"model_fn must return a torch.nn.Module; got {type(model).__name__}.")
            models.append(model.to(device).train())
    check_norms(models[0])
    _check_same_architecture(models)
    return models


def _member_step_grads(stack: Stack, X, y, batches: list, fold_of: np.ndarray, who: np.ndarray, chunk: int) -> None:
    folds = np.unique(fold_of[who])
    sel = None if len(who) == stack.K else who
    if len(folds) == 1:  # one batch for all: vmap over the weights only
        idx = torch.as_tensor(batches[folds[0]], device=X.device)
        stack.compute_grads(sel, X.index_select(0, idx), y.index_select(0, idx), shared=True, chunk=chunk)
    else:
        idx = torch.as_tensor(np.stack([batches[f] for f in fold_of[who]]), device=X.device)  # (K', m)
        stack.compute_grads(sel, X[idx], y[idx], shared=False, chunk=chunk)


def _grads(stack: Stack, plan: Plan, step) -> None:
    """One step's gradients by the plan's strategy: a strategy that raises is dropped, the buffers it may
    have moved restored, and the step redone by the next one (at last one member at a time)."""
    clock = Clock(plan.cuda)
    while True:
        chunk = plan.chunk
        # until vmap has run once, keep the buffers it may move before failing (later: no copy per step)
        kept = stack.snapshot_buffers() if chunk > 1 and stack.buffers and not plan.vmap_ran else None
        t0 = clock.now()
        try:
            watch = plan.probing or not plan.vmap_ran  # the first vmap steps name the ops that fall back
            with warnings.catch_warnings(record=watch) as caught:
                warnings.filterwarnings("always" if watch else "ignore", message=SLOW_FALLBACK)
                step(chunk)
        except Exception as e:  # noqa: BLE001  (whatever vmap raises, the loop below is the fallback)
            if kept is not None:
                stack.restore_buffers(kept)
            plan.failed(chunk, e)
            continue
        if caught:
            plan.saw_warnings(caught)
        plan.vmap_ran = plan.vmap_ran or chunk > 1
        if plan.probing:
            plan.timed(chunk, clock.now() - t0)
        return


def _train_epoch(stack: Stack, X, y, *, orders: list, fold_of: np.ndarray, m: int, live: np.ndarray,
                 plan: Plan, start: int = 0, after_step: Callable | None = None) -> None:
    """One epoch: at step t every live member whose fold still has rows steps on its fold's t-th batch.
    ``start``: the steps already taken (a resumed epoch); ``after_step(t + 1)`` after each step but the last."""
    steps = max(-(-len(o) // m) for o in orders)
    for t in range(start, steps):
        if after_step is not None and t > start:
            after_step(t)
        batches = [o[t * m:(t + 1) * m] for o in orders]
        sizes = np.array([len(batches[f]) for f in fold_of])
        active = live & (sizes > 0)
        stack.set_active(active)
        if not active.any():
            continue

        def step(chunk):
            for size in np.unique(sizes[active]):  # the last batches of folds of other sizes differ
                _member_step_grads(stack, X, y, batches, fold_of, np.flatnonzero(active & (sizes == size)), chunk)

        _grads(stack, plan, step)
        stack.step()


def _evaluate(stack: Stack, X, y, *, folds, members, decayed, classification: bool, chunk: int, plan: Plan) -> dict:
    """This epoch's :data:`METRICS`, each ``(K,)``: every member on its own fold's rows only."""
    K = len(members)
    fold_of = np.array([mb.fold for mb in members])
    n = np.array([len(folds[f][0]) for f in fold_of], np.float64)
    sq = stack.sq_norms(decayed).cpu().numpy()
    penalty = np.array([mb.lmbda for mb in members]) / (2 * n) * sq
    out = {k: np.full(K, np.nan) for k in METRICS if classification or "accuracy" not in k}
    for f, (tr, va) in enumerate(folds):
        who = np.flatnonzero(fold_of == f)
        for prefix, rows in (("training", tr), ("validation", va)):
            if who.size == 0 or rows.size == 0:
                continue
            loss_sum, correct = _scores(stack, plan, who, X, y, rows, classification=classification, chunk=chunk)
            out[f"{prefix}_cost"][who] = loss_sum.cpu().numpy() / len(rows) + penalty[who]
            if classification:
                out[f"{prefix}_accuracy"][who] = correct.cpu().numpy() / len(rows)
    out["penalty"] = penalty
    out["weight_sq_norm"] = sq
    return out


def _scores(stack: Stack, plan: Plan, who, X, y, rows, *, classification: bool, chunk: int):
    """Per member of ``who``: summed loss and correct count over ``rows``, ``(K',)`` each, ``chunk`` rows at a
    time; the members ``plan.eval_chunk`` per call, measured on the first evaluation (pieces of at most
    :data:`~l2reg.torch.strategy.EVAL_PROBE_ROWS` rows), one at a time where vmap cannot run eval mode."""
    loss_sum = torch.zeros(len(who), dtype=torch.float64, device=X.device)
    correct = torch.zeros(len(who), dtype=torch.float64, device=X.device)
    clock = Clock(plan.cuda)
    start = 0
    while start < len(rows):
        members_chunk = plan.eval_chunk
        piece = min(chunk, EVAL_PROBE_ROWS) if plan.eval_probing else chunk
        idx = torch.as_tensor(rows[start:start + piece], device=X.device)
        t0 = clock.now()
        try:
            watch = plan.eval_probing or not plan.eval_watched  # the first pieces name the ops that fall back
            with warnings.catch_warnings(record=watch) as caught:
                warnings.filterwarnings("always" if watch else "ignore", message=SLOW_FALLBACK)
                lo, co = stack.evaluate(who, X.index_select(0, idx), y.index_select(0, idx),
                                        classification=classification, members_chunk=members_chunk)
            plan.eval_watched = True
        except Exception as e:  # noqa: BLE001  (whatever vmap raises, one member at a time is the fallback)
            plan.eval_failed(members_chunk, e)
            continue
        if caught:
            plan.saw_warnings(caught, evaluation=True)
        if plan.eval_probing:
            plan.eval_timed(members_chunk, clock.now() - t0, len(idx))
        loss_sum += lo
        correct += co
        start += len(idx)
    return loss_sum, correct


def _state_dicts(stack: Stack, model: nn.Module) -> list[dict]:
    """Each member's ``state_dict`` (tied names included) as NumPy arrays."""
    first: dict[int, str] = {}
    canon = {}
    for name, t in list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False)):
        canon[name] = first.setdefault(id(t), name)
    tensors = {**stack.params, **stack.buffers}
    names = [k for k in model.state_dict() if canon.get(k) in tensors]
    return [{k: tensors[canon[k]][i].detach().cpu().numpy().copy() for k in names} for i in range(stack.K)]


@documented({"X": "the inputs ``(n, ...)``, any shape the model takes.",
             "folds": "``(train_idx, val_idx)`` pairs (None: one fold, all rows for training, no validation).",
             **MODEL_HELP,
             "eval_batch_size": "rows per forward pass when the members are evaluated."})
def train_ensemble(model_fn: Callable[[], nn.Module], X, y, *, members, folds=None, epochs: int = 10,
                   batch_size: int = 64, optimizer: str = "sgd", momentum: float = 0.9, policy=DEFAULT_POLICY,
                   seed=0, device="cpu", on_epoch: Callable | None = None,
                   eval_batch_size: int = 1024, strategy: str = "auto",
                   checkpoint: Checkpointing | None = None) -> EnsembleResult:
    """Train every member of ``members`` at once (module docstring) and record each epoch.

    ``model_fn``: a no-argument factory of an ``nn.Module`` mapping a batch
    ``X[idx]`` to logits ``(m, C)`` (integer ``y``) or outputs shaped like
    ``y[idx]`` (float ``y``, mean squared error). ``members``: :class:`Member`
    (or dicts): ``lmbda`` (coupled, weight_decay = λ/n with n = the fold's
    training rows; sgd, momentum, nesterov, adam), ``weight_decay`` (adamw,
    decoupled), ``eta``, ``fold``. ``folds``: ``(train_idx, val_idx)`` pairs
    (None: one fold, all rows for training, no validation). ``seed``: one
    integer (fold seeds derived by :func:`fold_seeds`) or one per fold.
    ``momentum`` μ is used by ``momentum`` and ``nesterov``.
    ``on_epoch(epoch, metrics)`` is called after each epoch with the
    :data:`METRICS` arrays ``(K,)``. ``strategy``: how the members are
    stepped, ``auto`` (measured on the first steps), ``vmap``, ``chunked`` or
    ``loop`` (module docstring). ``device``: ``cpu`` or ``cuda[:N]``.
    ``eval_batch_size``: rows per evaluation call. ``checkpoint``
    (:class:`~l2reg.base.checkpoint.Checkpointing`): the ensemble's whole
    state is saved there after epochs and between steps as it says
    (:mod:`l2reg.torch.resume`), Ctrl-C then stops at the next step and raises
    :class:`~l2reg.errors.Interrupted`, and with ``resume`` the run continues
    from it to the result of an uninterrupted one. Bad input raises one line
    (:mod:`l2reg.errors`).
    """
    if not callable(model_fn):
        raise ConfigTypeError(f"model_fn must be a no-argument callable returning an nn.Module; got {model_fn!r}.")
    epochs = V.integer("epochs", epochs, low=1)
    mu = check_momentum(optimizer, momentum)
    policy_label, _ = resolve_policy(policy)
    dev = _device(device)
    X_t, y_t, classification = _data(X, y, dev)
    fold_list = check_folds(folds, len(X_t))
    member_list = check_members(members, len(fold_list), optimizer)
    n_train = [len(tr) for tr, _ in fold_list]
    m = V.integer("batch_size", batch_size, low=1, high=min(n_train))
    chunk = V.integer("eval_batch_size", eval_batch_size, low=1)
    V.choice("strategy", strategy, STRATEGIES)
    seeds = check_seeds(seed, len(fold_list))
    models = _fold_models(model_fn, seeds, dev)
    _check_forward(models[0], X_t, y_t, classification)
    decayed = decayed_names(models[0], policy)
    others = [k for k, p in models[0].named_parameters() if p.requires_grad and k not in decayed]
    groups = [[g for g in _member_groups(mb, n_train[mb.fold], decayed, others, optimizer) if g[0]]
              for mb in member_list]
    stack = Stack([models[mb.fold] for mb in member_list], groups=groups, make_optimizer=_make_optimizer(optimizer, mu),
                  loss=classification_loss if classification else regression_loss)

    K = len(member_list)
    per_epoch = max(-(-n // m) for n in n_train)
    plan = Plan.make(strategy, K, models[0], steps=epochs * per_epoch, cuda=dev.type == "cuda")
    fold_of = np.array([mb.fold for mb in member_list])
    log = EpochLog(len(member_list), on_epoch)
    at = Position(checkpoint, epochs=epochs, steps=per_epoch, unit="step",
                  save=lambda meta: resume.save(checkpoint, stack, log, plan, dev, meta),
                  load=lambda: resume.load(checkpoint, stack, log, plan, dev))
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []), \
            interrupts.graceful() if checkpoint is not None else nullcontext():
        torch.manual_seed(seeds[0])  # dropout's draws, per member under vmap(randomness="different")
        at.begin()  # a resume: the state, the generator's included, as saved
        for e in range(at.epoch, epochs):
            orders = [tr[epoch_order(seeds[f], len(tr), e)] for f, (tr, _) in enumerate(fold_list)]
            _train_epoch(stack, X_t, y_t, orders=orders, fold_of=fold_of, m=m, live=log.live, plan=plan,
                         start=at.first_step(e), after_step=lambda t, e=e: at.after_step(e, t))
            log.record(e, _evaluate(stack, X_t, y_t, folds=fold_list, members=member_list, decayed=decayed,
                                    classification=classification, chunk=chunk, plan=plan))
            at.after_epoch(e)
    seconds = at.seconds()
    plan.log()
    config = base_config(optimizer=optimizer, mu=mu, epochs=epochs, m=m, policy=policy_label, seed=seed, seeds=seeds,
                         folds=fold_list, classification=classification, device=str(dev))
    config.update(torch=torch.__version__, strategy=plan.to_json())
    return EnsembleResult(
        members=member_list, history=log.stacked(), state_dicts=_state_dicts(stack, models[0]), decayed=decayed,
        config=config, train_seconds=seconds, diverged_epoch=log.diverged, notes=log.notes() + [plan.line()],
    )
