"""One λ, written the way each framework writes it.

Everything converts through Nielsen's λ, the λ of

    C = C0 + (λ/2n)·Σ_w w²        (C0 the mean cost over the n training examples;
                                    weights only, never biases)

whose mini-batch SGD update (learning rate η, batch size m) is

    w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w

The other conventions, each as a function of λ (derivations in the
``equation`` and ``caveat`` of each :class:`Convention`):

* ``coupled``: the per-step coefficient λ/n added to the gradient, PyTorch
  ``SGD``/``Adam`` ``weight_decay`` (coupled mode) and
  ``optax.add_decayed_weights`` chained before the learning rate;
* ``keras-l2``: ``keras.regularizers.L2(l2)``, l2·Σw² with no ½, l2 = λ/(2n);
* ``mlp-alpha``: scikit-learn ``MLPClassifier``/``MLPRegressor`` ``alpha`` under
  solver sgd or adam, α = λ·m/n (sklearn divides its penalty by the batch size);
* ``mlp-alpha-lbfgs``: the same ``alpha`` under solver lbfgs, α = λ;
* ``ridge-alpha``: scikit-learn ``Ridge`` ``alpha``, α = λ;
* ``logistic-c``: scikit-learn ``LogisticRegression`` ``C``, C = 1/λ;
* ``sgd-alpha``: scikit-learn ``SGDClassifier``/``SGDRegressor`` ``alpha``, α = λ/n;
* ``decoupled-sgd``: decoupled weight decay (multiplied by the learning rate)
  with plain SGD and no momentum, wd = λ/n: the only case where decoupled
  equals coupled;
* ``decoupled-adam``: decoupled weight decay with Adam (PyTorch ``AdamW``,
  ``optax.adamw``, Keras optimizers' ``weight_decay``): no exact equivalent;
  wd = ηλ/(n·lr) gives the same per-step shrink factor at learning rate lr.

Decay timescales (Wang & Aitchison, ICML 2025). A decay that multiplies
every weight by (1 − a) per step makes the weights an exponential moving
average of the updates with timescale τ_iter = 1/a steps, and τ_epoch =
τ_iter / (steps per epoch) epochs, steps per epoch = ⌈n/m⌉. The per-step
rate a of each setting (:func:`decay_timescale`):

* coupled L2 under SGD: a = η·λ/n (PyTorch ``SGD(weight_decay=λ/n)``), so
  τ_iter = n/(ηλ);
* coupled L2 under SGD with momentum μ (or Nesterov): the velocity sums the
  decay, so in the long run a = η·λ/(n·(1 − μ)) (the slow mode of the
  decay's recursion, to relative order η·λ/(n·(1 − μ)²));
* decoupled weight decay wd at learning rate η (``AdamW``, PyTorch/optax
  form): a = η·wd, τ_iter = 1/(η·wd); in the paper's schedule form
  (``decay_scaling="schedule"``) a = wd;
* coupled L2 under Adam: divided by √v̂ per weight, so no single rate: no
  fixed timescale.

The paper's finding is that the best τ_epoch stays roughly constant as the
model and the data grow; :func:`convert` transfers a setting to another batch
size, dataset size or learning rate keeping τ_epoch fixed.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from ..base import validation as V
from ..errors import ConfigError
from ..options import DECAY_SCALINGS, OPTIMIZERS

# What each extra input is, for error messages.
_INPUTS = {
    "n": "n (the training-set size)",
    "m": "batch_size m (the mini-batch size)",
    "eta": "eta (the SGD learning rate η that λ goes with)",
    "lr": "lr (the learning rate of the decoupled optimizer)",
}


@dataclass(frozen=True)
class _Ctx:
    n: int | None
    m: int | None
    eta: float | None
    lr: float | None


@dataclass(frozen=True)
class Convention:
    """How one library setting relates to Nielsen's λ.

    ``to_value(λ, ctx)`` and ``to_lmbda(value, ctx)`` are inverse; ``needs``
    names the inputs (``n``, ``m``, ``eta``, ``lr``) they use; ``equation(λ,
    ctx)`` writes the value as a function of λ with this case's numbers.
    """

    key: str
    setting: str
    formula: str
    caveat: str
    needs: tuple[str, ...]
    to_value: Callable[[float, _Ctx], float]
    to_lmbda: Callable[[float, _Ctx], float]
    numbers: Callable[[float, _Ctx], str]
    code: str = ""


def _g(x) -> str:
    return f"{x:.6g}"


def _adam_rates(ctx: _Ctx) -> tuple[float, float]:
    """(η, lr) for the decoupled-Adam match; a missing one equals the other."""
    eta = ctx.eta if ctx.eta is not None else ctx.lr
    lr = ctx.lr if ctx.lr is not None else ctx.eta
    return (1.0, 1.0) if eta is None else (eta, lr)


def _adam_numbers(lmbda: float, ctx: _Ctx) -> str:
    eta, lr = _adam_rates(ctx)
    if ctx.eta is None and ctx.lr is None:
        return f"{_g(lmbda)}/{ctx.n} (lr = η assumed)"
    return f"{_g(eta)}·{_g(lmbda)}/({ctx.n}·{_g(lr)})"


CONVENTIONS: dict[str, Convention] = {
    c.key: c
    for c in [
        Convention(
            "nielsen", "Nielsen λ", "λ",
            "C = C0 + (λ/2n)·Σw² with C0 the mean cost over the n training examples; weights only, "
            "not biases (network2.py, l2reg).",
            (), lambda l, c: l, lambda v, c: v, lambda l, c: _g(l),
            "l2reg train --lmbda {v} --eta {eta} --batch-size {m}",
        ),
        Convention(
            "coupled", "coupled per-step coefficient λ/n: PyTorch SGD(weight_decay=…) and Adam(weight_decay=…), "
            "optax.add_decayed_weights(…) before the learning rate",
            "λ/n",
            "Added to the gradient before the optimizer (coupled), so it is scaled by the learning rate; "
            "with momentum or Adam it also passes through their statistics (under Adam it is divided by √v̂, "
            "so it is no longer a uniform shrink). Exclude the biases (PyTorch parameter groups; optax mask) "
            "to match exactly.",
            ("n",), lambda l, c: l / c.n, lambda v, c: v * c.n, lambda l, c: f"{_g(l)}/{c.n}",
            "torch.optim.SGD(params, lr={eta}, weight_decay={v}); "
            "optax.chain(optax.add_decayed_weights({v}, mask), optax.sgd({eta}))",
        ),
        Convention(
            "keras-l2", "Keras regularizers.L2(l2)", "λ/(2n)",
            "Keras adds l2·Σw² (no ½) to the mean loss, so its gradient is 2·l2·w = (λ/n)·w. Set it as "
            "kernel_regularizer on every layer (not bias_regularizer) to match.",
            ("n",), lambda l, c: l / (2 * c.n), lambda v, c: 2 * c.n * v, lambda l, c: f"{_g(l)}/(2·{c.n})",
            "keras.layers.Dense(units, kernel_regularizer=keras.regularizers.L2({v}))",
        ),
        Convention(
            "mlp-alpha", "scikit-learn MLPClassifier/MLPRegressor alpha, solver sgd or adam", "λ·m/n",
            "scikit-learn adds 0.5·α·Σw² divided by n_samples, and under sgd/adam n_samples is the mini-batch "
            "size m (batch_size), so α/m must equal λ/n. The last, partial batch of an epoch is penalized more "
            "(its n_samples is smaller). Under adam the update is not SGD's, so only the cost matches.",
            ("n", "m"), lambda l, c: l * c.m / c.n, lambda v, c: v * c.n / c.m,
            lambda l, c: f"{_g(l)}·{c.m}/{c.n}",
            "MLPClassifier(solver='sgd', batch_size={m}, alpha={v}, momentum=0, learning_rate_init={eta})",
        ),
        Convention(
            "mlp-alpha-lbfgs", "scikit-learn MLPClassifier/MLPRegressor alpha, solver lbfgs", "λ",
            "Under lbfgs n_samples is the full training set n, so 0.5·α·Σw²/n = (λ/2n)·Σw²: α = λ.",
            (), lambda l, c: l, lambda v, c: v, lambda l, c: _g(l),
            "MLPClassifier(solver='lbfgs', alpha={v})",
        ),
        Convention(
            "ridge-alpha", "scikit-learn Ridge alpha", "λ",
            "Ridge minimizes ‖y − Xw‖² + α‖w‖², which is 2n times C0 + (λ/2n)·Σw² for the quadratic cost "
            "(½‖a − t‖²) with linear outputs and no hidden layer; the intercept is not penalized, like our biases.",
            (), lambda l, c: l, lambda v, c: v, lambda l, c: _g(l),
            "sklearn.linear_model.Ridge(alpha={v})",
        ),
        Convention(
            "logistic-c", "scikit-learn LogisticRegression C", "1/λ",
            "LogisticRegression minimizes C·Σ_x loss_x + ½‖w‖², which is n/λ times C0 + (λ/2n)·Σw² for the "
            "log-likelihood cost with softmax outputs and no hidden layer (or one sigmoid output when binary); "
            "the intercept is not penalized. λ = 0 is no penalty (C = inf, penalty=None).",
            (), lambda l, c: math.inf if l == 0 else 1.0 / l, lambda v, c: 1.0 / v,
            lambda l, c: f"1/{_g(l)}",
            "sklearn.linear_model.LogisticRegression(C={v})",
        ),
        Convention(
            "sgd-alpha", "scikit-learn SGDClassifier/SGDRegressor alpha", "λ/n",
            "These minimize the mean loss + α·½‖w‖², one example per step (m = 1): each step shrinks w by "
            "(1 − η·α). The default learning-rate schedule ('optimal') depends on alpha; use "
            "learning_rate='constant', eta0=η to compare with a fixed η.",
            ("n",), lambda l, c: l / c.n, lambda v, c: v * c.n, lambda l, c: f"{_g(l)}/{c.n}",
            "SGDClassifier(penalty='l2', alpha={v}, learning_rate='constant', eta0={eta})",
        ),
        Convention(
            "decoupled-sgd", "decoupled weight decay with plain SGD, no momentum (Keras SGD(weight_decay=…), "
            "or any w ← w − lr·wd·w beside a plain SGD step)", "λ/n",
            "Decoupled decay shrinks w by (1 − lr·wd) each step outside the gradient. With plain SGD at lr = η "
            "and no momentum this is the same update as coupled L2; with momentum it is not.",
            ("n",), lambda l, c: l / c.n, lambda v, c: v * c.n, lambda l, c: f"{_g(l)}/{c.n}",
            "keras.optimizers.SGD(learning_rate={eta}, weight_decay={v})",
        ),
        Convention(
            "decoupled-adam", "decoupled weight decay with Adam: PyTorch AdamW and Adam(decoupled_weight_decay=True), "
            "optax.adamw, Keras optimizers' weight_decay", "η·λ/(n·lr)",
            "No exact equivalent: Adam divides the data term by √v̂ but not the decoupled decay, so the balance "
            "between the two terms is not SGD's. This value only makes the per-step shrink (1 − lr·wd) equal "
            "(1 − ηλ/n) at this learning rate lr; under a schedule the decay follows lr. (PyTorch, optax and Keras "
            "multiply wd by lr; in the AdamW paper's form, decay by the schedule multiplier only, use wd = ηλ/n.)",
            ("n",), lambda l, c: _adam_rates(c)[0] * l / (c.n * _adam_rates(c)[1]),
            lambda v, c: v * c.n * _adam_rates(c)[1] / _adam_rates(c)[0], _adam_numbers,
            "torch.optim.AdamW(params, lr={lr}, weight_decay={v}); optax.adamw({lr}, weight_decay={v})",
        ),
    ]
}

ALIASES = {
    "lambda": "nielsen", "lmbda": "nielsen",
    "weight-decay": "coupled", "pytorch": "coupled", "optax": "coupled",
    "keras": "keras-l2", "l2": "keras-l2",
    "mlp": "mlp-alpha", "mlp-lbfgs": "mlp-alpha-lbfgs",
    "ridge": "ridge-alpha", "c": "logistic-c", "logistic": "logistic-c",
    "sgdclassifier": "sgd-alpha", "sgdregressor": "sgd-alpha",
    "adamw": "decoupled-adam",
}


@dataclass
class Conversion:
    """The result of :func:`convert`: the value in every requested convention.

    ``rows`` holds one dict per convention: ``key``, ``setting``, ``value``
    (None where an optional input is missing), ``equation`` (with numbers),
    ``caveat``, ``code`` (complete lines to paste, '' when an input it
    needs is missing: ``code_needs``), ``code_assumes`` (the n and batch
    size the code relies on but does not set), ``missing`` (the inputs the
    value would need), and the
    decay timescale of that setting, ``tau_iter`` (steps) and ``tau_epoch``
    (epochs; None where undefined or an input is missing; ``inf`` for no
    decay), with ``timescale_note``.

    ``timescale`` is :meth:`Timescale.to_json` of λ under SGD at η (with
    momentum μ if given); ``warnings`` says when τ_epoch < 1 or exceeds
    ``epochs``; ``transfer`` (when asked) holds the new ``n``,
    ``batch_size``, ``eta``, ``lmbda`` with the same ``tau_epoch``,
    ``adamw_weight_decay`` (AdamW's wd at lr with that τ_epoch), and the new
    λ's ``rows`` in every convention.
    """

    source: str
    value: float
    lmbda: float
    inputs: dict
    rows: list
    notes: list = field(default_factory=list)
    timescale: dict | None = None  # λ's decay timescale under SGD at η (see decay_timescale)
    warnings: list = field(default_factory=list)  # τ_epoch < 1, or longer than the run
    transfer: dict | None = None  # the setting at another n, batch size or η with the same τ_epoch

    def to_json(self) -> dict:
        return asdict(self)


def resolve(name: str) -> str:
    """The convention key for a name or alias (case-insensitive)."""
    key = str(name).strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key not in CONVENTIONS:
        raise ConfigError(f"convention must be one of {', '.join(CONVENTIONS)}; got {name!r}.")
    return key


def _missing(conv: Convention, ctx: _Ctx) -> list[str]:
    out = [x for x in conv.needs if getattr(ctx, x) is None]
    if conv.key == "mlp-alpha" and ctx.m is None:
        out.append("m")
    if conv.key == "decoupled-adam" and ctx.lr is not None and ctx.eta is None:
        out.append("eta")
    return list(dict.fromkeys(out))


def _require(conv: Convention, ctx: _Ctx, why: str) -> None:
    missing = _missing(conv, ctx)
    if missing:
        names = " and ".join(_INPUTS[x] for x in missing)
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigError(f"{names} {verb} missing: needed to convert {why} {conv.key} ({conv.formula}).")


def convert(value, source: str = "nielsen", *, n=None, batch_size=None, eta=None, lr=None, to=None,
            momentum=None, epochs=None, to_batch_size=None, to_n=None, to_eta=None) -> Conversion:
    """Convert ``value`` given in convention ``source`` to every other convention.

    ``n`` is the training-set size, ``batch_size`` the mini-batch size m, ``eta`` the SGD
    learning rate η that λ goes with, ``lr`` the learning rate of a
    decoupled-decay optimizer (default η). ``to`` restricts the output to some
    conventions. An input that ``source`` or an explicitly requested target
    needs, if missing, is a :class:`ConfigError`; ``n`` is required whenever
    all conventions are requested. Other rows whose inputs are missing get
    ``value=None`` and list what they miss.

    Timescales (module docstring): every row gets τ_iter (needs ``eta``) and
    τ_epoch (needs ``batch_size`` too); ``momentum`` μ makes the coupled rows'
    rate η·λ/(n·(1 − μ)); ``epochs`` (the run's length) adds a warning when
    τ_epoch exceeds it. ``to_batch_size``, ``to_n`` and ``to_eta`` (any of
    them; the others stay) transfer λ to that setting keeping τ_epoch fixed
    (``result.transfer``); they need ``n``, ``batch_size`` and ``eta``.
    """
    source = resolve(source)
    low_strict = source == "logistic-c"
    value = V.number("value", value, low=0, strict=low_strict)
    ctx = _context(n=n, batch_size=batch_size, eta=eta, lr=lr)
    notes = []
    if source == "decoupled-adam" and ctx.eta is None and ctx.lr is not None:
        # An AdamW user has no SGD η, and τ = 1/(lr·wd) needs none: the SGD with the same shrink runs at η = lr.
        ctx = replace(ctx, eta=ctx.lr)
        notes.append(f"η = lr = {_g(ctx.lr)} assumed (from decoupled-adam): the SGD rows run at the AdamW learning "
                     "rate; give --eta for another.")
    mu = None if momentum is None else _momentum(momentum)
    if epochs is not None:
        V.integer("epochs", epochs, low=1)
    _require(CONVENTIONS[source], ctx, "from")
    if to is None:
        targets = list(CONVENTIONS)
        if ctx.n is None:
            raise ConfigError(f"{_INPUTS['n']} is missing: needed by most conventions (give it, "
                              "or ask for n-free ones only, e.g. ridge-alpha, logistic-c, mlp-alpha-lbfgs).")
    else:
        targets = [resolve(t) for t in ([to] if isinstance(to, str) else to)]
        for t in targets:
            _require(CONVENTIONS[t], ctx, "to")
    lmbda = float(CONVENTIONS[source].to_lmbda(value, ctx))
    if not math.isfinite(lmbda):
        raise ConfigError(f"value {value!r} as {source} gives λ = {lmbda}; expected a finite λ.")

    rows = [_row(key, lmbda, ctx, mu) for key in targets]
    if ctx.n is not None and ctx.eta is not None:
        f = 1 - ctx.eta * lmbda / ctx.n
        note = f"With η = {_g(ctx.eta)} the decay term alone multiplies every weight by (1 − ηλ/n) = {f:.6g} per step"
        if ctx.m is not None:
            steps = -(-ctx.n // ctx.m)
            note += f", {f ** steps:.4g} per epoch of {steps} steps"
        notes.append(note + ".")
    if "decoupled-adam" in targets and ctx.eta is None and ctx.lr is None:
        notes.append("decoupled-adam assumes the decoupled optimizer runs at the same learning rate as SGD; "
                     "give eta and lr to match another one.")
    timescale = None
    warns: list[str] = []
    if ctx.n is not None and ctx.eta is not None:
        ts = _sgd_timescale(lmbda, ctx, mu)
        timescale = ts.to_json()
        if ctx.m is not None:
            notes.append(ts.describe())
            warns = ts.warnings(epochs)
    transfer = None
    if (to_batch_size, to_n, to_eta) != (None, None, None):
        transfer = _transfer(lmbda, ctx, mu, to_batch_size=to_batch_size, to_n=to_n, to_eta=to_eta)
        notes.append(transfer["note"])
    inputs = {"n": ctx.n, "batch_size": ctx.m, "eta": ctx.eta, "lr": ctx.lr}
    if mu is not None:
        inputs["momentum"] = mu
    if epochs is not None:
        inputs["epochs"] = int(epochs)
    return Conversion(source=source, value=value, lmbda=lmbda, inputs=inputs, rows=rows, notes=notes,
                      timescale=timescale, warnings=warns, transfer=transfer)


def _context(*, n, batch_size, eta, lr) -> _Ctx:
    ctx = _Ctx(
        n=None if n is None else V.integer("n", n, low=1),
        m=None if batch_size is None else V.integer("batch_size", batch_size, low=1),
        eta=None if eta is None else V.number("eta", eta, low=0, strict=True),
        lr=None if lr is None else V.number("lr", lr, low=0, strict=True),
    )
    if ctx.n is not None and ctx.m is not None and ctx.m > ctx.n:
        raise ConfigError(f"batch_size must be an integer between 1 and n = {ctx.n}; got {ctx.m}.")
    return ctx


def _momentum(momentum) -> float:
    mu = V.number("momentum", momentum, low=0)
    if mu >= 1:
        raise ConfigError(f"momentum must be a finite number in [0, 1); got {momentum!r}.")
    return mu


def _row(key: str, lmbda: float, ctx: _Ctx, mu: float | None) -> dict:
    """One convention's row: its value, equation with numbers, and its decay timescale."""
    conv = CONVENTIONS[key]
    missing = _missing(conv, ctx)
    row = {"key": key, "setting": conv.setting, "value": None, "equation": f"{_sym(conv)} = {conv.formula}",
           "caveat": conv.caveat, "code": "", "code_assumes": "", "code_needs": [],
           "missing": [_INPUTS[x] for x in missing]}
    if not missing:
        v = float(conv.to_value(lmbda, ctx))
        row["value"] = v
        row["equation"] = _equation(_sym(conv), conv.formula, conv.numbers(lmbda, ctx), _g(v))
        row["code"], row["code_assumes"], row["code_needs"] = _code(conv, v, ctx)
    row.update(_row_timescale(key, lmbda, row["value"], ctx, mu))
    return row


_CODE_INPUTS = {"eta": "eta", "m": "batch_size", "lr": "lr"}


def _code(conv: Convention, value: float, ctx: _Ctx) -> tuple[str, str, list[str]]:
    """The lines to paste for one setting, complete: (code, what it assumes, the inputs it still needs).

    Every number the code depends on is in it (λ's value, η, lr, m) or in ``assumes`` (n, and the
    batch size where the code does not set it); alternatives are separate lines. When an input the
    code needs is missing the code is '' and ``needs`` names the inputs.
    """
    lr = ctx.lr if ctx.lr is not None else ctx.eta
    known = {"v": _g(value), "m": ctx.m, "eta": None if ctx.eta is None else _g(ctx.eta),
             "lr": None if lr is None else _g(lr)}
    used = set(re.findall(r"{(\w+)}", conv.code))
    needs = [_CODE_INPUTS[k] for k in ("eta", "m", "lr") if k in used and known[k] is None]
    if needs:
        return "", "", list(dict.fromkeys(needs))
    assumes = []
    if ctx.n is not None and conv.key not in ("ridge-alpha", "logistic-c", "mlp-alpha-lbfgs"):
        assumes.append(f"n = {ctx.n} training examples")
    if ctx.m is not None and "m" not in used and conv.key not in _FULL_BATCH + ("sgd-alpha",):
        assumes.append(f"batch size {ctx.m}")
    return conv.code.format(**known).replace("; ", "\n"), ", ".join(assumes), []


def _equation(*parts: str) -> str:
    """``a = b = c``, without repeating a part equal to the one before it."""
    out = [parts[0]]
    for p in parts[1:]:
        if p != out[-1]:
            out.append(p)
    return " = ".join(out)


def _sym(conv: Convention) -> str:
    return {
        "nielsen": "λ", "coupled": "weight_decay", "keras-l2": "l2", "mlp-alpha": "alpha",
        "mlp-alpha-lbfgs": "alpha", "ridge-alpha": "alpha", "logistic-c": "C", "sgd-alpha": "alpha",
        "decoupled-sgd": "wd", "decoupled-adam": "wd",
    }[conv.key]


# ---------------------------------------------------------------- decay timescales (Wang & Aitchison, ICML 2025)

_NO_TIMESCALE_ADAM = ("Adam divides the coupled decay (λ/n)·w by √v̂, weight by weight, so there is no single shrink "
                      "rate and no fixed timescale (AdamW's decoupled decay has one).")


@dataclass(frozen=True)
class Timescale:
    """How fast the decay alone forgets: w is an EMA of the updates with timescale τ.

    ``decay_per_step`` is the rate a (the decay alone multiplies w by
    ``per_step`` = 1 − a each step; the long-run rate under momentum);
    ``tau_iter`` = 1/a steps and ``tau_epoch`` = τ_iter / ``steps_per_epoch``
    epochs: ``math.inf`` when there is no decay, None where undefined (coupled
    L2 under Adam), with the reason in ``note``.
    """

    optimizer: str
    decay_per_step: float | None
    per_step: float | None
    tau_iter: float | None
    tau_epoch: float | None
    steps_per_epoch: int
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One sentence with the numbers."""
        if self.tau_iter is None:
            return f"Decay timescale: none. {self.note}"
        if math.isinf(self.tau_iter):
            return "Decay timescale: infinite (no decay)."
        text = (f"Decay timescale (Wang & Aitchison): τ_iter = 1/{_g(self.decay_per_step)} = {self.tau_iter:.5g} steps, "
                f"τ_epoch = τ_iter/{self.steps_per_epoch} = {self.tau_epoch:.4g} epochs")
        return text + (f" ({self.note})." if self.note else ".")

    def warnings(self, epochs: int | None = None) -> list[str]:
        """Why this timescale may be a mistake: τ_epoch < 1, longer than ``epochs``, or a shrink factor ≤ 0."""
        out = []
        if self.per_step is not None and self.per_step <= 0:
            out.append(f"The decay alone multiplies w by {self.per_step:.4g} per step (≤ 0): it overshoots zero, "
                       f"so training oscillates or diverges; lower λ (or weight_decay) or the learning rate.")
        if self.tau_epoch is None or math.isinf(self.tau_epoch):
            return out
        if self.tau_epoch < 1:
            out.append(f"τ_epoch = {self.tau_epoch:.3g} < 1: the weights forget everything within an epoch "
                       f"(τ_iter = {self.tau_iter:.3g} steps < {self.steps_per_epoch} steps per epoch); "
                       f"lower λ (or weight_decay) or the learning rate to lengthen it.")
        if epochs is not None and self.tau_epoch > epochs:
            out.append(f"τ_epoch = {self.tau_epoch:.3g} exceeds the run's {epochs} epochs: the decay never reaches "
                       f"its equilibrium and the final weights still remember their initialization; "
                       f"raise λ (or weight_decay) or train longer.")
        return out


def decay_timescale(*, optimizer: str = "sgd", n: int, batch_size: int, eta: float, lmbda: float = 0.0,
                    weight_decay: float = 0.0, momentum: float | None = None,
                    decay_scaling: str = "lr") -> Timescale:
    """The decay timescale of one setting (no JAX needed).

    ``lmbda`` is Nielsen's λ (coupled: the decay coefficient is λ/n, n the
    training-set size); ``weight_decay`` is PyTorch's setting of that
    optimizer: coupled (added to the gradient, like λ/n) for ``sgd``,
    ``momentum``, ``nesterov`` and ``adam``, decoupled for ``adamw``. The
    rate a per step (module docstring): sgd a = η·c, momentum/nesterov
    a = η·c/(1 − μ) (long run), adamw a = η·wd (``decay_scaling="lr"``,
    PyTorch/optax) or wd (``"schedule"``, the paper's form), adam with c > 0
    none; c = λ/n + weight_decay the coupled coefficient. τ_iter = 1/a,
    τ_epoch = τ_iter/⌈n/m⌉.
    """
    V.choice("optimizer", optimizer, OPTIMIZERS)
    V.choice("decay_scaling", decay_scaling, DECAY_SCALINGS)
    n = V.integer("n", n, low=1)
    m = V.integer("batch_size", batch_size, low=1, high=n)
    eta = V.number("eta", eta, low=0, strict=True)
    lmbda = V.number("lmbda", lmbda, low=0)
    weight_decay = V.number("weight_decay", weight_decay, low=0)
    mu = None
    if optimizer in ("momentum", "nesterov"):
        if momentum is None:
            raise ConfigError(f"momentum is missing: needed for optimizer {optimizer!r}.")
        mu = _momentum(momentum)
    coupled = lmbda / n + (weight_decay if optimizer != "adamw" else 0.0)
    steps = -(-n // m)
    note = ""
    if optimizer == "adam" and coupled > 0:
        return Timescale(optimizer, None, None, None, None, steps, _NO_TIMESCALE_ADAM)
    if optimizer == "adamw":
        rate = eta * weight_decay if decay_scaling == "lr" else weight_decay
        if coupled > 0:
            note = "the coupled λ goes through Adam's moments and has no fixed timescale; τ counts the decoupled decay"
    elif mu is not None:
        rate = eta * coupled / (1 - mu)
        note = f"long-run rate: the velocity sums the decay, η·c/(1 − μ) with μ = {_g(mu)}"
    else:
        rate = eta * coupled
    if rate == 0:
        return Timescale(optimizer, 0.0, 1.0, math.inf, math.inf, steps, note or "no decay")
    return Timescale(optimizer, rate, 1 - rate, _round(1 / rate), _round(1 / (rate * steps)), steps, note)


def _round(x: float) -> float:
    """14 significant digits: 1/(1e-3·1e-2) is 100000, not 99999.99999999999."""
    return float(f"{x:.14g}")


def _sgd_timescale(lmbda: float, ctx: _Ctx, mu: float | None, *, m: int | None = None) -> Timescale:
    """λ (coupled) under SGD at η, with momentum μ if given; m defaults to the batch size (1 when unknown)."""
    m = m if m is not None else (ctx.m or 1)
    kind = "sgd" if mu is None else "momentum"
    return decay_timescale(optimizer=kind, n=ctx.n, batch_size=m, eta=ctx.eta, lmbda=lmbda, momentum=mu)


_FULL_BATCH = ("mlp-alpha-lbfgs", "ridge-alpha", "logistic-c")


def _row_timescale(key: str, lmbda: float, value: float | None, ctx: _Ctx, mu: float | None) -> dict:
    """τ_iter, τ_epoch and a note for one convention's setting (None where undefined or inputs are missing)."""
    out = {"tau_iter": None, "tau_epoch": None, "timescale_note": ""}
    if key in _FULL_BATCH:
        out["timescale_note"] = "full-batch solver: no mini-batch steps, no timescale"
        return out
    if ctx.n is None or ctx.eta is None or value is None:
        out["timescale_note"] = "needs n and eta"
        return out
    if key == "decoupled-adam":
        lr = _adam_rates(ctx)[1]
        ts = decay_timescale(optimizer="adamw", n=ctx.n, batch_size=ctx.m or 1, eta=lr, weight_decay=value)
        note = f"AdamW at lr = {_g(lr)}: τ_iter = 1/(lr·wd)"
    elif key == "decoupled-sgd":
        ts = decay_timescale(optimizer="sgd", n=ctx.n, batch_size=ctx.m or 1, eta=ctx.eta, weight_decay=value)
        note = "decoupled: 1/(η·wd), with or without momentum"
    elif key == "sgd-alpha":
        ts = decay_timescale(optimizer="sgd", n=ctx.n, batch_size=1, eta=ctx.eta, weight_decay=value)
        note = "one example per step (m = 1): n steps per epoch"
    else:
        ts = _sgd_timescale(lmbda, ctx, mu)
        note = "under SGD at η" + ("" if mu is None else " with momentum") + (
            " (solver sgd; none under adam)" if key == "mlp-alpha" else "")
    out["tau_iter"] = ts.tau_iter
    out["tau_epoch"] = ts.tau_epoch if (ctx.m is not None or key == "sgd-alpha") else None
    out["timescale_note"] = note
    return out


def _transfer(lmbda: float, ctx: _Ctx, mu: float | None, *, to_batch_size, to_n, to_eta) -> dict:
    """λ at another (n, m, η) with the same τ_epoch: a' = 1/(τ_epoch·⌈n'/m'⌉), λ' = a'·n'·(1 − μ)/η'."""
    if ctx.n is None or ctx.m is None or ctx.eta is None:
        raise ConfigError("a transfer (to_batch_size, to_n, to_eta) needs n, batch_size and eta: "
                          "τ_epoch depends on all three.")
    if lmbda == 0:
        raise ConfigError("λ = 0 has no decay timescale (τ = inf), so there is nothing to keep: give a λ > 0.")
    n = ctx.n if to_n is None else V.integer("to_n", to_n, low=1)
    m = ctx.m if to_batch_size is None else V.integer("to_batch_size", to_batch_size, low=1)
    eta = ctx.eta if to_eta is None else V.number("to_eta", to_eta, low=0, strict=True)
    if m > n:
        raise ConfigError(f"batch_size {m} exceeds to_n = {n}; give to_batch_size too." if to_batch_size is None else
                          f"to_batch_size must be an integer between 1 and n = {n}; got {m}.")
    new = _Ctx(n=n, m=m, eta=eta, lr=ctx.lr)
    before = _sgd_timescale(lmbda, ctx, mu)
    steps = -(-new.n // new.m)
    rate = 1 / (before.tau_epoch * steps)
    new_lmbda = rate * new.n * (1 - (mu or 0.0)) / new.eta
    after = _sgd_timescale(new_lmbda, new, mu)
    rows = [_row(key, new_lmbda, new, mu) for key in CONVENTIONS]
    lr = _adam_rates(new)[1]
    adamw = rate / lr  # AdamW's own τ_iter = 1/(lr·wd) equal to this one
    lr_s = "η" if new.lr is None else f"lr = {_g(new.lr)}"
    note = (f"Keeping τ_epoch = {before.tau_epoch:.4g} epochs at n = {new.n}, batch size {new.m}, η = {_g(new.eta)}: "
            f"λ = {new_lmbda:.6g} (PyTorch SGD weight_decay = λ/n = {new_lmbda / new.n:.6g}; "
            f"AdamW at {lr_s} with the same τ: weight_decay = {adamw:.6g}), τ_iter = {after.tau_iter:.4g} steps.")
    return {
        "from": {"n": ctx.n, "batch_size": ctx.m, "eta": ctx.eta, "lmbda": lmbda, "tau_iter": before.tau_iter,
                 "steps_per_epoch": before.steps_per_epoch},
        "n": new.n, "batch_size": new.m, "eta": new.eta, "lmbda": new_lmbda, "tau_epoch": after.tau_epoch,
        "tau_iter": after.tau_iter, "steps_per_epoch": after.steps_per_epoch, "adamw_weight_decay": adamw,
        "rows": rows, "note": note,
    }
