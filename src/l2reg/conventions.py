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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

from . import validation as V
from .errors import ConfigError

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
            "l2reg train --lmbda {v}",
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
    ``caveat``, ``code``, ``missing`` (the inputs it would need).
    """

    source: str
    value: float
    lmbda: float
    inputs: dict
    rows: list
    notes: list = field(default_factory=list)

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


def convert(value, source: str = "nielsen", *, n=None, batch_size=None, eta=None, lr=None, to=None) -> Conversion:
    """Convert ``value`` given in convention ``source`` to every other convention.

    ``n`` is the training-set size, ``batch_size`` the mini-batch size m, ``eta`` the SGD
    learning rate η that λ goes with, ``lr`` the learning rate of a
    decoupled-decay optimizer (default η). ``to`` restricts the output to some
    conventions. An input that ``source`` or an explicitly requested target
    needs, if missing, is a :class:`ConfigError`; ``n`` is required whenever
    all conventions are requested. Other rows whose inputs are missing get
    ``value=None`` and list what they miss.
    """
    source = resolve(source)
    low_strict = source == "logistic-c"
    value = V.number("value", value, low=0, strict=low_strict)
    ctx = _Ctx(
        n=None if n is None else V.integer("n", n, low=1),
        m=None if batch_size is None else V.integer("batch_size", batch_size, low=1),
        eta=None if eta is None else V.number("eta", eta, low=0, strict=True),
        lr=None if lr is None else V.number("lr", lr, low=0, strict=True),
    )
    if ctx.n is not None and ctx.m is not None and ctx.m > ctx.n:
        raise ConfigError(f"batch_size must be an integer between 1 and n = {ctx.n}; got {ctx.m}.")
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

    rows = []
    for key in targets:
        conv = CONVENTIONS[key]
        missing = _missing(conv, ctx)
        row = {"key": key, "setting": conv.setting, "value": None, "equation": f"{_sym(conv)} = {conv.formula}",
               "caveat": conv.caveat, "code": "", "missing": [_INPUTS[x] for x in missing]}
        if not missing:
            v = float(conv.to_value(lmbda, ctx))
            row["value"] = v
            row["equation"] = _equation(_sym(conv), conv.formula, conv.numbers(lmbda, ctx), _g(v))
            eta_s = "η" if ctx.eta is None else _g(ctx.eta)
            lr_s = eta_s if ctx.lr is None else _g(ctx.lr)
            row["code"] = conv.code.format(v=_g(v), m=ctx.m, eta=eta_s, lr=lr_s)
        rows.append(row)

    notes = []
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
    inputs = {"n": ctx.n, "batch_size": ctx.m, "eta": ctx.eta, "lr": ctx.lr}
    return Conversion(source=source, value=value, lmbda=lmbda, inputs=inputs, rows=rows, notes=notes)


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
