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

Buffers (BatchNorm's ``running_mean``, ``running_var``,
``num_batches_tracked``) are stacked ``(K, *shape)`` the same way and passed
with the parameters to ``functional_call``: under ``vmap`` BatchNorm's
batching rule treats each (member, channel) as its own channel and updates
member k's slice of the stacked buffer in place, exactly as member k's own
module would. That holds only for the stack itself or a contiguous slice of
it (a view); members picked by ``index_select`` get a copy, so their
buffers are written back after the call (:meth:`Stack.compute_grads`),
else their running statistics would silently not change.

How many members one call computes (``chunk``): all of them in one vmap,
chunks of them, or 1, one member at a time through plain autograd on its own
slice (no vmap: any model that trains in an ordinary loop trains so, RNNs,
``.item()``, custom ``autograd.Function`` and control flow included).
"""

from __future__ import annotations

import copy
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
        # contiguous: BatchNorm's batching rule updates a contiguous stacked buffer in place
        self.buffers = {k: v.detach().contiguous() for k, v in buffers.items()}
        self.grads = {k: torch.zeros_like(v) for k, v in self.params.items()}
        # Parameters sharing slice i's memory (nn.Parameter of a view does not copy)
        self.leaves = {k: [nn.Parameter(v[i].detach()) for i in range(self.K)] for k, v in self.params.items()}
        self._modules: list | None = None
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

    def _piece(self, members: np.ndarray) -> tuple[dict, dict, torch.Tensor | None]:
        """Parameters and buffers of some members: views of the stack for a contiguous range (BatchNorm's
        in-place updates land in the stack), else copies (``idx`` returned: their buffers must be written back)."""
        lo, hi = int(members[0]), int(members[-1]) + 1
        if hi - lo == len(members) and np.all(np.diff(members) == 1):
            return ({k: v[lo:hi] for k, v in self.params.items()}, {k: v[lo:hi] for k, v in self.buffers.items()},
                    None)
        idx = torch.as_tensor(members, device=next(iter(self.params.values())).device)
        return ({k: v.index_select(0, idx) for k, v in self.params.items()},
                {k: v.index_select(0, idx) for k, v in self.buffers.items()}, idx)

    def compute_grads(self, members: np.ndarray | None, x, y, *, shared: bool, chunk: int | None = None) -> None:
        """Gradients of ``members`` (None: all) into the buffer, ``chunk`` members per vmap call (None: all at
        once; 1: one member at a time, plain autograd, no vmap); ``x``, ``y`` are ``(m, ...)`` if shared, else
        ``(K', m, ...)``, one batch per member of ``members``."""
        members = np.arange(self.K) if members is None else np.asarray(members)
        chunk = len(members) if chunk is None else chunk
        if chunk <= 1:
            for j, k in enumerate(members):
                self._one_grad(int(k), x if shared else x[j], y if shared else y[j])
            return
        fn = self._grad_shared if shared else self._grad_own
        for start in range(0, len(members), chunk):
            piece = members[start:start + chunk]
            params, buffers, idx = self._piece(piece)
            xs, ys = (x, y) if shared else (x[start:start + chunk], y[start:start + chunk])
            grads = fn(params, buffers, xs, ys)
            if idx is None:
                lo = int(piece[0])
                for name, g in grads.items():
                    self.grads[name][lo:lo + len(piece)].copy_(g)
            else:
                for name, g in grads.items():
                    self.grads[name].index_copy_(0, idx, g)
                for name, b in buffers.items():  # updated on a copy: write it back
                    self.buffers[name].index_copy_(0, idx, b)

    def member_module(self, k: int) -> nn.Module:
        """Member k as an ordinary module whose parameters are its leaves and whose buffers are views of its
        slice: calling it is the user's own forward, with no per-call reparametrization."""
        if self._modules is None:
            own = dict(self.skeleton.named_parameters())
            own_buffers = dict(self.skeleton.named_buffers())
            self._modules = []
            for i in range(self.K):
                memo = {id(t): self.leaves[n][i] for n, t in own.items()}  # tied parameters stay tied
                memo.update({id(t): self.buffers[n][i] for n, t in own_buffers.items() if n in self.buffers})
                self._modules.append(copy.deepcopy(self.skeleton, memo))
        return self._modules[k]

    def _one_grad(self, k: int, x, y) -> None:
        """Member k's gradient by ordinary autograd on its own slice (its buffers updated in place)."""
        names = list(self.leaves)
        leaves = [self.leaves[n][k] for n in names]
        module = self.member_module(k)
        if module.training != self.skeleton.training:
            module.train(self.skeleton.training)
        loss = self.loss(module(x), y)
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        for n, g in zip(names, grads):
            if g is None:
                self.grads[n][k].zero_()
            else:
                self.grads[n][k].copy_(g)

    def step(self) -> None:
        self.optimizer.step()

    def snapshot_buffers(self) -> dict:
        return {k: v.clone() for k, v in self.buffers.items()}

    def restore_buffers(self, snapshot: dict) -> None:
        for k, v in snapshot.items():
            self.buffers[k].copy_(v)

    # -- evaluation

    def _outputs(self, members: np.ndarray, xb, chunk: int) -> torch.Tensor:
        """Every member's outputs on the rows ``xb``, ``(K', r, ...)``, ``chunk`` members per vmap call (1: a loop)."""
        if chunk <= 1:
            outs = []
            for k in members:
                module = self.member_module(int(k))
                outs.append(module.eval()(xb) if module.training else module(xb))
            return torch.stack(outs)
        outs = []
        for start in range(0, len(members), chunk):
            params, buffers, _ = self._piece(members[start:start + chunk])
            outs.append(self._forward(params, buffers, xb))
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    @torch.no_grad()
    def evaluate(self, members: np.ndarray, xb, yb, *, classification: bool, members_chunk: int | None = None):
        """Per member of ``members``: summed loss and correct count over the rows ``xb``, ``yb`` (eval mode, each
        member with its own running statistics), each ``(K',)``; ``members_chunk`` members per call (None: all)."""
        members = np.asarray(members)
        members_chunk = len(members) if members_chunk is None else members_chunk
        was_training = self.skeleton.training
        self.skeleton.eval()
        try:
            out = self._outputs(members, xb, members_chunk)  # (K', r, ...)
        finally:
            self.skeleton.train(was_training)
        if classification:
            per = F.cross_entropy(out.flatten(0, 1), yb.repeat(len(members)), reduction="none")
            correct = (out.argmax(-1) == yb).sum(1).double()
        else:
            per = (out.reshape(len(members), *yb.shape) - yb).pow(2).reshape(len(members), len(yb), -1).mean(-1)
            correct = torch.zeros(len(members), dtype=torch.float64, device=xb.device)
        return per.reshape(len(members), -1).double().sum(1), correct

    def sq_norms(self, names: Sequence[str]) -> torch.Tensor:
        """Σw² over the named parameters, per member ``(K,)``."""
        total = torch.zeros(self.K, dtype=torch.float64, device=next(iter(self.params.values())).device)
        for name in names:
            total += self.params[name].flatten(1).double().pow(2).sum(1)
        return total
