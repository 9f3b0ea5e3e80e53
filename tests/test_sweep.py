"""The regularization path: folds, selection, the vectorized λ × fold run, the API and the CLI."""

import importlib
import json
import math
import os
import re
import signal

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2reg.core import engine, network
from stacks import cross_validate, fit_stack

from l2reg.cli import main
from l2reg.data import Dataset, load_dataset
from l2reg.errors import ConfigError, ConfigTypeError, DataError
from l2reg.core.network import NetworkSpec
from l2reg.options import parse_grid
from l2reg.present.save import save  # noqa: E402

from jax_cache import compilation_cache  # noqa: F401  (a fixture)

S = importlib.import_module("l2reg.fronts.sweeping")
CV = importlib.import_module("l2reg.fronts.cv")
T = importlib.import_module("l2reg.fronts.training")

pytestmark = pytest.mark.usefixtures("compilation_cache")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def small_sweep():
    """One small sweep shared by the tests that only read its result."""
    return S.sweep(train_size=150, epochs=3, lmbda=[0.0, 0.1, 1.0, 10.0], folds=3, select="1se", seed=1)


# ---------------------------------------------------------------- folds


@pytest.mark.parametrize("n,k,seed", [(60, 2, 0), (150, 5, 3), (97, 3, 1), (300, 10, 7)])
def test_folds_partition_the_training_set_and_are_stratified(digits, n, k, seed):
    y = digits.y_train[:n]
    folds = CV.make_folds(y, k, seed, classification=True)
    assert len(folds) == k
    held = np.concatenate([va for _, va in folds])
    assert sorted(held) == list(range(n))  # every example validates exactly once
    for tr, va in folds:
        assert not set(tr) & set(va)
        assert len(tr) + len(va) == n
        # stratified: each class's share of the fold is within one example of its share overall
        for c in np.unique(y):
            assert abs(np.sum(y[va] == c) - np.sum(y == c) * len(va) / n) < 1 + 1e-9


def test_no_validation_example_reaches_its_folds_training(monkeypatch, digits):
    """Spy on the engine: each model's training group and its validation mask never overlap."""
    seen = {}
    real = engine.fit_stack

    def spy(spec, X, Y, opts, **kw):
        seen.update(kw)
        return real(spec, X, Y, opts, **kw)

    monkeypatch.setattr(S, "fit_stack", spy)  # the sweep front trains its blocks with it
    X, y = digits.X_train[:90], digits.y_train[:90]
    lmbdas = [0.0, 1.0]
    folds = CV.make_folds(y, 3, 0, True)
    cross_validate(NetworkSpec((64, 5, 10)), X, y, lmbdas, folds, group_seeds=[0, 1, 2], eta=0.5, epochs=1,
                     batch_size=10, monitor=())
    rows = seen["eval_sets"]["validation"][2]  # each group's held-out rows (its fold)
    assert isinstance(rows, network.Rows) and len(seen["groups"]) == len(folds)
    for g, group in enumerate(seen["groups"]):
        held = np.asarray(rows.idx[g])[np.asarray(rows.valid[g])]
        assert set(held) == set(folds[g][1])  # the models of fold g are scored on its held-out rows only
        assert not set(group) & set(held)  # and none of them trained on those rows


# ---------------------------------------------------------------- selection

SELECT_CASES = [
    # mean, se, min, 1se
    ([0.90, 0.92, 0.93, 0.925, 0.80], [0.01, 0.01, 0.01, 0.01, 0.02], 2, 3),
    ([0.90, 0.93, 0.93, 0.80], [0.01, 0.0, 0.0, 0.01], 2, 2),  # tie: the larger λ
    ([0.95, 0.90, 0.85], [0.02, 0.01, 0.01], 0, 0),
    ([0.90, float("nan"), 0.95, 0.949], [0.01, 0.01, 0.0, 0.0], 2, 2),  # NaN (diverged) never wins
    ([0.5, 0.6, 0.7], [float("nan"), 0.1, 0.2], 2, 2),
]


@pytest.mark.parametrize("mean,se,want_min,want_1se", SELECT_CASES)
def test_select_min_and_1se(mean, se, want_min, want_1se):
    assert CV.select_lmbda(mean, se, "min") == want_min
    assert CV.select_lmbda(mean, se, "1se") == want_1se


def test_select_for_costs_takes_the_lowest():
    assert CV.select_lmbda([0.5, 0.3, 0.31, 0.6], [0.02] * 4, "min", higher_is_better=False) == 1
    assert CV.select_lmbda([0.5, 0.3, 0.31, 0.6], [0.02] * 4, "1se", higher_is_better=False) == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 0.2)), min_size=1, max_size=20))
def test_1se_never_picks_a_smaller_lmbda_than_min(pairs):
    mean, se = zip(*pairs)
    assert CV.select_lmbda(mean, se, "1se") >= CV.select_lmbda(mean, se, "min")


def test_1se_picks_at_least_mins_lmbda_on_a_real_sweep(small_sweep):
    r = small_sweep
    assert r.chosen_index >= r.min_index
    assert r.chosen_lmbda >= r.rows[r.min_index]["lmbda"]


# ---------------------------------------------------------------- the vectorized run


def test_vectorized_lmbda_by_fold_run_equals_separate_runs(digits):
    """All λ × folds in one fit_stack equal one fit_stack per fold on that fold's training set alone."""
    # 9 images per class: every fold trains on 60, so the separate runs share one compiled shape
    idx = np.concatenate([np.flatnonzero(digits.y_train == c)[:9] for c in range(10)])
    X, y = digits.X_train[idx], digits.y_train[idx]
    spec = NetworkSpec((64, 6, 10))
    lmbdas = [0.0, 0.5, 5.0]
    folds = CV.make_folds(y, 3, 2, True)
    assert {len(tr) for tr, _ in folds} == {60}
    seeds = CV.fold_seeds(2, 3)
    kw = dict(eta=0.5, epochs=3, batch_size=7)
    cv = cross_validate(spec, X, y, lmbdas, folds, group_seeds=seeds, monitor=("evaluation_accuracy",), **kw)
    L = len(lmbdas)
    for g, (tr, va) in enumerate(folds):
        one = fit_stack(spec, X, y, groups=[tr], group_seeds=[seeds[g]], lmbda=np.array(lmbdas),
                          eta=np.full(L, kw["eta"]), epochs=kw["epochs"], batch_size=kw["batch_size"], monitor=())
        for layer_cv, layer_one in zip(cv.params, one.params):
            np.testing.assert_allclose(layer_cv["w"][:, g * L : (g + 1) * L], layer_one["w"], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(layer_cv["b"][g * L : (g + 1) * L], layer_one["b"], rtol=1e-4, atol=1e-5)
        c0, acc = S.evaluate_stack(spec, one.params, {"v": (X[va], y[va], None)})["v"]
        np.testing.assert_allclose(cv.final["validation_accuracy"][:, g], acc, atol=1e-6)
        np.testing.assert_allclose(cv.final["validation_cost"][:, g], c0, rtol=1e-4)
    # the monitored last epoch and the direct evaluation agree
    np.testing.assert_allclose(cv.history["validation_accuracy"][-1], cv.final["validation_accuracy"], atol=1e-6)


# ---------------------------------------------------------------- the API


def test_sweep_result_rows_and_refit(small_sweep):
    r = small_sweep
    assert r.lmbdas == [0.0, 0.1, 1.0, 10.0]
    assert r.config["models_cv"] == 12 and r.config["n_fold"] == [100, 100, 100]
    for row in r.rows:
        for key in ("lmbda", "cv_accuracy_mean", "cv_accuracy_se", "training_accuracy", "test_accuracy"):
            assert row[key] is not None and math.isfinite(row[key])
        assert row["refit"] == (row["lmbda"] in r.refit_lmbdas)
    assert [row["chosen"] for row in r.rows].count(True) == 1
    # the baseline (λ = 0), the chosen λ and its neighbours are refit on all n
    assert 0.0 in r.refit_lmbdas and r.chosen_lmbda in r.refit_lmbdas
    assert r.refit_history["test_accuracy"].shape == (3, len(r.refit_lmbdas))
    se = np.std(r.cv.final["validation_accuracy"][1], ddof=1) / math.sqrt(3)
    assert r.rows[1]["cv_accuracy_se"] == pytest.approx(se)
    assert "test set was used only" in r.to_json()["test_set_use"]


def test_default_grid_runs_from_lmbda_zero_to_underfitting():
    grid = CV.default_grid(300)
    assert grid[0] == 0.0 and len(grid) == 1 + CV.DEFAULT_GRID_SIZE
    assert grid[1] == pytest.approx(1e-5 * 300, rel=0.05) and grid[-1] == pytest.approx(3e-2 * 300, rel=0.05)
    assert grid == sorted(grid)


@pytest.mark.parametrize("text,want", [("0.1:10:3", [0.0, 0.1, 1.0, 10.0]), ("2:2:1", [0.0, 2.0])])
def test_lmbda_grid_is_zero_plus_log_spaced_values(text, want):
    assert list(parse_grid(text)) == pytest.approx(want)


def test_grid_is_sorted_and_deduplicated():
    assert CV.check_grid([1.0, 0.0, 1.0, 0.5]) == [0.0, 0.5, 1.0]


def _dataset(n=60, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.normal(size=(n, 4)).astype(np.float32) + y[:, None]
    return Dataset("toy", X, y.astype(np.int32), None, None, X[:20], y[:20].astype(np.int32), classes)


BAD = [
    (dict(lmbda=[]), ConfigError, "lmbda must not be empty."),
    (dict(lmbda=[0.0, -1.0]), ConfigError, "lmbda must be a finite number >= 0; got -1.0."),
    (dict(lmbda=[0.0, float("nan")]), ConfigError, "lmbda must be a finite number >= 0; got nan."),
    (dict(lmbda=[0.0, float("inf")]), ConfigError, "lmbda must be a finite number >= 0; got inf."),
    (dict(lmbda="0,1"), ConfigTypeError, "lmbda must be a number or a list of numbers"),
    (dict(lmbda_grid="1:0.1:5"), ConfigError, "lmbda_grid must be LO:HI:K with 0 < LO <= HI"),
    (dict(lmbda_grid="0:1:5"), ConfigError, "lmbda_grid must be LO:HI:K"),
    (dict(lmbda_grid="0.1:1"), ConfigError, "lmbda_grid must be LO:HI:K"),
    (dict(lmbda_grid="0.1:1:0"), ConfigError, "lmbda_grid must be LO:HI:K"),
    (dict(lmbda_grid="a:b:c"), ConfigError, "lmbda_grid must be LO:HI:K"),
    (dict(lmbda=[0.0], lmbda_grid="0.1:1:2"), ConfigError, "give lmbda or lmbda_grid, not both."),
    (dict(folds=1), ConfigError, "folds must be an integer >= 2; got 1."),
    (dict(folds=21), ConfigError, "folds must be an integer between 2 and 20 (class 0, the smallest, has 20"),
    (dict(folds=2.5), ConfigTypeError, "folds must be an integer >= 2"),
    (dict(select="best"), ConfigError, "select must be one of min, 1se; got 'best'."),
    (dict(batch_size=41), ConfigError, "batch_size must be an integer between 1 and 40 (the smallest fold"),
    (dict(eta=0.0), ConfigError, "eta must be a finite number > 0"),
    (dict(seed=-1), ConfigError, "seed must be an integer >= 0"),
]


@pytest.mark.parametrize("kwargs,exc,message", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_sweeps_get_clear_errors(kwargs, exc, message):
    opts = dict(epochs=1, folds=3, lmbda=[0.0, 1.0])
    opts.update(kwargs)
    if "lmbda_grid" in kwargs and "lmbda" not in kwargs:
        opts.pop("lmbda")
    with pytest.raises(exc) as e:
        S.sweep(_dataset(), **opts)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_class_with_one_example_cannot_be_stratified():
    d = _dataset()
    y = d.y_train.copy()
    y[0] = 3  # class 3 has a single training example
    d = Dataset("toy", d.X_train, y, None, None, d.X_test, d.y_test, 4)
    with pytest.raises(ConfigError, match="class 3 has only 1 training example"):
        S.sweep(d, epochs=1, folds=2, lmbda=[0.0])


def test_a_dataset_without_test_split_is_refused():
    d = _dataset()
    d = Dataset("toy", d.X_train, d.y_train, None, None, None, None, 3)
    with pytest.raises(DataError, match="no test split"):
        S.sweep(d, epochs=1, folds=2, lmbda=[0.0])


def test_regression_sweep_selects_by_lowest_cost(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=80)).astype(np.float32)
    path = tmp_path / "reg.npz"
    np.savez(path, X=X[:60], y=y[:60], X_test=X[60:], y_test=y[60:])
    r = S.sweep(str(path), cost="quadratic", eta=0.05, epochs=3, folds=3, lmbda=[0.0, 1.0, 100.0])
    costs = [row["cv_cost_mean"] for row in r.rows]
    assert r.chosen_index == int(np.argmin(costs))
    assert r.rows[0]["cv_accuracy_mean"] is None and r.rows[0]["test_cost"] > 0
    save(r, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["chosen_lmbda"] == r.chosen_lmbda


# ---------------------------------------------------------------- the CLI


def test_cli_sweep_writes_json_report_and_params(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "--train-size", "120", "--epochs", "2", "--folds", "3", "--lmbdas", "0,1,10", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "CV acc" in text and "test set was used only" in text and "▶min" in text
    meta = json.loads((out / "sweep.json").read_text())
    assert [r["lmbda"] for r in meta["rows"]] == [0.0, 1.0, 10.0]
    for key in ("lmbda", "cv_accuracy_mean", "cv_accuracy_se", "training_accuracy", "test_accuracy"):
        assert key in meta["rows"][0]
    assert meta["chosen_lmbda"] in (0.0, 1.0, 10.0)
    assert len(meta["histories"]) == 3 and len(meta["histories"][0]["folds"]) == 3
    assert len(meta["histories"][0]["folds"][0]["validation_accuracy"]) == 2
    assert (out / "report.html").stat().st_size > 10_000
    with np.load(out / "params.npz", allow_pickle=False) as z:
        assert z["w0"].shape[1:] == (64, 30)
    assert main(argv) == 2  # a second run into the same folder is refused
    assert "already holds a run (sweep.json)" in capsys.readouterr().err


CLI_BAD = [
    (["--lmbdas", ""], "--lmbda must be a comma-separated list of numbers"),
    (["--lmbdas", "0,-1"], "lmbda must be a finite number >= 0; got -1.0."),
    (["--lmbdas", "0,nan"], "lmbda must be a finite number >= 0; got nan."),
    (["--lmbdas", "0,x"], "--lmbda must be a comma-separated list of numbers"),
    (["--lmbda-grid", "1:2"], "lmbda_grid must be LO:HI:K"),
    (["--lmbda-grid", "0.1:1:3", "--lmbdas", "0,1"], "give lmbda or lmbda_grid, not both."),
    (["--folds", "1"], "folds must be an integer >= 2; got 1."),
    (["--folds", "50"], "folds must be an integer between 2 and"),
    (["--select", "max"], "select must be one of min, 1se"),
    (["--folds", "x"], "'--folds'"),
    (["--dataset", "cifar10"], "unknown dataset 'cifar10'"),
]


@pytest.mark.parametrize("args,message", CLI_BAD, ids=[" ".join(a) for a, _ in CLI_BAD])
def test_cli_sweep_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["sweep", "--epochs", "1", "--train-size", "100", "--out", str(out), "-q", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert message in err
    assert not (out / "sweep.json").exists()


# ---------------------------------------------------------------- η × λ (issue 5)


def test_vectorized_eta_by_lmbda_cv_equals_separate_runs(digits):
    """The pairs η × λ as members of every fold equal one fit_stack per (fold, η) over the λs."""
    idx = np.concatenate([np.flatnonzero(digits.y_train == c)[:6] for c in range(10)])
    X, y = digits.X_train[idx], digits.y_train[idx]
    spec = NetworkSpec((64, 5, 10))
    etas, lmbdas = [0.2, 1.0], [0.0, 3.0]
    folds = CV.make_folds(y, 2, 0, True)
    seeds = CV.fold_seeds(0, 2)
    L = len(lmbdas)
    cv = cross_validate(spec, X, y, lmbdas * len(etas), folds, group_seeds=seeds, eta=np.repeat(etas, L),
                          epochs=2, batch_size=6, monitor=())
    P = len(etas) * L
    for g, (tr, _) in enumerate(folds):
        for e, eta in enumerate(etas):
            one = fit_stack(spec, X, y, groups=[tr], group_seeds=[seeds[g]], lmbda=np.array(lmbdas),
                              eta=np.full(L, eta), epochs=2, batch_size=6, monitor=())
            cols = slice(g * P + e * L, g * P + (e + 1) * L)
            for layer_cv, layer_one in zip(cv.params, one.params):
                np.testing.assert_allclose(layer_cv["w"][:, cols], layer_one["w"], rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(layer_cv["b"][cols], layer_one["b"], rtol=1e-4, atol=1e-5)
    assert cv.etas == [0.2, 0.2, 1.0, 1.0] and cv.diverged.shape == (P, 2)


PAIR_CASES = [
    # mean (E × L), se, min (e, l), 1se (e, l)
    ([[0.80, 0.85, 0.84], [0.86, 0.90, 0.89]], [[0.01] * 3, [0.02] * 3], (1, 1), (1, 2)),
    ([[0.91, 0.93, 0.70], [0.92, 0.90, 0.88]], [[0.01] * 3, [0.05] * 3], (0, 1), (0, 1)),  # 1se stays at η 0
    ([[0.90, float("nan"), 0.85], [0.90, 0.80, float("nan")]], [[0.0] * 3] * 2, (1, 0), (1, 0)),  # tie: later pair
    ([[0.5, 0.6], [float("nan"), float("nan")]], [[0.1, 0.1], [0.1, 0.1]], (0, 1), (0, 1)),
]


@pytest.mark.parametrize("mean,se,want_min,want_1se", PAIR_CASES)
def test_select_pair_min_and_1se(mean, se, want_min, want_1se):
    assert CV.select_pair(mean, se, "min") == want_min
    assert CV.select_pair(mean, se, "1se") == want_1se


@pytest.fixture(scope="module")
def eta_sweep():
    # η·λ/n = 1·2000/100 = 20 > 2: λ = 2000 diverges at η = 1 (and at 0.3: 6).
    return S.sweep(train_size=150, epochs=3, lmbda=[0.0, 1.0, 2000.0], eta=[1.0, 0.3], folds=3, seed=0)


def test_eta_sweep_selects_the_best_non_diverged_pair(eta_sweep):
    r = eta_sweep
    assert r.etas == [0.3, 1.0] and [(row["eta"], row["lmbda"]) for row in r.rows] == [
        (e, lm) for e in (0.3, 1.0) for lm in (0.0, 1.0, 2000.0)]
    assert r.config["models_cv"] == 18
    ok = [i for i, row in enumerate(r.rows) if not row["diverged"]]
    assert [row["diverged"] for row in r.rows] == [False, False, True, False, False, True]
    means = [r.rows[i]["cv_accuracy_mean"] for i in ok]
    assert r.chosen_index == ok[max(range(len(ok)), key=lambda j: (means[j], j))]
    assert r.config["eta"] == r.chosen_eta and set(r.refit_lmbdas) >= {0.0, r.chosen_lmbda}
    assert all(row["refit"] == (row["eta"] == r.chosen_eta and row["lmbda"] in r.refit_lmbdas) for row in r.rows)
    doc = r.to_json()
    assert doc["etas"] == [0.3, 1.0] and doc["chosen_eta"] == r.chosen_eta
    assert all("eta" in row for row in doc["rows"]) and doc["histories"][2]["folds"][0]["diverged"]


def test_eta_sweep_report_has_the_heat_map_and_the_table_an_eta_column(eta_sweep, tmp_path):
    from rich.console import Console

    from l2reg.present import report

    r = eta_sweep
    save(r, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert 'id="sweep-heatmap"' in html or "sweep-heatmap" in html
    console = Console(record=True, width=160)
    console.print(report.sweep_table(r))
    text = console.export_text()
    assert "η" in text and "diverged" in text
    assert json.loads((tmp_path / "sweep.json").read_text())["rows"][5]["diverged"] is True


def test_a_diverging_lmbda_is_marked_and_never_chosen(tmp_path):
    # ηλ/n = 0.5·5000/100 = 25 > 2 on every fold; the largest λ would otherwise be a candidate.
    r = S.sweep(train_size=150, epochs=3, lmbda=[0.0, 0.5, 5000.0], folds=3, select="1se")
    assert r.rows[2]["diverged"] and not r.rows[0]["diverged"] and not r.rows[1]["diverged"]
    assert r.chosen_lmbda != 5000.0 and r.rows[r.min_index]["lmbda"] != 5000.0
    assert r.cv.diverged[2].all()


@pytest.mark.parametrize("value,message", [
    ("", "--eta must be a comma-separated list of numbers"),
    ("0", "eta must be a finite number > 0; got 0.0."),
    ("0.5,-1", "eta must be a finite number > 0; got -1.0."),
    ("nan", "eta must be a finite number > 0; got nan."),
    ("0.5,x", "--eta must be a comma-separated list of numbers"),
])
def test_cli_bad_etas_is_one_line_and_exit_code_2(tmp_path, capsys, value, message):
    out = tmp_path / "out"
    assert main(["sweep", "--epochs", "1", "--train-size", "100", "--out", str(out), "-q", "--etas", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
    assert not (out / "sweep.json").exists()


# ---------------------------------------------------------------- checkpoints and resume (issue 7)

SWEEP_RUN = dict(train_size=300, epochs=200, lmbda=[0.0, 1.0, 10.0], folds=3)
SWEEP_ARGV = ["sweep", "--train-size", "300", "--epochs", "200", "--lmbdas", "0,1,10", "--folds", "3", "-q"]


def _same_rows(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ra:
            # Bit for bit: the resumed run computes exactly what the uninterrupted one did.
            assert ra[key] == rb[key] or (ra[key] != ra[key] and rb[key] != rb[key]), key


@pytest.fixture(scope="module")
def sweep_reference():
    return S.sweep(**SWEEP_RUN).to_json()


def _stop_mid_cv(out, proc, sig, at_least):
    """Send ``sig`` once the CV checkpoint holds epoch ``at_least``; check what is left; its epoch and stderr."""
    from test_reliability import _wait_for_epoch

    from l2reg.base import checkpoint

    _wait_for_epoch(out / CV.CHECKPOINT_CV, proc, at_least=at_least)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode == {signal.SIGKILL: -9, signal.SIGINT: 130}[sig], err
    done = checkpoint.read_meta(out / CV.CHECKPOINT_CV)["epoch"]
    assert at_least <= done < 200  # it stopped mid-CV
    assert not (out / CV.CHECKPOINT_REFIT).exists() and not (out / "sweep.json").exists()
    return done, err


def test_sweep_killed_mid_cv_resumes_to_the_uninterrupted_result(tmp_path, sweep_reference):
    """One sweep stopped twice mid-CV: SIGKILL, then its resume by SIGINT (exit 130 and the resume command)
    at least 3 epochs later; resumed to the end, it has the uninterrupted sweep's rows, bit for bit."""
    import subprocess

    from test_reliability import _cli

    out = tmp_path / "sweep"
    # The subprocesses share this module's compilation cache: the resume then compiles nothing new.
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    proc = subprocess.Popen(_cli(*SWEEP_ARGV, "--out", str(out)), **pipes)
    killed, _ = _stop_mid_cv(out, proc, signal.SIGKILL, 3)
    proc = subprocess.Popen(_cli("sweep", "--resume", str(out), "-q"), **pipes)
    _, err = _stop_mid_cv(out, proc, signal.SIGINT, killed + 3)
    assert re.search(rf"from (\w[\w-]* )*epoch {killed} of 200\.", err), err  # on from the killed sweep's epoch
    assert f"l2reg sweep --resume {out}" in err and "Traceback" not in err
    done = subprocess.run(_cli("sweep", "--resume", str(out), "-q"), capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    got = json.loads((out / "sweep.json").read_text())
    assert got["chosen_lmbda"] == sweep_reference["chosen_lmbda"]
    _same_rows(got["rows"], sweep_reference["rows"])


def test_resume_after_a_finished_cv_stage_goes_to_the_refit(tmp_path):
    opts = dict(train_size=120, epochs=3, lmbda=[0.0, 1.0], folds=2)
    first = S.sweep(**opts, checkpoint_dir=tmp_path)
    (tmp_path / CV.CHECKPOINT_REFIT).unlink()  # as if killed between the stages
    calls = []
    again = S.sweep(**opts, checkpoint_dir=tmp_path, resume=True, on_epoch=lambda e, m: calls.append(e))
    assert [e for e in calls if e is not None] == [3, 4, 5]  # the CV ran no epoch, the refit all three
    _same_rows(again.to_json()["rows"], first.to_json()["rows"])
    with pytest.raises(ConfigError, match=r"option select differs \(checkpoint has 'min', this run has '1se'\)"):
        S.sweep(**dict(opts, select="1se"), checkpoint_dir=tmp_path, resume=True)


# ---------------------------------------------------------------- issue 24: the report answers the question


def test_sweep_json_and_report_answer_the_question_with_this_runs_numbers(small_sweep):
    import re

    from l2reg.present import report
    from l2reg.present.save import sweep_document

    doc = json.loads(json.dumps(sweep_document(small_sweep)))
    c, text = doc["config"], doc["answer"]
    lmbda = doc["chosen_lmbda"] or max(r["lmbda"] for r in doc["rows"])
    assert "added to the cost" in text and "has the sign of w" in text
    got = re.search(r"\(1 − ηλ/n\) = 1 − ([0-9.]+)·([0-9.]+)/(\d+) = ([0-9.]+) < 1", text)
    assert (float(got[1]), float(got[2]), int(got[3])) == (doc["chosen_eta"], lmbda, c["n"])
    assert float(got[4]) == pytest.approx(1 - doc["chosen_eta"] * lmbda / c["n"], abs=1e-6)
    assert f"l2reg explain --dataset {c['dataset']} --train-size 150" in text and f"--lmbda {lmbda:g}" in text
    page = report.sweep_report_html(small_sweep)
    assert "Is L2 regularization an addition?" in page and "<code>l2reg explain --dataset" in page
    assert "The cost is C = C0 + (λ/2n)·Σw² (weights only, not biases)" in page


def test_sweep_histogram_legend_gives_the_tables_sum_of_squares(small_sweep):
    """The one legend of the per-layer panels quotes Σw² of all weights, the table's number."""
    import re

    import matplotlib

    matplotlib.use("Agg")
    from l2reg.present import plots_sweep

    fig = plots_sweep.sweep_weight_histogram_figure(small_sweep)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    table = {f"{r['weight_sq_norm']:.4g}" for r in small_sweep.rows}
    assert texts and all("(all layers)" in t for t in texts)
    assert {re.search(r"Σw² = ([0-9.e+]+) \(all layers\)", t)[1] for t in texts} <= table
