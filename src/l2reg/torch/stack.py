"""K models in stacked tensors, stepped by one real ``torch.optim`` optimizer.

Layout: each parameter of the model is one tensor ``(K, *shape)``
(:func:`torch.func.stack_module_state`). Member k's parameters are leaf
tensors that are *views* of slice k, so the optimizer's in-place updates land
in the stack and the next vmapped forward sees them without copying. The
gradients of all K members come from one ``vmap(grad(loss))`` of
``functional_call`` and are copied into a stacked buffer whose slices are the
leaves' ``.grad``. The optimizer has one parameter group per distinct
(η, weight_decay, decayed or not), holding every member that shares it: a
group's hyperparameters are scalars in ``torch.optim``, and members with
equal ones take the same rule. A member with no batch at a step (its fold
is shorter) or that diverged gets ``.grad = None``, which ``torch.optim``
skips: no step at all, as in its ordinary loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap


def classification_loss(out, y):
    """Mean cross-entropy over the batch: ``F.cross_entropy`` of logits ``(m, C)``."""
    return F.cross_entropy(out, y)


def regression_loss(out, y):
    """Mean squared error over the batch and outputs (``F.mse_loss``; no ½)."""
    return F.mse_loss(out.reshape(y.shape), y)


class Stack:
    """The members' parameters, gradients and optimizer.

    ``models[k]`` is member k's initial model (several members may share one
    object); ``groups[k]`` its list of ``(names, lr, weight_decay)``, names
    being a subset of the parameter names; ``make_optimizer(param_groups)``
    builds the real ``torch.optim`` optimizer.
    """

    def __init__(self, models: Sequence[nn.Module], *, groups: Sequence[list], make_optimizer: Callable,
                 loss: Callable):
        self.skeleton = models[0]
        self.K = len(models)
        params, buffers = stack_module_state(list(models))  # each (K, *shape)
        self.params = {k: v.detach() for k, v in params.items()}
        self.buffers = {k: v.detach() for k, v in buffers.items()}
        self.grads = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.leaves = {k: [v[i].detach().requires_grad_() for i in range(self.K)] for k, v in self.params.items()}
        self.attached = np.zeros(self.K, bool)
        self.set_active(np.ones(self.K, bool))
        merged: dict[tuple, list] = {}
        for k, member_groups in enumerate(groups):
            for names, lr, wd in member_groups:
                merged.setdefault((float(lr), float(wd)), []).extend(self.leaves[n][k] for n in names)
        self.optimizer = make_optimizer([{"params": ps, "lr": lr, "weight_decay": wd}
                                         for (lr, wd), ps in merged.items()])
        self.loss = loss

        def member_loss(p, b, x, y):
            return loss(functional_call(self.skeleton, (p, b), (x,)), y)

        def member_out(p, b, x):
            return functional_call(self.skeleton, (p, b), (x,))

        self._grad_own = vmap(grad(member_loss), in_dims=(0, 0, 0, 0), randomness="different")
        self._grad_shared = vmap(grad(member_loss), in_dims=(0, 0, None, None), randomness="different")
        self._forward = vmap(member_out, in_dims=(0, 0, None), randomness="different")

    # -- gradients

    def set_active(self, active: np.ndarray) -> None:
        """Attach ``.grad`` (views of the buffer) to the active members' leaves, None to the others."""
        for k in np.flatnonzero(active != self.attached):
            for name, leaves in self.leaves.items():
                leaves[k].grad = self.grads[name][k] if active[k] else None
        self.attached = active.copy()

    def subset(self, members: np.ndarray | None) -> tuple[dict, dict]:
        """Parameters and buffers of some members (all: the stack itself, no copy)."""
        if members is None:
            return self.params, self.buffers
        idx = torch.as_tensor(members, device=next(iter(self.params.values())).device)
        return ({k: v.index_select(0, idx) for k, v in self.params.items()},
                {k: v.index_select(0, idx) for k, v in self.buffers.items()})

    def compute_grads(self, members: np.ndarray | None, x, y, *, shared: bool) -> None:
        """Gradients of ``members`` (None: all) into the buffer; ``x``, ``y`` are ``(m, ...)`` if shared, else ``(K', m, ...)``."""
        params, buffers = self.subset(members)
        fn = self._grad_shared if shared else self._grad_own
        grads = fn(params, buffers, x, y)
        for name, g in grads.items():
            if members is None:
                self.grads[name].copy_(g)
            else:
                self.grads[name][torch.as_tensor(members, device=g.device)] = g

    def step(self) -> None:
        self.optimizer.step()

    # -- evaluation

    @torch.no_grad()
    def evaluate(self, members: np.ndarray, X, y, rows: np.ndarray, *, classification: bool, chunk: int):
        """Per member of ``members``: summed loss and correct count over ``rows`` (eval mode), each ``(K',)``."""
        params, buffers = self.subset(None if len(members) == self.K else members)
        loss_sum = torch.zeros(len(members), dtype=torch.float64, device=X.device)
        correct = torch.zeros(len(members), dtype=torch.float64, device=X.device)
        was_training = self.skeleton.training
        self.skeleton.eval()
        try:
            for start in range(0, len(rows), chunk):
                idx = torch.as_tensor(rows[start:start + chunk], device=X.device)
                xb, yb = X.index_select(0, idx), y.index_select(0, idx)
                out = self._forward(params, buffers, xb)  # (K', r, ...)
                if classification:
                    per = F.cross_entropy(out.flatten(0, 1), yb.repeat(len(members)), reduction="none")
                    correct += (out.argmax(-1) == yb).sum(1).double()
                else:
                    per = (out.reshape(len(members), *yb.shape) - yb).pow(2).reshape(len(members), len(idx), -1).mean(-1)
                loss_sum += per.reshape(len(members), -1).double().sum(1)
        finally:
            self.skeleton.train(was_training)
        return loss_sum, correct

    def sq_norms(self, names: Sequence[str]) -> torch.Tensor:
        """Σw² over the named parameters, per member ``(K,)``."""
        total = torch.zeros(self.K, dtype=torch.float64, device=next(iter(self.params.values())).device)
        for name in names:
            total += self.params[name].flatten(1).double().pow(2).sum(1)
        return total
