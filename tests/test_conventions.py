"""λ conventions: each equivalence checked against the real library, not against our own formula.

scikit-learn is always installed; PyTorch, Keras and optax's AdamW are test extras
(``pip install -e ".[oracles]"``) and their tests are skipped when absent.
"""

import importlib
import json
import math
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from l2reg.fronts import conventions as C
from l2reg.core import engine, network, penalties
from l2reg.core import update as U
from stacks import fit_stack

from l2reg.cli import main
from l2reg.errors import ConfigError
from l2reg.core.network import NetworkSpec

E = importlib.import_module("l2reg.fronts.explaining")
T = importlib.import_module("l2reg.fronts.training")


def _to(lmbda, target, **kw):
    """The value of ``target`` for Nielsen λ (through the public API)."""
    return C.convert(lmbda, "nielsen", to=[target], **kw).rows[0]["value"]


def _lmbda(value, source, **kw):
    return C.convert(value, source, to=["nielsen"], **kw).lmbda


def _engine_step(spec, params, x, y, *, lmbda, n, eta):
    """One step of our engine (make_optimizer + _batch_loss) on one batch: new params, d, g."""
    K = network.n_models(params)
    col = lambda v: jnp.full((K, 1), v, params[0]["w"].dtype)  # noqa: E731
    hyper = {"eta": col(eta), "lmbda_over_n": col(lmbda / n)}
    opt = U.OptimizerSpec()
    optimizer = U.make_optimizer(opt, hyper)
    data_only = U.make_optimizer(U.OptimizerSpec(penalty="none"), hyper)
    w = jnp.ones((1, x.shape[0]), params[0]["w"].dtype)
    grads = jax.grad(engine.batch_loss)(params, x[None], y[None], w, spec, K)
    u, d, g, _ = engine.step_terms(optimizer, data_only, grads, optimizer.init(params), params)
    return optax.apply_updates(params, u), d, g, grads


def _as_stack(ws, bs):
    return network.stack([[{"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in zip(ws, bs)]])


# ---------------------------------------------------------------- the table itself

ALL = dict(n=500, batch_size=20, eta=0.3, lr=0.01)


@pytest.mark.parametrize("key", list(C.CONVENTIONS))
def test_every_convention_round_trips(key):
    value = _to(2.5, key, **ALL)
    assert _lmbda(value, key, **ALL) == pytest.approx(2.5, rel=1e-12)


def test_every_row_has_its_equation_and_caveat():
    r = C.convert(5.0, n=50_000, batch_size=10, eta=0.5, lr=0.001)
    assert [row["key"] for row in r.rows] == list(C.CONVENTIONS)
    by_key = {row["key"]: row for row in r.rows}
    assert by_key["keras-l2"]["equation"] == "l2 = λ/(2n) = 5/(2·50000) = 5e-05"
    assert by_key["mlp-alpha"]["equation"] == "alpha = λ·m/n = 5·10/50000 = 0.001"
    assert by_key["decoupled-adam"]["equation"] == "wd = η·λ/(n·lr) = 0.5·5/(50000·0.001) = 0.05"
    assert "No exact equivalent" in by_key["decoupled-adam"]["caveat"]
    assert "only" in by_key["decoupled-sgd"]["caveat"] or "momentum" in by_key["decoupled-sgd"]["caveat"]
    assert all(row["caveat"] and row["equation"] and row["value"] is not None for row in r.rows)
    assert "0.99995 per step" in r.notes[0]
    json.dumps(r.to_json())


def test_logistic_c_of_zero_lambda_is_no_penalty():
    assert _to(0.0, "logistic-c") == float("inf")


def test_optional_inputs_missing_leave_rows_empty():
    r = C.convert(5.0, n=1000)
    row = next(x for x in r.rows if x["key"] == "mlp-alpha")
    assert row["value"] is None and row["missing"] == ["batch_size m (the mini-batch size)"]
    assert next(x for x in r.rows if x["key"] == "decoupled-adam")["value"] == pytest.approx(5.0 / 1000)


@pytest.mark.parametrize(
    "args,kwargs,message",
    [
        ((5.0,), {}, "n (the training-set size) is missing: needed by most conventions"),
        ((1e-4, "coupled"), {"to": ["nielsen"]}, "n (the training-set size) is missing: needed to convert from coupled"),
        ((1e-3, "mlp-alpha"), {"n": 100}, "batch_size m (the mini-batch size) is missing: needed to convert from mlp-alpha"),
        ((5.0,), {"n": 100, "to": ["mlp-alpha"]}, "batch_size m (the mini-batch size) is missing: needed to convert to mlp-alpha"),
        ((5.0,), {"n": 100, "lr": 1e-3, "to": ["adamw"]}, "eta (the SGD learning rate η that λ goes with) is missing"),
        ((5.0,), {"n": 100, "batch_size": 200}, "batch_size must be an integer between 1 and n = 100; got 200."),
        ((5.0, "tensorflow"), {"n": 100}, "convention must be one of nielsen, coupled"),
        ((0.0, "logistic-c"), {}, "value must be a finite number > 0; got 0.0."),
        ((-1.0,), {"n": 100}, "value must be a finite number >= 0; got -1.0."),
        ((1.0,), {"n": 0}, "n must be an integer >= 1; got 0."),
        ((1.0,), {"n": 10, "eta": -1}, "eta must be a finite number > 0; got -1."),
    ],
)
def test_missing_or_bad_inputs_raise_clear_errors(args, kwargs, message):
    with pytest.raises(ConfigError) as info:
        C.convert(*args, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- scikit-learn


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _regression(n=40, d=4, t=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = X @ rng.normal(size=(d, t)) + 0.3 * rng.normal(size=(n, t)) + 1.5
    return X, Y


@pytest.mark.parametrize("alpha", [0.5, 7.0])
def test_ridge_alpha_is_our_lambda(x64, alpha):
    from sklearn.linear_model import Ridge

    X, Y = _regression()
    n = len(X)
    ridge = Ridge(alpha=alpha, solver="cholesky").fit(X, Y)
    lmbda = _lmbda(alpha, "ridge-alpha")
    spec = NetworkSpec((X.shape[1], Y.shape[1]), cost="quadratic", regression=True)
    # Our full-batch gradient of C = C0 + (λ/2n)·Σw² vanishes at Ridge's solution ...
    params = _as_stack([ridge.coef_.T], [ridge.intercept_])
    _, d, g, grads = _engine_step(spec, params, jnp.asarray(X), jnp.asarray(Y), lmbda=lmbda, n=n, eta=1.0)
    full = [-(dl["w"] + gl["w"]) for dl, gl in zip(d, g)] + [grads[0]["b"]]  # ∂C/∂w = −(d + g)/η, ∂C/∂b
    assert max(float(jnp.max(jnp.abs(a))) for a in full) < 1e-12
    # ... and full-batch gradient descent with our engine converges to it.
    r = fit_stack(spec, X, Y, groups=[np.arange(n)], group_seeds=[0], lmbda=np.array([lmbda]), eta=np.array([0.5]),
                    epochs=400, batch_size=n, monitor=())
    np.testing.assert_allclose(r.params[0]["w"][:, 0, :], ridge.coef_.T, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(r.params[0]["b"][0], ridge.intercept_, rtol=1e-9, atol=1e-10)
    # The conversion matters: α read as λ/n (the coupled coefficient) is another minimizer.
    wrong = _as_stack([Ridge(alpha=alpha / n, solver="cholesky").fit(X, Y).coef_.T], [ridge.intercept_])
    _, d, g, _ = _engine_step(spec, wrong, jnp.asarray(X), jnp.asarray(Y), lmbda=lmbda, n=n, eta=1.0)
    assert float(jnp.max(jnp.abs(d[0]["w"] + g[0]["w"]))) > 1e-3


def test_logistic_regression_c_is_one_over_lambda(x64):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 3))
    y = (X @ rng.normal(size=(3, 3))).argmax(1) + 0  # 3 classes
    C_value = _to(2.0, "logistic-c")
    lr = LogisticRegression(C=C_value, tol=1e-12, max_iter=10_000).fit(X, y)
    spec = NetworkSpec((3, 3), cost="log-likelihood")
    params = _as_stack([lr.coef_.T], [lr.intercept_])
    _, d, g, grads = _engine_step(spec, params, jnp.asarray(X), jnp.asarray(y, jnp.int32), lmbda=2.0, n=len(X), eta=1.0)
    assert float(jnp.max(jnp.abs(d[0]["w"] + g[0]["w"]))) < 1e-7
    assert float(jnp.max(jnp.abs(grads[0]["b"]))) < 1e-7


def test_mlp_classifier_sgd_step_matches_ours(x64):
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(2)
    n, m, eta, lmbda = 50, 10, 0.4, 3.0
    Xb = rng.normal(size=(m, 4))
    yb = np.array([0, 1, 2, 0, 1, 2, 2, 1, 0, 0])
    sizes = (4, 5, 3)
    ws = [rng.normal(size=(a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(size=b) for b in sizes[1:]]
    alpha = _to(lmbda, "mlp-alpha", n=n, batch_size=m)
    assert alpha == pytest.approx(lmbda * m / n)
    clf = MLPClassifier(hidden_layer_sizes=(5,), activation="logistic", solver="sgd", alpha=alpha, batch_size=m,
                        learning_rate="constant", learning_rate_init=eta, momentum=0.0, nesterovs_momentum=False,
                        shuffle=False, random_state=0)
    clf.partial_fit(Xb, yb, classes=[0, 1, 2])  # initializes (and takes a step we discard)
    clf.coefs_ = [w.copy() for w in ws]
    clf.intercepts_ = [b.copy() for b in bs]
    clf.partial_fit(Xb, yb)  # one sgd step from our weights

    spec = NetworkSpec(sizes, activation="sigmoid", cost="log-likelihood")
    new, *_ = _engine_step(spec, _as_stack(ws, bs), jnp.asarray(Xb), jnp.asarray(yb, jnp.int32),
                           lmbda=lmbda, n=n, eta=eta)
    for layer, w, b in zip(new, clf.coefs_, clf.intercepts_):
        np.testing.assert_allclose(layer["w"][:, 0], w, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(layer["b"][0], b, rtol=1e-12, atol=1e-13)
    # The lbfgs alpha (α = λ) would be a different, m/n times weaker step here.
    assert _to(lmbda, "mlp-alpha-lbfgs") == pytest.approx(alpha * n / m)


def test_sgd_regressor_step_matches_ours(x64):
    from sklearn.linear_model import SGDRegressor

    rng = np.random.default_rng(3)
    n, eta, lmbda = 30, 0.05, 4.0
    x, y = rng.normal(size=(1, 5)), rng.normal(size=1)
    w0, b0 = rng.normal(size=5), rng.normal(size=1)
    alpha = _to(lmbda, "sgd-alpha", n=n)
    sgd = SGDRegressor(loss="squared_error", penalty="l2", alpha=alpha, learning_rate="constant", eta0=eta,
                       max_iter=1, tol=None, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: one step is the point
        sgd.fit(x, y, coef_init=w0.copy(), intercept_init=b0.copy())  # sklearn updates these in place
    spec = NetworkSpec((5, 1), cost="quadratic", regression=True)
    new, *_ = _engine_step(spec, _as_stack([w0[:, None]], [b0]), jnp.asarray(x), jnp.asarray(y[:, None]),
                           lmbda=lmbda, n=n, eta=eta)
    np.testing.assert_allclose(new[0]["w"][:, 0, 0], sgd.coef_, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(new[0]["b"][0], sgd.intercept_, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------- optional: PyTorch, Keras, optax.adamw


def _weights_and_grad(seed=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(6, 3)), rng.normal(size=(6, 3))


def _our_terms(w, grad, *, lmbda, n, eta):
    """Our engine's decay term d and full update for weight ``w`` with mean data gradient ``grad``."""
    params = [{"w": jnp.asarray(w)[:, None, :], "b": jnp.zeros((1, 3))}]
    grads = [{"w": jnp.asarray(grad)[:, None, :], "b": jnp.zeros((1, 3))}]
    hyper = {"eta": jnp.full((1, 1), eta), "lmbda_over_n": jnp.full((1, 1), lmbda / n)}
    optimizer = U.make_optimizer(U.OptimizerSpec(), hyper)
    data_only = U.make_optimizer(U.OptimizerSpec(penalty="none"), hyper)
    u, d, g, _ = engine.step_terms(optimizer, data_only, grads, optimizer.init(params), params)
    return np.asarray(d[0]["w"][:, 0]), np.asarray(w + u[0]["w"][:, 0])


def _torch_step(opt_cls, w, grad, **kw):
    torch = pytest.importorskip("torch")
    p = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    opt = opt_cls(torch, [p], **kw)
    p.grad = torch.tensor(grad, dtype=torch.float64)
    opt.step()
    return p.detach().numpy()


def test_torch_sgd_weight_decay_is_coupled_lambda_over_n(x64):
    w, grad = _weights_and_grad()
    n, eta, lmbda = 200, 0.3, 5.0
    wd = _to(lmbda, "coupled", n=n)
    got = _torch_step(lambda t, p, **kw: t.optim.SGD(p, **kw), w, grad, lr=eta, weight_decay=wd)
    _, want = _our_terms(w, grad, lmbda=lmbda, n=n, eta=eta)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


def test_torch_adamw_decay_matches_ours_at_the_learning_rate(x64):
    w, grad = _weights_and_grad()
    n, eta, lr, lmbda = 200, 0.3, 0.002, 5.0
    wd = _to(lmbda, "decoupled-adam", n=n, eta=eta, lr=lr)
    adamw = lambda t, p, **kw: t.optim.AdamW(p, **kw)  # noqa: E731
    with_decay = _torch_step(adamw, w, grad, lr=lr, weight_decay=wd)
    without = _torch_step(adamw, w, grad, lr=lr, weight_decay=0.0)
    d, _ = _our_terms(w, grad, lmbda=lmbda, n=n, eta=eta)
    # AdamW's decay part, −lr·wd·w, equals our SGD decay term −(ηλ/n)·w at this lr.
    np.testing.assert_allclose(with_decay - without, d, rtol=1e-9, atol=1e-15)


def test_torch_adam_weight_decay_is_coupled_not_decoupled(x64):
    w, grad = _weights_and_grad()
    wd, lr = _to(5.0, "coupled", n=200), 0.01
    coupled = _torch_step(lambda t, p, **kw: t.optim.Adam(p, **kw), w, grad, lr=lr, weight_decay=wd)
    chain = optax.chain(optax.add_decayed_weights(wd), optax.adam(lr))
    upd, _ = chain.update(jnp.asarray(grad), chain.init(jnp.asarray(w)), jnp.asarray(w))
    np.testing.assert_allclose(coupled, w + np.asarray(upd), rtol=1e-12, atol=1e-14)
    decoupled = _torch_step(lambda t, p, **kw: t.optim.AdamW(p, **kw), w, grad, lr=lr, weight_decay=wd)
    assert np.max(np.abs(coupled - decoupled)) > 1e-6  # why decoupled-adam has no exact equivalent


def test_optax_adamw_decay_matches_ours_at_the_learning_rate(x64):
    w, grad = _weights_and_grad()
    n, eta, lr, lmbda = 200, 0.3, 0.002, 5.0
    wd = _to(lmbda, "decoupled-adam", n=n, eta=eta, lr=lr)

    def step(weight_decay):
        opt = optax.adamw(lr, weight_decay=weight_decay)
        upd, _ = opt.update(jnp.asarray(grad), opt.init(jnp.asarray(w)), jnp.asarray(w))
        return np.asarray(upd)

    d, _ = _our_terms(w, grad, lmbda=lmbda, n=n, eta=eta)
    np.testing.assert_allclose(step(wd) - step(0.0), d, rtol=1e-9, atol=1e-15)


def test_keras_l2_gradient_matches_our_penalty(x64):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("keras was imported with another backend")
    w, _ = _weights_and_grad()
    n, lmbda = 200, 5.0
    reg = keras.regularizers.L2(_to(lmbda, "keras-l2", n=n))
    stack = [{"w": jnp.asarray(w)[:, None, :], "b": jnp.zeros((1, 3))}]
    ours = jax.grad(lambda p: penalties.l2_cost(p, lmbda, n)[0])(stack)[0]["w"][:, 0]
    theirs = jax.grad(lambda v: reg(v))(jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(theirs), np.asarray(ours), rtol=1e-6)
    assert float(reg(jnp.asarray(w))) == pytest.approx(float(penalties.l2_cost(stack, lmbda, n)[0]), rel=1e-6)


# ---------------------------------------------------------------- the command line


def test_cli_convert_prints_every_convention(capsys):
    assert main(["convert", "5", "--n", "50000", "--batch-size", "10", "--eta", "0.5"]) == 0
    text = capsys.readouterr().out
    for key in C.CONVENTIONS:
        assert key in text
    assert "5e-05" in text and "caveats" in text


def test_cli_convert_json(capsys):
    assert main(["convert", "0.0001", "--from", "coupled", "--n", "50000", "--to", "keras-l2,ridge", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lmbda"] == pytest.approx(5.0)
    assert [(r["key"], r["value"]) for r in out["rows"]] == [("keras-l2", pytest.approx(5e-5)), ("ridge-alpha", 5.0)]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["convert", "5"], "n (the training-set size) is missing"),
        (["convert", "0.001", "--from", "mlp-alpha", "--n", "100"], "batch_size m (the mini-batch size) is missing"),
        (["convert", "5", "--from", "foo", "--n", "3"], "convention must be one of"),
        (["convert", "abc"], "'value'"),
    ],
)
def test_cli_convert_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_from_adamw_eta_defaults_to_lr():
    """An AdamW user has no SGD η: τ = 1/(lr·wd) needs none, so η = lr (the SGD with the same shrink)."""
    r = C.convert(0.01, "adamw", lr=1e-3, batch_size=100, n=50_000)
    assert r.lmbda == pytest.approx(500.0) and r.inputs["eta"] == 1e-3
    assert any("η = lr = 0.001 assumed" in note for note in r.notes)
    by_key = {row["key"]: row for row in r.rows}
    assert by_key["nielsen"]["code"] == "l2reg train --lmbda 500 --eta 0.001 --batch-size 100"
    assert by_key["nielsen"]["code_assumes"] == "n = 50000 training examples"
    # τ = 1/(lr·wd) = 1e5 steps, rounded (not 99999.99999999999), the same in every SGD-like row
    assert by_key["decoupled-adam"]["tau_iter"] == 100000.0 and by_key["nielsen"]["tau_iter"] == 100000.0
    assert by_key["decoupled-adam"]["tau_epoch"] == 200.0
    assert r.timescale["tau_iter"] == 100000.0


def test_every_code_line_is_complete():
    """No placeholder left (η, lr, m); where an input is missing the code is withheld and the input named."""
    full = C.convert(5.0, n=50_000, batch_size=10, eta=0.5, lr=0.001)
    for row in full.rows:
        assert row["code"] and "{" not in row["code"] and "η" not in row["code"] and row["code_needs"] == []
    assert "AdamW(params, lr=0.001, weight_decay=0.05)" in next(r["code"] for r in full.rows if r["key"] == "decoupled-adam")
    part = {row["key"]: row for row in C.convert(5.0, n=50_000).rows}
    assert part["nielsen"]["code"] == "" and part["nielsen"]["code_needs"] == ["eta", "batch_size"]
    assert part["ridge-alpha"]["code"] == "sklearn.linear_model.Ridge(alpha=5)"


def test_cli_convert_for_an_adamw_user_prints_unwrapped_code(capsys, monkeypatch):
    import io

    from rich.console import Console

    import l2reg.cli as cli

    buf = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buf, width=80, highlight=False))
    assert main(["convert", "0.01", "--from", "adamw", "--lr", "1e-3", "--batch-size", "100", "--n", "50000"]) == 0
    lines = buf.getvalue().splitlines()
    r = C.convert(0.01, "adamw", lr=1e-3, batch_size=100, n=50_000)
    for row in r.rows:  # every code line whole on its own line, though longer than the 80-column terminal
        for code in row["code"].splitlines():
            assert code in lines
    assert any(len(line) > 80 for line in lines)
    assert "l2reg train --lmbda 500 --eta 0.001 --batch-size 100" in lines
    assert "99999.9" not in buf.getvalue()


@pytest.mark.parametrize("argv", [["convert", "-5"], ["convert", "-5", "--n", "100"], ["convert", "--n", "100", "-0.5"]])
def test_cli_convert_refuses_negative_values_in_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: value must be a finite number >= 0; got -") and err.count("\n") == 1


def test_cli_convert_help_lists_the_aliases(capsys):
    from typer.testing import CliRunner

    import l2reg.cli as cli

    text = " ".join(CliRunner().invoke(cli.app, ["convert", "--help"], terminal_width=200).output.split())
    for alias in C.ALIASES:
        assert alias in text
    assert "decoupled-adam (adamw)" in text


# ---------------------------------------------------------------- decay timescales (Wang & Aitchison, ICML 2025)


@pytest.mark.parametrize("kw,tau_iter", [
    (dict(optimizer="sgd", lmbda=5.0), 1000 / (0.5 * 5.0)),                      # n/(ηλ)
    (dict(optimizer="sgd", weight_decay=0.005), 1 / (0.5 * 0.005)),              # PyTorch SGD weight_decay = λ/n
    (dict(optimizer="momentum", lmbda=5.0, momentum=0.9), 0.1 * 1000 / (0.5 * 5.0)),  # (1 − μ)·n/(ηλ)
    (dict(optimizer="nesterov", lmbda=5.0, momentum=0.5), 0.5 * 1000 / (0.5 * 5.0)),
    (dict(optimizer="adamw", weight_decay=0.01), 1 / (0.5 * 0.01)),              # 1/(η·wd)
    (dict(optimizer="adamw", weight_decay=0.01, decay_scaling="schedule"), 1 / 0.01),  # the paper's form: 1/wd
    (dict(optimizer="adam", lmbda=0.0), math.inf),
    (dict(optimizer="sgd"), math.inf),
])
def test_decay_timescale_closed_forms(kw, tau_iter):
    ts = C.decay_timescale(n=1000, batch_size=32, eta=0.5, **kw)
    assert ts.tau_iter == pytest.approx(tau_iter, rel=1e-12)
    assert ts.steps_per_epoch == 32  # ⌈1000/32⌉
    assert ts.tau_epoch == pytest.approx(tau_iter / 32, rel=1e-12)
    assert ts.per_step == pytest.approx(1 - 1 / tau_iter, rel=1e-12)


def test_coupled_adam_has_no_timescale():
    ts = C.decay_timescale(optimizer="adam", n=1000, batch_size=32, eta=1e-3, lmbda=5.0)
    assert ts.tau_iter is None and ts.tau_epoch is None and "no fixed timescale" in ts.note
    assert C.decay_timescale(optimizer="adamw", n=1000, batch_size=32, eta=1e-3, lmbda=5.0,
                             weight_decay=0.1).note.startswith("the coupled λ goes through Adam's moments")


def _decay_only(opt_cls, steps, **kw):
    """|w| after ``steps`` real optimizer steps with a zero data gradient, from |w| = 1."""
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = opt_cls(torch)([p], **kw)
    out = []
    for _ in range(steps):
        p.grad = torch.zeros_like(p)
        opt.step()
        out.append(float(p.detach()))
    return np.array(out)


@pytest.mark.parametrize("name,opt_cls,kw,timescale", [
    ("sgd", lambda t: t.optim.SGD, dict(lr=0.5, weight_decay=0.002), dict(optimizer="sgd", weight_decay=0.002)),
    ("adamw", lambda t: t.optim.AdamW, dict(lr=0.01, weight_decay=0.1), dict(optimizer="adamw", weight_decay=0.1)),
])
def test_tau_iter_is_the_e_folding_time_of_the_real_optimizer(name, opt_cls, kw, timescale):
    ts = C.decay_timescale(n=100, batch_size=10, eta=kw["lr"], **timescale)
    w = _decay_only(opt_cls, int(round(ts.tau_iter)), **kw)
    assert w[-1] == pytest.approx(ts.per_step ** len(w), rel=1e-9)
    assert w[-1] == pytest.approx(math.exp(-1), rel=1e-3)  # (1 − 1/τ)^τ ≈ e^−1


@pytest.mark.parametrize("mu", [0.5, 0.9])
def test_momentum_long_run_rate_is_that_of_the_real_optimizer(mu):
    # The slow mode of v ← μv + c·w, w ← w − ηv shrinks w by a = ηc/(1 − μ)·(1 + O(ηc/(1 − μ)²)) per step.
    eta, c = 0.1, 1e-4
    w = _decay_only(lambda t: t.optim.SGD, 3000, lr=eta, momentum=mu, weight_decay=c)
    ts = C.decay_timescale(optimizer="momentum", n=100, batch_size=10, eta=eta, weight_decay=c, momentum=mu)
    assert 1 - w[-1] / w[-2] == pytest.approx(ts.decay_per_step, rel=2e-3)


@pytest.mark.parametrize("kw,epochs,expected", [
    (dict(lmbda=500.0), None, ["τ_epoch = 0.16 < 1: the weights forget everything within an epoch"]),
    (dict(lmbda=0.5), 30, ["τ_epoch = 160 exceeds the run's 30 epochs"]),
    (dict(lmbda=5.0), 30, []),
    (dict(lmbda=0.0), 30, []),
    (dict(lmbda=2500.0), None, ["multiplies w by -0.25 per step (≤ 0): it overshoots zero",
                                "τ_epoch = 0.032 < 1"]),
])
def test_timescale_warnings(kw, epochs, expected):
    ts = C.decay_timescale(optimizer="sgd", n=1000, batch_size=40, eta=0.5, **kw)  # τ_iter = 2000/λ, 25 steps/epoch
    warnings = ts.warnings(epochs)
    assert len(warnings) == len(expected)
    for w, e in zip(warnings, expected):
        assert e in w


def test_convert_rows_carry_their_timescales():
    r = C.convert(5.0, n=50_000, batch_size=10, eta=0.5, lr=0.001, epochs=2)
    by_key = {row["key"]: row for row in r.rows}
    for key in ("nielsen", "coupled", "keras-l2", "mlp-alpha", "decoupled-sgd", "decoupled-adam"):
        assert by_key[key]["tau_iter"] == pytest.approx(50_000 / (0.5 * 5.0))
        assert by_key[key]["tau_epoch"] == pytest.approx(50_000 / (0.5 * 5.0) / 5000)
    assert by_key["sgd-alpha"]["tau_epoch"] == pytest.approx(by_key["sgd-alpha"]["tau_iter"] / 50_000)  # m = 1
    for key in ("ridge-alpha", "logistic-c", "mlp-alpha-lbfgs"):
        assert by_key[key]["tau_iter"] is None and "full-batch" in by_key[key]["timescale_note"]
    assert r.timescale["tau_epoch"] == pytest.approx(4.0)
    assert r.warnings == [w for w in r.warnings if "exceeds the run's 2 epochs" in w] and len(r.warnings) == 1
    assert any("τ_epoch = τ_iter/5000 = 4 epochs" in note for note in r.notes)
    json.dumps(r.to_json())


def test_convert_with_momentum_shortens_the_coupled_timescales_only():
    r = C.convert(5.0, n=50_000, batch_size=10, eta=0.5, momentum=0.9)
    by_key = {row["key"]: row for row in r.rows}
    assert by_key["coupled"]["tau_iter"] == pytest.approx(0.1 * 20_000)
    assert by_key["decoupled-sgd"]["tau_iter"] == pytest.approx(20_000)  # decoupled: outside the velocity


@pytest.mark.parametrize("transfer", [
    dict(to_batch_size=100), dict(to_n=12_345), dict(to_eta=0.05), dict(to_n=200_000, to_batch_size=256),
    dict(to_batch_size=7, to_eta=2.0),
])
@pytest.mark.parametrize("momentum", [None, 0.9])
def test_transfer_keeps_tau_epoch(transfer, momentum):
    r = C.convert(5.0, n=50_000, batch_size=10, eta=0.5, momentum=momentum, **transfer)
    t = r.transfer
    assert t["tau_epoch"] == pytest.approx(r.timescale["tau_epoch"], rel=1e-12)
    # ... and the new λ in every convention has that τ_epoch under its own n, m and η.
    again = C.convert(t["lmbda"], n=t["n"], batch_size=t["batch_size"], eta=t["eta"], momentum=momentum)
    assert again.timescale["tau_epoch"] == pytest.approx(r.timescale["tau_epoch"], rel=1e-12)
    adamw = C.decay_timescale(optimizer="adamw", n=t["n"], batch_size=t["batch_size"], eta=t["eta"],
                              weight_decay=t["adamw_weight_decay"])  # lr = η here
    assert adamw.tau_epoch == pytest.approx(r.timescale["tau_epoch"], rel=1e-12)


def test_transfer_closed_forms():
    # m → 10·m at fixed n, η: ten times fewer steps per epoch, so λ (and wd = λ/n) ten times larger.
    assert C.convert(5.0, n=50_000, batch_size=10, eta=0.5, to_batch_size=100).transfer["lmbda"] == pytest.approx(50.0)
    # n → 2n at fixed m, η: λ/n per step halves, but Nielsen's λ stays (the paper: wd ∝ 1/n for AdamW).
    t = C.convert(0.1, "decoupled-adam", n=50_000, batch_size=10, eta=1e-3, lr=1e-3, to_n=100_000).transfer
    assert t["lmbda"] == pytest.approx(C.convert(0.1, "decoupled-adam", n=50_000, eta=1e-3, lr=1e-3).lmbda)
    assert next(row for row in t["rows"] if row["key"] == "decoupled-adam")["value"] == pytest.approx(0.05)
    assert t["adamw_weight_decay"] == pytest.approx(0.05)


@pytest.mark.parametrize("kwargs,message", [
    (dict(n=1000, eta=0.5, to_batch_size=100), "a transfer (to_batch_size, to_n, to_eta) needs n, batch_size and eta"),
    (dict(n=1000, batch_size=10, eta=0.5, to_n=5), "batch_size 10 exceeds to_n = 5; give to_batch_size too."),
    (dict(n=1000, batch_size=10, eta=0.5, to_batch_size=0), "to_batch_size must be an integer >= 1; got 0."),
    (dict(n=1000, batch_size=10, eta=0.5, to_batch_size=2000), "to_batch_size must be an integer between 1 and n = 1000"),
    (dict(n=1000, batch_size=10, eta=0.5, to_eta=-1.0), "to_eta must be a finite number > 0; got -1.0."),
    (dict(n=1000, batch_size=10, eta=0.5, momentum=1.0), "momentum must be a finite number in [0, 1); got 1.0."),
    (dict(n=1000, batch_size=10, eta=0.5, epochs=0), "epochs must be an integer >= 1; got 0."),
])
def test_transfer_and_timescale_errors(kwargs, message):
    with pytest.raises(ConfigError) as info:
        C.convert(5.0, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_transfer_of_no_decay_is_refused():
    with pytest.raises(ConfigError, match="λ = 0 has no decay timescale"):
        C.convert(0.0, n=1000, batch_size=10, eta=0.5, to_batch_size=100)


@pytest.mark.parametrize("kwargs,message", [
    (dict(optimizer="rmsprop"), "optimizer must be one of sgd, momentum, nesterov, adam, adamw; got 'rmsprop'."),
    (dict(optimizer="momentum"), "momentum is missing: needed for optimizer 'momentum'."),
    (dict(batch_size=2000), "batch_size must be an integer between 1 and 1000; got 2000."),
    (dict(lmbda=-1.0), "lmbda must be a finite number >= 0; got -1.0."),
    (dict(decay_scaling="cosine"), "decay_scaling must be one of lr, schedule; got 'cosine'."),
])
def test_decay_timescale_errors(kwargs, message):
    args = dict(n=1000, batch_size=10, eta=0.5) | kwargs
    with pytest.raises(ConfigError) as info:
        C.decay_timescale(**args)
    assert str(info.value) == message
