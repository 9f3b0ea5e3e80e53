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
(``vmap(randomness="different")``). BatchNorm with running statistics is
refused: a vmapped ensemble cannot update them per member.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import validation as V
from ..ensembles import (METRICS, OPTIMIZERS, EnsembleRecord, EpochLog, Member, base_config,  # noqa: F401
                         check_arrays, check_folds, check_members, check_momentum, check_seeds, epoch_order,
                         fold_seeds, output_error)
from ..errors import ConfigError, ConfigTypeError, DataError
from .groups import DEFAULT_POLICY, decayed_names, resolve_policy
from .stack import Stack, classification_loss, regression_loss

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
    """``(X, y, classification)`` on the device; X float32 ``(n, ...)``, y int64 ``(n,)`` or float ``(n, ...)``."""
    X = X.detach().cpu() if isinstance(X, torch.Tensor) else X
    y = y.detach().cpu() if isinstance(y, torch.Tensor) else y
    X, y, classification = check_arrays(X, y)
    return torch.as_tensor(X, device=device), torch.as_tensor(y, device=device), classification


def _check_batch_norm(model: nn.Module) -> None:
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            raise ConfigError(
                f"{type(module).__name__} {name!r} keeps running statistics (track_running_stats=True), which a "
                f"vectorized ensemble cannot update per member; build it with track_running_stats=False (batch "
                f"statistics in training and evaluation), or use nn.GroupNorm or nn.LayerNorm.")


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
    try:
        with torch.no_grad():
            out = model(X[:r])
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
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
        if name == "sgd":
            return torch.optim.SGD(groups, lr=groups[0]["lr"])
        if name in ("momentum", "nesterov"):
            return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=momentum, nesterov=name == "nesterov")
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(groups, lr=groups[0]["lr"])

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
    _check_batch_norm(models[0])
    _check_same_architecture(models)
    return models


def _probe(stack: Stack, X, y, m: int) -> None:
    """One gradient of every member on the first rows: a model vmap cannot run is one line here."""
    try:
        stack.compute_grads(None, X[:m], y[:m], shared=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"the model cannot be vectorized with torch.func.vmap (no in-place updates of buffers, "
                          f"no .item() or data-dependent control flow): {first}") from None


def _member_step_grads(stack: Stack, X, y, batches: list, fold_of: np.ndarray, who: np.ndarray) -> None:
    folds = np.unique(fold_of[who])
    sel = None if len(who) == stack.K else who
    if len(folds) == 1:  # one batch for all: vmap over the weights only
        idx = torch.as_tensor(batches[folds[0]], device=X.device)
        stack.compute_grads(sel, X.index_select(0, idx), y.index_select(0, idx), shared=True)
    else:
        idx = torch.as_tensor(np.stack([batches[f] for f in fold_of[who]]), device=X.device)  # (K', m)
        stack.compute_grads(sel, X[idx], y[idx], shared=False)


def _train_epoch(stack: Stack, X, y, *, orders: list, fold_of: np.ndarray, m: int, live: np.ndarray) -> None:
    """One epoch: at step t every live member whose fold still has rows steps on its fold's t-th batch."""
    steps = max(-(-len(o) // m) for o in orders)
    for t in range(steps):
        batches = [o[t * m:(t + 1) * m] for o in orders]
        sizes = np.array([len(batches[f]) for f in fold_of])
        active = live & (sizes > 0)
        stack.set_active(active)
        if not active.any():
            continue
        for size in np.unique(sizes[active]):  # the last batches of folds of other sizes differ
            _member_step_grads(stack, X, y, batches, fold_of, np.flatnonzero(active & (sizes == size)))
        stack.step()


def _evaluate(stack: Stack, X, y, *, folds, members, decayed, classification: bool, chunk: int) -> dict:
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
            loss_sum, correct = stack.evaluate(who, X, y, rows, classification=classification, chunk=chunk)
            out[f"{prefix}_cost"][who] = loss_sum.cpu().numpy() / len(rows) + penalty[who]
            if classification:
                out[f"{prefix}_accuracy"][who] = correct.cpu().numpy() / len(rows)
    out["penalty"] = penalty
    out["weight_sq_norm"] = sq
    return out


def _state_dicts(stack: Stack, model: nn.Module) -> list[dict]:
    """Each member's ``state_dict`` (tied names included) as NumPy arrays."""
    first: dict[int, str] = {}
    canon = {}
    for name, t in list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False)):
        canon[name] = first.setdefault(id(t), name)
    tensors = {**stack.params, **stack.buffers}
    names = [k for k in model.state_dict() if canon.get(k) in tensors]
    return [{k: tensors[canon[k]][i].detach().cpu().numpy().copy() for k in names} for i in range(stack.K)]


def train_ensemble(model_fn: Callable[[], nn.Module], X, y, *, members, folds=None, epochs: int = 10,
                   batch_size: int = 64, optimizer: str = "sgd", momentum: float = 0.9, policy=DEFAULT_POLICY,
                   seed=0, device="cpu", on_epoch: Callable | None = None,
                   eval_batch_size: int = 1024) -> EnsembleResult:
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
    :data:`METRICS` arrays ``(K,)``. Bad input raises one line
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
    seeds = check_seeds(seed, len(fold_list))
    models = _fold_models(model_fn, seeds, dev)
    _check_forward(models[0], X_t, y_t, classification)
    decayed = decayed_names(models[0], policy)
    others = [k for k, p in models[0].named_parameters() if p.requires_grad and k not in decayed]
    groups = [[g for g in _member_groups(mb, n_train[mb.fold], decayed, others, optimizer) if g[0]]
              for mb in member_list]
    stack = Stack([models[mb.fold] for mb in member_list], groups=groups, make_optimizer=_make_optimizer(optimizer, mu),
                  loss=classification_loss if classification else regression_loss)

    fold_of = np.array([mb.fold for mb in member_list])
    log = EpochLog(len(member_list), on_epoch)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
        _probe(stack, X_t, y_t, m)
        torch.manual_seed(seeds[0])  # dropout's draws, per member under vmap(randomness="different")
        for e in range(epochs):
            orders = [tr[epoch_order(seeds[f], len(tr), e)] for f, (tr, _) in enumerate(fold_list)]
            _train_epoch(stack, X_t, y_t, orders=orders, fold_of=fold_of, m=m, live=log.live)
            log.record(e, _evaluate(stack, X_t, y_t, folds=fold_list, members=member_list, decayed=decayed,
                                    classification=classification, chunk=chunk))
    seconds = time.perf_counter() - t0
    config = base_config(optimizer=optimizer, mu=mu, epochs=epochs, m=m, policy=policy_label, seed=seed, seeds=seeds,
                         folds=fold_list, classification=classification, device=str(dev))
    config["torch"] = torch.__version__
    return EnsembleResult(
        members=member_list, history=log.stacked(), state_dicts=_state_dicts(stack, models[0]), decayed=decayed,
        config=config, train_seconds=seconds, diverged_epoch=log.diverged, notes=log.notes(),
    )
