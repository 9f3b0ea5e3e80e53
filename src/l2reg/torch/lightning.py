"""l2reg inside PyTorch Lightning: the decay monitor as a callback, l2reg's decay groups for ``configure_optimizers``.

Install from the clone with ``pip install -e ".[lightning]"``.
``import l2reg.torch`` does not import this module.

* :class:`DecayMonitorCallback`: a :class:`~l2reg.torch.DecayMonitor` on
  each optimizer of the ``LightningModule`` (``trainer.optimizers``), named
  by the module's parameters. Lightning calls ``optimizer.step(closure)``
  with the backward pass and the gradient clipping inside the closure; the
  monitor records after the closure, so the recorded step is the clipped
  one, and there is one record per optimizer step (one per
  ``accumulate_grad_batches`` batches). At each of Lightning's logging steps
  (``log_every_n_steps``) it logs ``decay/d_over_g``, ``decay/frac_away``,
  ``decay/w_norm``, ``decay/tau_iter`` and ``decay/tau_epoch`` over the steps
  recorded since the previous one (:func:`l2reg.torch._trainers.scalars`)
  through ``pl_module.log``, so every Lightning logger gets them
  (``decay/opt{i}/…`` for a second optimizer); at the end of ``fit`` (or when it stops on an exception) it
  writes ``decay_monitor.json`` and ``decay_monitor.html``. At the start it
  logs one line (logger ``l2reg.torch``) when an optimizer decays biases or
  norm layers' parameters that l2reg's policy keeps undecayed, as
  ``AdamW(self.parameters(), weight_decay=…)`` does.
* :func:`decay_groups` (the same as :func:`l2reg.torch.decay_groups`) for
  ``configure_optimizers``::

      def configure_optimizers(self):
          return torch.optim.AdamW(decay_groups(self, weight_decay=0.01), lr=1e-3)
"""

from __future__ import annotations

import math
from pathlib import Path

from ..base import validation as V
from ..errors import ConfigError, ConfigTypeError

try:
    from lightning.pytorch import Callback
except ImportError:
    raise ConfigError('l2reg.torch.lightning needs Lightning: pip install -e ".[lightning]" '
                      '(from the l2reg clone).') from None

from ._trainers import decay_rule_line, log, scalars, torch_optimizer, write_files  # noqa: E402
from .groups import decay_groups  # noqa: E402
from .monitor import DecayMonitor  # noqa: E402

__all__ = ["DecayMonitorCallback", "decay_groups"]

_INSTEAD = "configure_optimizers can return the optimizer on l2reg.torch.lightning.decay_groups(self, weight_decay)."


class DecayMonitorCallback(Callback):
    """A :class:`~l2reg.torch.DecayMonitor` on each optimizer of the module (module docstring).

    ``out``: the folder for ``decay_monitor.json`` and ``decay_monitor.html``
    (default: ``trainer.log_dir``); ``record_every`` k records optimizer steps
    0, k, 2k, … After ``fit``, ``monitors`` holds one monitor per optimizer
    (``monitor`` the first) and ``paths`` the files written.
    """

    def __init__(self, out=None, record_every: int = 1):
        if out is not None and not isinstance(out, (str, Path)):
            raise ConfigTypeError(f"out must be a folder (str or Path) or None; got {type(out).__name__}.")
        self.out = out
        self.record_every = V.integer("record_every", record_every, low=1)
        self.monitors: list[DecayMonitor] = []
        self.paths: list[Path] = []
        self._logged: list[int] = []

    @property
    def monitor(self) -> DecayMonitor | None:
        return self.monitors[0] if self.monitors else None

    def on_train_start(self, trainer, pl_module):
        self._detach()
        batches = trainer.num_training_batches
        spe = max(math.ceil(batches / trainer.accumulate_grad_batches), 1) if math.isfinite(batches) else None
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        for i, optimizer in enumerate(trainer.optimizers):
            opt = torch_optimizer(optimizer)
            self.monitors.append(DecayMonitor(opt, model=pl_module, record_every=self.record_every,
                                              steps_per_epoch=spe, epochs=epochs, warn=False))
            who = f"The module's optimizer{f' {i}' if len(trainer.optimizers) > 1 else ''} ({type(opt).__name__})"
            line = decay_rule_line(pl_module, opt, who=who, instead=_INSTEAD) if trainer.is_global_zero else None
            if line:
                log.warning(line)
        self._logged = [0] * len(self.monitors)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # Only where Lightning writes its logs (every log_every_n_steps): a log call costs about a millisecond.
        if not getattr(getattr(trainer, "_logger_connector", None), "should_update_logs", True):
            return
        for i, mon in enumerate(self.monitors):
            if len(mon.records) > self._logged[i]:  # steps recorded since the last log: pooled
                prefix = "decay/" if i == 0 else f"decay/opt{i}/"
                for key, value in scalars(mon, self._logged[i]).items():
                    pl_module.log(prefix + key.removeprefix("decay/"), value, on_step=True, on_epoch=False)
                self._logged[i] = len(mon.records)

    def on_fit_end(self, trainer, pl_module):
        self._finish(trainer)

    def on_exception(self, trainer, pl_module, exception):
        self._finish(trainer)  # what was recorded until then is kept

    def _finish(self, trainer) -> None:
        if not self.monitors:
            return
        for mon in self.monitors:
            mon.remove()
        folder = self.out if self.out is not None else trainer.log_dir  # on every process: log_dir broadcasts
        if trainer.is_global_zero and not self.paths:
            self.paths = write_files(self.monitors, folder)

    def _detach(self) -> None:
        for mon in self.monitors:
            mon.remove()
        self.monitors, self.paths = [], []
