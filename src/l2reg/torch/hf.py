"""l2reg inside Hugging Face's ``transformers.Trainer``: the decay monitor as a callback, l2reg's decay policy.

Install from the clone with ``pip install -e ".[hf]"`` (transformers and
accelerate, which the Trainer needs). ``import l2reg.torch`` does not import
this module.

* :class:`DecayMonitorCallback`: a :class:`~l2reg.torch.DecayMonitor` on the
  optimizer the Trainer creates (or is given), named by the model's
  parameters. One record per optimizer step, so under gradient accumulation
  one per ``gradient_accumulation_steps`` micro-batches; the Trainer clips
  the gradients before ``optimizer.step()``, so the recorded step is the
  clipped one. At every logging step it adds ``decay/d_over_g``,
  ``decay/frac_away``, ``decay/w_norm``, ``decay/tau_iter`` and
  ``decay/tau_epoch`` (:func:`l2reg.torch._trainers.scalars`) to the logs,
  hence to ``trainer.state.log_history``; at the end of training it writes
  ``decay_monitor.json`` and ``decay_monitor.html``. At the start it logs one
  line (logger ``l2reg.torch``) when the optimizer decays biases or norm
  layers' parameters that l2reg's policy keeps undecayed (the Trainer's own
  rule misses a norm class whose parameter names lack ``norm``).
* :func:`add_callback`: add the callback ahead of the report integrations
  (TensorBoard, W&B, MLflow, …), which ``Trainer(callbacks=[...])`` puts
  first, so that they receive its scalars too.
* :func:`optimizers`: ``Trainer(..., optimizers=optimizers(model, args))``
  builds the optimizer of ``args.optim`` with ``args``' lr, betas and eps on
  :func:`~l2reg.torch.decay_groups` (``args.weight_decay`` for the decayed
  group), and leaves the schedule to the Trainer, which creates
  ``args.lr_scheduler_type`` (with its warm-up) on that optimizer.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..base import validation as V
from ..errors import ConfigError, ConfigTypeError

try:
    import transformers
    from transformers import TrainerCallback
except ImportError:
    raise ConfigError('l2reg.torch.hf needs transformers and accelerate: pip install -e ".[hf]" '
                      '(from the l2reg clone).') from None

import torch  # noqa: E402

from ._trainers import decay_rule_line, log, scalars, torch_optimizer, write_files  # noqa: E402
from .groups import DEFAULT_POLICY, decay_groups  # noqa: E402
from .monitor import DecayMonitor  # noqa: E402

__all__ = ["DecayMonitorCallback", "add_callback", "optimizers"]

_INSTEAD = ("Trainer(..., optimizers=l2reg.torch.hf.optimizers(model, args)) decays by l2reg's policy "
            "(weights only).")


class DecayMonitorCallback(TrainerCallback):
    """A :class:`~l2reg.torch.DecayMonitor` on the Trainer's optimizer (module docstring).

    ``out``: the folder for ``decay_monitor.json`` and ``decay_monitor.html``
    (default: ``args.output_dir``); ``record_every`` k records optimizer
    steps 0, k, 2k, … After training, ``monitor`` holds the monitor (its
    ``summary()``) and ``paths`` the files written.
    """

    def __init__(self, out=None, record_every: int = 1):
        if out is not None and not isinstance(out, (str, Path)):
            raise ConfigTypeError(f"out must be a folder (str or Path) or None; got {type(out).__name__}.")
        self.out = out
        self.record_every = V.integer("record_every", record_every, low=1)
        self.monitor: DecayMonitor | None = None
        self.paths: list[Path] = []
        self._logged = 0
        self._ahead = False  # set by add_callback: called before the report integrations

    def _attach(self, args, state, model, optimizer, train_dataloader) -> None:
        opt = torch_optimizer(optimizer)
        spe = None
        if train_dataloader is not None and hasattr(train_dataloader, "__len__"):
            spe = max(-(-len(train_dataloader) // args.gradient_accumulation_steps), 1)  # the Trainer's count
        epochs = getattr(state, "num_train_epochs", None) or args.num_train_epochs
        self.monitor = DecayMonitor(opt, model=model, record_every=self.record_every, steps_per_epoch=spe,
                                    epochs=max(math.ceil(epochs), 1) if epochs else None, warn=False)
        self._logged = 0
        if not state.is_world_process_zero:
            return
        line = decay_rule_line(model, opt, who=f"The Trainer's optimizer ({type(opt).__name__})", instead=_INSTEAD)
        if line:
            log.warning(line)
        if args.report_to and not self._ahead:
            log.warning(f"The report integrations ({', '.join(args.report_to)}) run before the callbacks given to "
                        f"Trainer(callbacks=...) and will not see the decay/ scalars; add the callback with "
                        f"l2reg.torch.hf.add_callback(trainer, callback) instead.")

    def on_train_begin(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kwargs):
        if self.monitor is not None:  # a second trainer.train(): a new monitor
            self.monitor.remove()
        self.monitor = None
        if optimizer is not None and model is not None:
            self._attach(args, state, model, optimizer, train_dataloader)

    def on_step_begin(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kwargs):
        if self.monitor is None and optimizer is not None and model is not None:  # created after train begin
            self._attach(args, state, model, optimizer, train_dataloader)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.monitor is None or logs is None or any(k.startswith(("eval_", "test_")) for k in logs):
            return
        values = scalars(self.monitor, self._logged)
        self._logged = len(self.monitor.records)
        logs.update(values)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(values)  # the Trainer appended a copy of logs before calling on_log

    def on_train_end(self, args, state, control, **kwargs):
        if self.monitor is None:
            return
        self.monitor.remove()
        if state.is_world_process_zero:
            self.paths = write_files([self.monitor], self.out if self.out is not None else args.output_dir)


def add_callback(trainer, callback: DecayMonitorCallback) -> DecayMonitorCallback:
    """Add ``callback`` to ``trainer`` ahead of its other callbacks, so that the report integrations (TensorBoard,
    W&B, MLflow, …) receive its scalars; returns it."""
    if not isinstance(trainer, transformers.Trainer):
        raise ConfigTypeError(f"trainer must be a transformers.Trainer; got {type(trainer).__name__}.")
    if not isinstance(callback, DecayMonitorCallback):
        raise ConfigTypeError(f"callback must be a DecayMonitorCallback; got {type(callback).__name__}.")
    trainer.callback_handler.callbacks.insert(0, callback)
    callback._ahead = True
    return callback


def optimizers(model, args, policy=DEFAULT_POLICY) -> tuple:
    """``(optimizer, None)`` for ``Trainer(optimizers=...)``: ``args.optim`` on l2reg's decay groups.

    ``model`` the model the Trainer trains (its parameters on their device
    already, as the Trainer requires of a given optimizer); ``args`` its
    ``TrainingArguments``: the optimizer class, lr, betas, eps and
    ``optim_args`` are the Trainer's own (``Trainer.get_optimizer_cls_and_kwargs``),
    the groups are :func:`~l2reg.torch.decay_groups` (``model``,
    ``args.weight_decay``, ``policy``), decoupled under AdamW as in the
    Trainer. The scheduler is None so that the Trainer creates
    ``args.lr_scheduler_type`` with its warm-up on this optimizer.
    """
    if not isinstance(args, transformers.TrainingArguments):
        raise ConfigTypeError(f"args must be transformers.TrainingArguments; got {type(args).__name__}.")
    cls, kwargs = transformers.Trainer.get_optimizer_cls_and_kwargs(args, model)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)) or {"params", "model",
                                                                                   "optimizer_dict"} & kwargs.keys():
        raise ConfigError(f"optim={args.optim!r} builds its own parameter groups, so l2reg's cannot be given to "
                          f"it; use an optimizer that takes parameter groups (adamw_torch, sgd, adagrad, …).")
    return cls(decay_groups(model, args.weight_decay, policy), **kwargs), None
