"""explain: the recorded decay and data terms equal their closed forms; fractions; runs; CLI."""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oracle
from l2reg.core import engine, network
from l2reg.present.save import explain_document
from l2reg.present import report

from l2reg.cli import main
from l2reg.data import Dataset
from l2reg.errors import ConfigError, DataError

E = importlib.import_module("l2reg.fronts.explaining")
TERMS = importlib.import_module("l2reg.core.terms")
WORDS = importlib.import_module("l2reg.present.words")
T = importlib.import_module("l2reg.fronts.training")


def _tiny(n, n_in=3, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, n_in)).astype(np.float32)
    y = rng.integers(0, n_classes, n).astype(np.int32)
    return Dataset("tiny", X, y, X, y, None, None, n_classes)


def _hand_set(sizes, seed=1):
    rng = np.random.default_rng(seed)
    return [{"w": rng.normal(0, 1, (a, b)).astype(np.float32), "b": rng.normal(0, 1, b).astype(np.float32)}
            for a, b in zip(sizes[:-1], sizes[1:])]


def _closed_form_steps(model, data, *, lmbda, eta, m, epochs, seed=0):
    """Replay the engine's batches in float64: for every step, (w, d, g) of every layer by the closed forms

        d = −(ηλ/n)·w,    g = −(η/m_b)·Σ_x ∂C0_x/∂w    (m_b: the batch's real size)
    """
    X, y, n = data.X_train.astype(np.float64), data.y_train, data.n_train
    ws = [l["w"].astype(np.float64) for l in model]
    bs = [l["b"].astype(np.float64) for l in model]
    key = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed), 1)])
    steps = []
    for e in range(epochs):
        idx, valid = engine.shuffle(key, e, jnp.arange(n)[None], jnp.ones((1, n), bool), m)
        for i, v in zip(np.asarray(idx), np.asarray(valid)):
            b = i[0][v[0]]
            gw, gb = oracle.backprop(ws, bs, X[b], np.eye(data.n_classes)[y[b]])
            d = [-(eta * lmbda / n) * w for w in ws]
            g = [-(eta / len(b)) * x for x in gw]
            steps.append([(w, dl, gl) for w, dl, gl in zip(ws, d, g)])
            ws = [w + dl + gl for w, dl, gl in zip(ws, d, g)]
            bs = [bb - (eta / len(b)) * x for bb, x in zip(bs, gb)]
    return steps


def _expected_stats(step):
    out = {k: [] for k in TERMS.STAT_NAMES}
    for w, d, g in step:
        grow = np.abs(w + d + g) > np.abs(w)
        out["away"].append(np.sum(g * w > 0))
        out["grow"].append(np.sum(grow))
        out["grow_sq"].append(np.sum(w[grow] ** 2))
        out["sq"].append(np.sum(w ** 2))
        out["abs_d"].append(np.sum(np.abs(d)))
        out["abs_g"].append(np.sum(np.abs(g)))
        out["zero_g"].append(np.sum(g == 0))
    return {k: np.array(v, np.float64) for k, v in out.items()}


@pytest.mark.parametrize(
    "n,m,epochs,sizes",
    [
        (4, 4, 1, (3, 2, 2)),  # hand-set weights, one batch: one step
        (7, 3, 2, (3, 4, 2)),  # several steps, a partial last batch, two epochs
    ],
)
def test_recorded_terms_equal_closed_forms(n, m, epochs, sizes):
    data = _tiny(n)
    model = _hand_set(sizes)
    eta, lmbdas = 0.7, [0.8, 3.0]
    params0 = network.stack([[{k: jnp.asarray(v) for k, v in l.items()} for l in model]], repeats=3)
    r = E.explain(data, sizes=list(sizes), epochs=epochs, batch_size=m, eta=eta, lmbda=lmbdas,
                  record_every=1, snapshots=epochs, track=2, params0=params0)
    assert r.lmbdas == [0.0, 0.8, 3.0]
    steps_per_epoch = -(-n // m)
    assert list(r.steps) == list(range(epochs * steps_per_epoch))
    for k, lmbda in enumerate(r.lmbdas):
        want = _closed_form_steps(model, data, lmbda=lmbda, eta=eta, m=m, epochs=epochs)
        for s, step in enumerate(want):
            exp = _expected_stats(step)
            for name in TERMS.STAT_NAMES:
                np.testing.assert_allclose(r.stats[name][s, :, k], exp[name], rtol=2e-5, atol=1e-7, err_msg=name)
            tracked = [step[li][0][i, o] for li, i, o in r.tracked_index]
            np.testing.assert_allclose(r.tracked[s, :, k], tracked, rtol=1e-5, atol=1e-7)
        for e in range(epochs):  # the full per-weight terms at each epoch's last step
            last = want[(e + 1) * steps_per_epoch - 1]
            for layer, (w, d, g) in zip(r.snapshots[e], last):
                np.testing.assert_allclose(layer["w"][:, k], w, rtol=1e-5, atol=1e-7)
                np.testing.assert_allclose(layer["d"][:, k], d, rtol=1e-5, atol=1e-9)
                np.testing.assert_allclose(layer["g"][:, k], g, rtol=2e-5, atol=1e-8)
                if lmbda == 0:
                    assert not np.any(layer["d"][:, k])


W = np.array([[1.0, -1.0, 2.0, 0.0, -0.5, 0.3]])  # (n_in=1, n_out=6) for K=1 after reshaping


@pytest.mark.parametrize(
    "g,d,away,grow",
    [
        # g·w > 0 is "away"; a zero weight or zero g is not.
        ([0.1, 0.1, -0.1, 0.5, -0.2, 0.0], [0.0] * 6, 2, 3),
        # with decay: w = 1 gets g = +0.1 and d = −0.2, net toward zero; w = −0.5 gets g = −0.2, d = +0.05: grows.
        ([0.1, 0.1, -0.1, 0.5, -0.2, 0.0], [-0.2, 0.2, -0.4, 0.0, 0.05, -0.06], 2, 2),
        # every data term away from zero, decay larger than data everywhere: nothing grows.
        ([0.1, -0.1, 0.1, 0.0, -0.1, 0.1], [-0.5, 0.5, -1.0, 0.0, 0.25, -0.15], 5, 0),
        # overshooting past zero to a larger |w| counts as growth: w = 1, u = −2.5 gives |−1.5| > 1.
        ([-2.5, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0] * 6, 0, 1),
    ],
)
def test_layer_stats_on_constructed_cases(g, d, away, grow):
    w = jnp.asarray(W[:, None, :])  # (1, 1, 6)
    g = jnp.asarray(np.array(g)[None, None, :])
    d = jnp.asarray(np.array(d)[None, None, :])
    s = TERMS.layer_stats(w, d, g, d + g)
    assert float(s["away"][0]) == away
    assert float(s["grow"][0]) == grow
    grew = np.abs(W + np.asarray(d + g)[0]) > np.abs(W)
    assert float(s["grow_sq"][0]) == pytest.approx(float(np.sum(W[grew] ** 2)))
    assert float(s["sq"][0]) == pytest.approx(float(np.sum(W ** 2)))
    assert float(s["zero_g"][0]) == int(np.sum(np.asarray(g) == 0))


def test_epoch_summary_pools_layers_by_weight_count():
    # Two layers of 4 and 6 weights, K = 2, two epochs of one recorded step each.
    stats = {name: np.zeros((2, 2, 2)) for name in TERMS.STAT_NAMES}
    stats["away"][:, 0] = [[1, 2], [3, 4]]  # layer 0
    stats["away"][:, 1] = [[3, 0], [6, 6]]  # layer 1
    stats["sq"][:] = 1.0
    stats["grow_sq"][:, 0, 1] = [1.0, 0.5]
    stats["abs_d"][:, :, 1] = 2.0
    stats["abs_g"][:, :, 1] = 5.0
    r = E.ExplainResult(
        config={"epochs": 2}, lmbdas=[0.0, 1.0], steps_per_epoch=1, record_every=1, steps=np.arange(2),
        stats=stats, n_weights=np.array([4, 6]), tracked=np.zeros((2, 0, 2)), tracked_index=np.zeros((0, 3)),
        history={"weight_sq_norm": np.array([[4.0, 2.0], [5.0, 1.0]])}, snapshots={}, train_seconds=0,
        compile_seconds=0,
    )
    s = r.epoch_summary()
    np.testing.assert_allclose(s["frac_away"], [[0.4, 0.2], [0.9, 1.0]])
    np.testing.assert_allclose(s["grow_sq_share"][:, 1], [0.5, 0.25])
    np.testing.assert_allclose(s["decay_to_data"][:, 1], [0.4, 0.4])
    np.testing.assert_allclose(s["weight_sq_ratio"], [[1.0, 0.5], [1.0, 0.2]])
    per_layer = r.layer_summary(0)
    np.testing.assert_allclose(per_layer["frac_away"], [[0.25, 0.5], [0.5, 0.0]])


@pytest.fixture(scope="module")
def digits_small():
    from l2reg.data import load_dataset

    d = load_dataset("digits")
    return Dataset("digits-small", d.X_train[:120], d.y_train[:120], d.X_val[:60], d.y_val[:60], None, None, 10)


def test_vectorized_lambdas_equal_separate_runs_and_training(digits_small):
    opts = dict(sizes=[64, 6, 10], epochs=2, batch_size=10, record_every=3)
    both = E.explain(digits_small, lmbda=[0.5, 4.0], **opts)
    alone = E.explain(digits_small, lmbda=4.0, **opts)
    assert both.lmbdas == [0.0, 0.5, 4.0] and alone.lmbdas == [0.0, 4.0]
    for name in TERMS.STAT_NAMES:
        np.testing.assert_allclose(both.stats[name][..., [0, 2]], alone.stats[name], rtol=1e-5, atol=1e-7)
    # The recording does not change the trajectory: the same weights as plain training.
    trained = T.train(digits_small, sizes=[64, 6, 10], epochs=2, batch_size=10, lmbda=[0.0, 0.5, 4.0], monitor=())
    for k in range(3):
        for li, layer in enumerate(both.final_params):
            np.testing.assert_allclose(layer["w"][:, k], trained.params[k][li]["w"], rtol=1e-6, atol=1e-7)
    s = both.epoch_summary()
    assert s["weight_sq_norm"][-1, 0] > s["weight_sq_norm"][-1, 1] > s["weight_sq_norm"][-1, 2]
    assert np.all(s["mean_abs_decay"][:, 0] == 0) and np.all(s["mean_abs_decay"][:, 2] > s["mean_abs_decay"][:, 1])
    text = " ".join(WORDS.answer(both, 2))
    assert "(1 − ηλ/n) = 0.983333 per step" in text and "% of the weights away from zero" in text
    deriv = "\n".join(WORDS.derivation(both, 2))
    assert "(λ/n)·w = ∂C0/∂w + 0.0333333·w" in deriv and "= 0.983333·w − 0.05·Σ_x ∂C0_x/∂w" in deriv
    json.dumps(both.to_json())
    page = report.explain_report_html(both)
    for fig_id in ("explain-terms", "explain-trajectories", "explain-fractions", "explain-histograms"):
        assert f'id="{fig_id}"' in page
    assert "http" not in page.replace("http-equiv", "")


def test_answer_numbers_say_over_what_and_equal_the_json(digits_small):
    """Every share or ratio the answer quotes says over what it is taken, and equals explain.json's number."""
    import re

    r = E.explain(digits_small, lmbda=[4.0], sizes=[64, 6, 10], epochs=2, batch_size=10, record_every=3)
    doc = json.loads(json.dumps(r.to_json()))
    model = doc["models"][1]
    lines = WORDS.answer(r, 1)
    text = " ".join(lines)
    pct = lambda pattern: float(re.search(pattern, text).group(1)) / 100  # noqa: E731

    assert pct(r"In the last epoch \(mean over its recorded steps\) the data term pushed ([0-9.]+)% of the weights "
               r"away") == pytest.approx(model["frac_away"][-1], abs=5e-4)
    ratio = float(re.search(r"ratio of the means \|d\|/\|g\| = ([0-9.e-]+)\)", text).group(1))
    assert ratio == pytest.approx(model["decay_to_data"][-1], rel=5e-3)
    assert pct(r"In a step of the last epoch \(mean over its recorded steps\) ([0-9.]+)% of the weights grew") == \
        pytest.approx(model["frac_grow"][-1], abs=5e-4)
    assert pct(r"they carry ([0-9.]+)% of Σw²") == pytest.approx(model["grow_sq_share"][-1], abs=5e-4)
    assert pct(r"Over the whole run \(2 epochs\), ([0-9.]+)% of the weights ended larger") == \
        pytest.approx(model["whole_run"]["frac_grew_over_run"], abs=5e-4)
    assert pct(r"for ([0-9.]+)% the summed decay pull beat") == \
        pytest.approx(model["whole_run"]["frac_pull_beats_push"], abs=5e-4)
    sq = float(re.search(r"Σw² \(all weights, biases excluded\) is ([0-9.e+]+) with", text).group(1))
    assert sq == pytest.approx(model["weight_sq_norm"][-1], rel=5e-4)
    # no share without its "over what": every percentage sits in a sentence that names the epoch or the run
    for line in lines:
        if "%" in line:
            assert "last epoch" in line or "whole run" in line, line


def test_figure_titles_quote_the_tables_statistics(digits_small):
    """The one-step figure's |g|/|d| is the table's (1 / its |d|/|g|, last epoch), and the cumulative figure's
    shares are the answer's whole-run ones."""
    import re

    import matplotlib

    matplotlib.use("Agg")
    from l2reg.present import plots_explain as P

    r = E.explain(digits_small, lmbda=[4.0], sizes=[64, 6, 10], epochs=2, batch_size=10, record_every=3)
    table = r.epoch_summary()["decay_to_data"][-1, 1]
    fig = P.explain_terms_figure(r, 1)
    title = fig._suptitle.get_text()
    assert "in the last epoch mean |g|" in title
    assert float(re.search(r"mean \|g\| = ([0-9.e+]+)× mean \|d\|", title).group(1)) == pytest.approx(1 / table, rel=5e-3)
    assert float(re.search(r"\|d\|/\|g\| = ([0-9.e-]+)\)", title).group(1)) == pytest.approx(table, rel=5e-3)
    cum = P.explain_cumulative_figure(r, 1)
    labels = " ".join(t.get_text() for t in cum.axes[0].get_legend().get_texts())
    grew = float(re.search(r"\|w\| grew over the run \(([0-9]+)%\)", labels).group(1))
    assert grew == pytest.approx(100 * r.run_summary(1)["frac_grew_over_run"], abs=0.5)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"record_every": 0}, ConfigError, "record_every must be an integer >= 1; got 0."),
        ({"track": -1}, ConfigError, "track must be an integer >= 0; got -1."),
        ({"snapshots": 0}, ConfigError, "snapshots must be an integer >= 1; got 0."),
        ({"seed": [0, 1]}, ConfigError, "explain takes one seed; got 2."),
        ({"eta": [0.1, 0.5]}, ConfigError, "explain takes one eta; got 2."),
        ({"lmbda": -1.0}, ConfigError, "lmbda must be a finite number >= 0; got -1.0."),
        ({"batch_size": 500}, ConfigError, "batch_size must be an integer between 1 and 120; got 500."),
    ],
)
def test_bad_options_raise_clear_errors(digits_small, kwargs, error, message):
    with pytest.raises(error) as info:
        E.explain(digits_small, **{"epochs": 1, **kwargs})
    assert message in str(info.value)


def test_run_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not a finished l2reg train folder"):
        E.explain_run(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"config": {"penalty": "none"}}))
    with pytest.raises(ConfigError, match="explain needs a run trained with penalty l2"):
        E.explain_run(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"config": {"optimizer": "adam", "lmbda": [1.0]}}))
    (tmp_path / "metrics.json").write_text(json.dumps({"config": {"optimizer": "rmsprop", "lmbda": [1.0]}}))
    with pytest.raises(ConfigError, match="metrics.json: optimizer must be one of .*; got 'rmsprop'."):
        E.explain_run(tmp_path)


def test_cli_explains_a_train_run_and_writes_json(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "explain"
    small = ["--train-size", "100", "--epochs", "2", "--sizes", "64,6,10"]
    assert main(["train", *small, "--lmbda", "2", "--out", str(run), "-q"]) == 0
    capsys.readouterr()
    assert main(["explain", "--run", str(run), "--out", str(out), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert [m["lmbda"] for m in meta["models"]] == [0.0, 2.0]
    assert meta["config"]["run"] == str(run) and meta["config"]["sizes"] == [64, 6, 10]
    assert meta["reproduced"]["lmbda"] == [2.0] and meta["reproduced"]["max_abs_diff"] <= 1e-6
    assert any("Re-ran the recording with the config of" in note for note in meta["notes"])
    assert len(meta["models"][1]["frac_away"]) == 2 and "answer" in meta["models"][1]
    assert (out / "report.html").is_file() and (out / "explain.npz").is_file()

    assert main(["explain", "--run", str(run), "--eta", "3", "--out", str(tmp_path / "x")]) == 2
    assert "--run takes the training options from the run; drop --eta." in capsys.readouterr().err
    assert main(["explain", "--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "y")]) == 2
    assert "is not a finished l2reg train folder" in capsys.readouterr().err


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "adam"])
def test_stateful_optimizers_lambda_zero_has_no_decay_term(optimizer):
    data, sizes = _tiny(7), (3, 4, 2)
    r = E.explain(data, sizes=list(sizes), epochs=2, batch_size=3, eta=0.1, lmbda=[2.0], record_every=1,
                  snapshots=2, track=2, optimizer=optimizer)
    assert r.lmbdas == [0.0, 2.0] and r.config["optimizer"] == optimizer
    for layers in r.snapshots.values():
        for layer in layers:
            assert not np.any(layer["d"][:, 0]) and np.any(layer["d"][:, 1])
    if optimizer == "momentum":  # d = −η(λ/n)·w: this step's penalty only
        for layer in r.snapshots[1]:
            np.testing.assert_allclose(layer["d"][:, 1], -0.1 * 2.0 / 7 * layer["w"][:, 1], rtol=1e-3, atol=1e-7)
    # the recording does not change the trajectory
    trained = T.train(data, sizes=list(sizes), epochs=2, batch_size=3, eta=0.1, lmbda=[0.0, 2.0], monitor=(),
                      optimizer=optimizer)
    for k in range(2):
        for li, layer in enumerate(r.final_params):
            np.testing.assert_allclose(layer["w"][:, k], trained.params[k][li]["w"], rtol=1e-5, atol=1e-6)
    assert "cost" in WORDS.answer(r, 1)[0]


def test_adamw_decay_term_is_minus_eta_wd_w():
    data, sizes = _tiny(4), (3, 2, 2)
    model = _hand_set(sizes)
    params0 = network.stack([[{k: jnp.asarray(v) for k, v in l.items()} for l in model]], repeats=2)
    eta, wd = 0.05, 0.3
    r = E.explain(data, sizes=list(sizes), epochs=2, batch_size=4, eta=eta, record_every=1, snapshots=2,
                  track=2, params0=params0, optimizer="adamw", weight_decay=wd)
    assert r.lmbdas == [0.0, 0.0] and r.weight_decays == [0.0, wd]
    for layers in r.snapshots.values():
        for layer in layers:
            np.testing.assert_allclose(layer["d"][:, 1], -eta * wd * layer["w"][:, 1], rtol=1e-4, atol=1e-7)
            assert not np.any(layer["d"][:, 0])
    first = WORDS.answer(r, 1)[0]
    assert "decoupled, not in the cost" in first and f"{eta * wd:.4g}·w" in first
    meta = explain_document(r)
    assert [m.get("weight_decay") for m in meta["models"]] == [0.0, wd] and "answer" in meta["models"][1]


@pytest.mark.parametrize("train_args,key", [
    (["--optimizer", "momentum", "--momentum", "0.8", "--eta", "0.1", "--lmbda", "0,2"], "lmbda"),
    (["--optimizer", "adamw", "--eta", "0.003", "--weight-decay", "0.01,0.1"], "weight_decay"),
    (["--optimizer", "nesterov", "--eta", "0.05,0.1", "--lmbda", "1"], "lmbda"),
])
def test_explain_run_reproduces_momentum_and_adamw_runs(tmp_path, capsys, train_args, key):
    """params.npz records every run's settings (λ, seed, η, μ, wd), so explain --run re-runs any optimizer's run
    and finds the stored weights it reproduces."""
    run, out = tmp_path / "run", tmp_path / "ex"
    assert main(["train", "--train-size", "120", "--epochs", "2", "-q", "--out", str(run), *train_args]) == 0
    if "0.05,0.1" in train_args:  # several η: explain re-runs one η only, and says so
        assert main(["explain", "--run", str(run), "--out", str(out), "-q"]) == 2
        assert "several η" in capsys.readouterr().err
        return
    assert main(["explain", "--run", str(run), "--out", str(out), "-q"]) == 0
    doc = json.loads((out / "explain.json").read_text())
    with np.load(run / "params.npz") as z:
        stored = sorted(float(v) for v in z[key])
    assert doc["reproduced"]["max_abs_diff"] < 1e-5
    assert set(doc["reproduced"]["lmbda"]) == set(stored)  # every stored run found and reproduced
