"""Checkpoints of a PyTorch ensemble (:func:`l2reg.torch.train_ensemble`): what continues it to the same result.

One file, written atomically (:func:`l2reg.base.checkpoint.save_arrays`: an
``.npz``, no pickle, its JSON inside):

* ``params/NAME``, ``buffers/NAME``: the stacked tensors ``(K, *shape)``
  (BatchNorm's running statistics are buffers);
* ``optimizer/I/KEY``: the ``torch.optim`` state of parameter I (numbered as
  its ``state_dict`` numbers them: the members' leaves, group by group), a
  value that is not a tensor in the JSON;
* ``rng/cpu`` (``rng/cuda`` on a GPU): the generator's state, dropout's next draws;
* JSON: the config a resume must match, the position (``epoch`` epochs done
  and ``step`` steps of the next one), every epoch's metrics, the strategy
  probe's state and the seconds trained.

A resumed ensemble takes the same batches (``epoch_order`` depends on the
epoch alone) and the same draws, so it ends where the uninterrupted run ends.
"""

from __future__ import annotations

import torch

from ..base import checkpoint as ckpt
from ..base.checkpoint import Checkpointing
from ..errors import DataError


def save(checkpoint: Checkpointing, stack, log, plan, device, position: dict) -> None:
    """Write the ensemble's state at ``position`` (:meth:`l2reg.models.ensembles.Position.meta`) to
    ``checkpoint.path``."""
    arrays = {f"params/{k}": v.detach().cpu().numpy() for k, v in stack.params.items()}
    arrays.update({f"buffers/{k}": v.detach().cpu().numpy() for k, v in stack.buffers.items()})
    other = {}
    for i, state in stack.optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                arrays[f"optimizer/{i}/{key}"] = value.detach().cpu().numpy()
            else:
                other[f"{i}/{key}"] = value
    arrays["rng/cpu"] = torch.get_rng_state().numpy()
    if device.type == "cuda":
        arrays["rng/cuda"] = torch.cuda.get_rng_state(device).numpy()
    meta = {**position, "log": log.state(), "plan": plan.state(), "optimizer": other}
    ckpt.save_arrays(checkpoint.path, arrays, meta)


def load(checkpoint: Checkpointing, stack, log, plan, device) -> dict:
    """Put the checkpoint's state into the freshly built ``stack``, ``log`` and ``plan``; returns its JSON.
    Another configuration, or an array of another shape or dtype, is refused by name."""
    path = checkpoint.path
    arrays, meta = ckpt.load_arrays(path)
    ckpt.check_same_config(meta.get("config", {}), checkpoint.config or {}, ignore=())

    def take(key: str, like: torch.Tensor) -> torch.Tensor:
        if key not in arrays:
            raise DataError(f"{path}: checkpoint lacks {key}; it was written by a different configuration.")
        a = arrays[key]
        want = like.detach().cpu().numpy()
        if a.shape != want.shape or a.dtype != want.dtype:
            raise DataError(f"{path}: {key} has shape {a.shape} {a.dtype}, expected {want.shape} {want.dtype}.")
        return torch.as_tensor(a, device=like.device)

    with torch.no_grad():
        for prefix, tensors in (("params", stack.params), ("buffers", stack.buffers)):
            for name, t in tensors.items():
                t.copy_(take(f"{prefix}/{name}", t))
    _load_optimizer(stack.optimizer, arrays, meta.get("optimizer", {}), path)
    torch.set_rng_state(take("rng/cpu", torch.get_rng_state()))
    if device.type == "cuda":
        torch.cuda.set_rng_state(take("rng/cuda", torch.cuda.get_rng_state(device)).cpu(), device)
    log.restore(meta["log"])
    plan.restore(meta["plan"])
    return meta


def _load_optimizer(optimizer, arrays: dict, other: dict, path) -> None:
    """The saved per-parameter state into a fresh optimizer built the same way (``load_state_dict``)."""
    doc = optimizer.state_dict()
    n = sum(len(g["params"]) for g in doc["param_groups"])
    state: dict[int, dict] = {}
    items = [(k.split("/", 2)[1:], torch.as_tensor(v)) for k, v in arrays.items() if k.startswith("optimizer/")]
    for (i, key), value in items + [(k.split("/", 1), v) for k, v in other.items()]:
        if not i.isdigit() or int(i) >= n:
            raise DataError(f"{path}: optimizer state of parameter {i}; the optimizer has {n} parameters.")
        state.setdefault(int(i), {})[key] = value
    doc["state"] = {i: state[i] for i in sorted(state)}
    optimizer.load_state_dict(doc)
