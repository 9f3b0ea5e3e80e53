"""l2reg for your own PyTorch model: decay groups with an audit, vectorized λ ensembles, a decay monitor.

Install with ``pip install -e ".[torch]"`` in your clone of l2reg. ``import l2reg`` never imports
torch; importing this subpackage does.

* :func:`decay_groups` (``torch.optim`` parameter groups under a policy,
  :data:`POLICIES`), :func:`audit` and :func:`audit_tables` (which parameters
  decay, by which rule, and where two policies differ), :func:`load_factory`;
* :func:`train_ensemble`: many (λ, η, fold) members of one model trained at
  once as a ``torch.func`` ensemble, each stepped by a real ``torch.optim``
  optimizer;
* :func:`sweep`: choose λ for the model by k-fold cross-validation, every
  λ × fold in one ensemble, with the same result, ``sweep.json`` and report
  as ``l2reg sweep``;
* :class:`DecayMonitor`: the decay and data terms of each step of an ordinary
  training loop, and the decay timescale τ.

The trainers' callbacks live in :mod:`l2reg.torch.hf` (Hugging Face's
Trainer, ``pip install -e ".[hf]"``) and :mod:`l2reg.torch.lightning`
(``".[lightning]"``); this package imports neither library.
"""

from ..errors import ConfigError

try:
    import torch as _torch  # noqa: F401
except ImportError:
    raise ConfigError("l2reg.torch needs PyTorch: pip install -e \".[torch]\" (in your clone of l2reg).") from None

from .audit import AuditResult, audit, audit_tables  # noqa: E402
from .ensemble import EnsembleResult, Member, epoch_order, fold_seeds, train_ensemble  # noqa: E402
from .factory import load_factory  # noqa: E402
from .groups import DEFAULT_POLICY, POLICIES, Decision, classify, decay_groups, decayed_names  # noqa: E402
from .monitor import DecayMonitor  # noqa: E402
from .sweeping import sweep  # noqa: E402

__all__ = [
    "AuditResult", "DEFAULT_POLICY", "DecayMonitor", "Decision", "EnsembleResult", "Member", "POLICIES", "audit",
    "audit_tables", "classify", "decay_groups", "decayed_names", "epoch_order", "fold_seeds", "load_factory",
    "sweep", "train_ensemble",
]
