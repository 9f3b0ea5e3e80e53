"""l2reg for your own JAX model: Flax NNX, Flax Linen and Equinox models through the vectorized λ path.

Install Flax or Equinox with ``pip install 'l2reg[flax]'`` or
``pip install 'l2reg[equinox]'``. Importing this subpackage imports JAX and
optax only; Flax and Equinox are imported when a model of theirs is given,
and torch never.

* :func:`train_ensemble`: many (λ, η, fold) members of one model trained in
  one compiled program (λ/n, η, wd and μ traced per member), each equal to the
  plain optax loop; ``result.model(k)`` gives member k back as an
  ``nnx.Module``, an ``eqx.Module`` or a Linen ``(module, variables)`` pair;
* :func:`audit` and :func:`decay_mask`: which leaves of the parameter tree
  decay under a policy (:data:`POLICIES` or a callable ``(path, leaf) -> bool``);
* :func:`sweep`: choose λ for the model by k-fold CV, every λ × fold in one
  program, with the same result, ``sweep.json`` and report as ``l2reg sweep``;
* :func:`monitor`: an optax wrapper that records the decay and data terms of
  every step of an ordinary optax loop, with DecayMonitor's summary and report.
"""

from ..models.audit import AuditResult, Decision, audit_tables
from ..models.ensembles import Member, epoch_order, fold_seeds
from .ensemble import STRATEGIES, EnsembleResult, make_tx, train_ensemble
from .monitor import DecayMonitor, monitor
from .audit import audit
from .policy import DEFAULT_POLICY, POLICIES, classify, decay_mask
from .sweep import JaxSweepOptions, load_factory, sweep

__all__ = [
    "AuditResult", "DEFAULT_POLICY", "DecayMonitor", "Decision", "EnsembleResult", "JaxSweepOptions", "Member",
    "POLICIES", "STRATEGIES", "audit", "audit_tables", "classify", "decay_mask", "epoch_order", "fold_seeds",
    "load_factory", "make_tx", "monitor", "sweep", "train_ensemble",
]
