"""l2reg.torch.sweeping: the PyTorch λ path shares selection, results and reports with the JAX sweep."""

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import l2reg.torch as lt  # noqa: E402
from l2reg.cli import main  # noqa: E402
from l2reg.errors import ConfigError, DataError  # noqa: E402
from l2reg.fronts.cv import choose, make_folds  # noqa: E402
from l2reg.present.save import save  # noqa: E402

torch.set_num_threads(1)


def mlp():
    return torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    y = (X[:, :3].argmax(1)).astype(np.int64)
    X_test = rng.normal(size=(40, 8)).astype(np.float32)
    return X, y, X_test, X_test[:, :3].argmax(1).astype(np.int64)


@pytest.fixture(scope="module")
def result(data):
    return lt.sweep(mlp, data, lmbda=[0.0, 5.0, 50.0], eta=[0.05, 0.2], folds=3, epochs=3, batch_size=16,
                    select="1se", seed=4)


def test_cv_scores_equal_one_ensemble_per_fold_and_the_choice_is_the_shared_rule(data, result):
    X, y = data[:2]
    folds = make_folds(y, 3, 4, True)
    pairs = [(e, lm) for e in (0.05, 0.2) for lm in (0.0, 5.0, 50.0)]
    assert [r["lmbda"] for r in result.rows] == [lm for _, lm in pairs]
    for g, (tr, va) in enumerate(folds):
        seeds = lt.fold_seeds(4, 3)
        one = lt.train_ensemble(mlp, X, y, members=[lt.Member(lmbda=lm, eta=e, fold=0) for e, lm in pairs],
                                folds=[(tr, va)], epochs=3, batch_size=16, seed=[seeds[g]])
        np.testing.assert_allclose(result.cv.final["validation_accuracy"][:, g],
                                   one.history["validation_accuracy"][-1], atol=1e-6)
    c = choose(result.cv.final["validation_accuracy"], result.cv.diverged, E=2, rule="1se")
    assert result.chosen_index == c.index and result.rows[c.index]["chosen"]
    assert result.refit_lmbdas == [0.0, 5.0, 50.0] and len(result.refit_params) == 3


def test_refit_reports_the_test_set_and_the_terms(result, data):
    r = result.rows[result.chosen_index]
    assert r["refit"] and 0 <= r["test_accuracy"] <= 1
    h = result.refit_history
    assert h["test_accuracy"].shape == (3, 3) and h["weight_sq_norm"].shape == (3, 3)
    assert set(result.refit_terms) == {"mean_abs_decay", "mean_abs_data", "frac_away"}
    assert result.refit_terms["mean_abs_decay"][0] == 0.0 and result.refit_terms["mean_abs_decay"][2] > 0
    # the largest λ keeps the weights smallest
    assert h["weight_sq_norm"][-1, 2] < h["weight_sq_norm"][-1, 0]


def test_saves_the_same_files_as_the_jax_sweep(result, tmp_path):
    save(result, tmp_path)
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["chosen_lmbda"] == result.chosen_lmbda and doc["config"]["engine"] == "torch"
    assert {"rows", "histories", "refit", "summary"} <= set(doc)
    page = (tmp_path / "report.html").read_text()
    assert "Explore λ" in page and "mlp" in page
    with np.load(tmp_path / "params.npz") as z:
        assert list(z["lmbda"]) == [0.0, 5.0, 50.0]


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(policy="keras"), ConfigError, "policy"),
    (dict(lmbda=[0.0, -1.0]), ConfigError, "lmbda must be a finite number >= 0"),
    (dict(folds=1), ConfigError, "folds must be an integer >= 2"),
    (dict(batch_size=500), ConfigError, "batch_size must be an integer between 1 and"),
])
def test_bad_options_are_one_line(data, kwargs, error, message):
    with pytest.raises(error) as e:
        lt.sweep(mlp, data, **dict(dict(epochs=1, folds=2), **kwargs))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_data_of_the_wrong_shape_is_one_line(data):
    X, y = data[:2]
    with pytest.raises(DataError) as e:
        lt.sweep(mlp, (X[:, :5], y), epochs=1, folds=2, batch_size=8)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_negative_labels_are_one_line(data, dtype):
    X, y = data[:2]
    y = np.where(np.arange(len(y)) == 3, -1, y).astype(dtype)  # whole numbers: class labels, of any dtype
    with pytest.raises(DataError, match=r"labels must be integers in 0\.\.C-1; found -1") as e:
        lt.sweep(mlp, (X, y), epochs=1, folds=2, batch_size=8)
    assert "\n" not in str(e.value)


def test_cli_sweep_and_its_bad_inputs(tmp_path, data, capsys, monkeypatch):
    X, y, X_test, y_test = data
    np.savez(tmp_path / "d.npz", X=X, y=y, X_test=X_test, y_test=y_test)
    (tmp_path / "models.py").write_text("import torch\n\ndef mlp():\n    return torch.nn.Sequential("
                                        "torch.nn.Linear(8, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["torch", "sweep", "models:mlp", "--data", "d.npz", "--lmbda", "0,5", "--folds", "2",
                 "--epochs", "2", "--batch-size", "16", "--out", str(out), "-q"]) == 0
    assert (out / "sweep.json").is_file() and (out / "report.html").is_file()
    for argv, text in ((["torch", "sweep", "nosuch:mlp", "--data", "d.npz"], "cannot import module 'nosuch'"),
                       (["torch", "sweep", "models:mlp", "--data", "missing.npz"], "missing.npz"),
                       (["torch", "sweep", "models:mlp", "--data", "d.npz", "--policy", "keras"], "policy"),
                       (["torch", "audit", "models:nothing"], "nothing")):
        capsys.readouterr()
        assert main(argv + ["--out", str(tmp_path / "bad")] if argv[1] == "sweep" else argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and text in err, err
        assert not (tmp_path / "bad").exists()


# The same sweep on a Ray cluster: tests/test_distributed.py (the session's one local Ray).


# ---------------------------------------------------------------- AdamW: the grid is the decoupled wd

WDS = [0.0, 0.1, 1.0]


@pytest.fixture(scope="module")
def adamw_result(data):
    return lt.sweep(mlp, data, optimizer="adamw", weight_decay=WDS, eta=[0.02, 0.05], folds=2, epochs=2, batch_size=16,
                    seed=3)


def test_an_adamw_sweep_chooses_wd_by_cv_and_each_member_is_an_ordinary_adamw_loop(data, adamw_result):
    from torch.nn import functional as F
    from torch_loops import ordinary_epochs

    X, y = data[:2]
    r = adamw_result
    assert r.config["decay"] == "weight_decay" and r.config["weight_decay"] == WDS and r.config["penalty"] == "none"
    pairs = [(e, wd) for e in (0.02, 0.05) for wd in WDS]  # the grid η × wd, wd fastest
    assert [(row["eta"], row["lmbda"]) for row in r.rows] == pairs and r.refit_lmbdas == WDS
    c = choose(r.cv.final["validation_accuracy"], r.cv.diverged, E=2, rule="min")
    assert r.chosen_index == c.index
    for g, fold in enumerate(make_folds(y, 2, 3, True)):
        for p, (eta, wd) in enumerate(pairs):
            member = lt.Member(lmbda=0.0, weight_decay=wd, eta=eta, fold=0)
            *_, (model, Xt, yt) = ordinary_epochs(
                mlp, X, y, member=member, fold=fold, seed=lt.fold_seeds(3, 2)[g], optimizer="adamw",
                make_optimizer=lambda groups, eta: torch.optim.AdamW(groups, lr=eta), loss=F.cross_entropy,
                epochs=2, batch_size=16)
            va = torch.as_tensor(fold[1])
            with torch.no_grad():
                cost = float(F.cross_entropy(model.eval()(Xt[va]), yt[va]))
                sq = float(sum((w ** 2).sum() for name, w in model.named_parameters() if name.endswith("weight")))
            assert r.cv.final["validation_cost"][p, g] == pytest.approx(cost, abs=1e-5)
            assert r.cv.final["weight_sq_norm"][p, g] == pytest.approx(sq, rel=1e-5)


def test_an_adamw_sweep_reports_a_wd_grid(adamw_result, tmp_path):
    from l2reg.present import report

    save(adamw_result, tmp_path)
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["chosen_weight_decay"] == adamw_result.chosen_lmbda and doc["config"]["weight_decay"] == WDS
    assert "never to choose wd" in doc["test_set_use"]
    headers, _, _ = report._sweep_rows_text(adamw_result)
    assert "wd" in headers and "λ" not in headers and "λ/n" not in headers
    page = (tmp_path / "report.html").read_text()
    assert "Explore wd at the chosen η" in page and "one row per (η, wd)" in page and "Chosen wd =" in page
    text = re.sub(r"<script.*?</script>|<img[^>]*>", "", page, flags=re.S)  # the words, figures' text included:
    assert "λ" not in text and "d = −η·wd·w" in text                        # their captions say wd
    assert "s training." in text and "compiling" not in text  # PyTorch compiles nothing
    assert "Not under AdamW" in report.sweep_answer(adamw_result)
    from matplotlib.text import Text

    from l2reg.present.pages import sweep_figures

    path = next(f for f in sweep_figures(adamw_result) if f[0] == "sweep-path")
    words = [t.get_text() for t in path[3]().findobj(Text)]
    assert any("wd" in w for w in words) and not any("λ" in w for w in words)


@pytest.mark.parametrize("kwargs,message", [
    (dict(optimizer="adamw", lmbda=[0.0, 1.0]), "give its grid as weight_decay (--weight-decay)"),
    (dict(weight_decay=[0.0, 0.1]), "optimizer 'adamw' (--optimizer adamw)"),
    (dict(optimizer="adamw", weight_decay=[0.0, -1.0]), "weight_decay must be a finite number >= 0"),
])
def test_the_grid_of_each_optimizer_is_named(data, kwargs, message):
    with pytest.raises(ConfigError) as e:
        lt.sweep(mlp, data, epochs=1, folds=2, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("argv,text", [
    (["--optimizer", "adamw", "--lmbda", "0,1"], "--weight-decay"),
    (["--weight-decay", "0,0.01"], "--optimizer adamw"),
    (["--penalty", "l1"], "(see 'l2reg torch sweep --help')"),
])
def test_cli_names_the_grid_option_and_the_command(tmp_path, data, capsys, monkeypatch, argv, text):
    X, y = data[:2]
    np.savez(tmp_path / "d.npz", X=X, y=y)
    monkeypatch.chdir(tmp_path)
    assert main(["torch", "sweep", f"{__file__}:mlp", "--data", "d.npz", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and text in err, err


def test_cli_help_states_the_default_wd_grid():
    from typer.testing import CliRunner

    from l2reg.cli import app
    from l2reg.models.sweeping import default_wd_text

    out = " ".join(CliRunner().invoke(app, ["torch", "sweep", "--help"], terminal_width=200).output.split())
    assert "--weight-decay" in out and default_wd_text().removeprefix("wd = ") in out


# ---------------------------------------------------------------- the data people have


class Bag(torch.nn.Module):
    """Token ids through an nn.Embedding (needs torch.long), averaged, then a linear head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head = torch.nn.Embedding(20, 4), torch.nn.Linear(4, 2)

    def forward(self, tokens):
        return self.head(self.embed(tokens).mean(1))


def test_integer_token_ids_reach_an_embedding_as_long(tmp_path):
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 20, size=(80, 5)).astype(np.int64)
    np.savez(tmp_path / "tokens.npz", X=tokens, y=(tokens[:, 0] < 10).astype(np.int64))
    r = lt.sweep(Bag, str(tmp_path / "tokens.npz"), lmbda=[0.0, 1.0], folds=2, epochs=1, batch_size=16)
    assert r.config["n"] == 64 and len(r.rows) == 2 and np.isfinite(r.cv.final["validation_cost"]).all()


def test_integer_x_for_a_model_of_features_is_one_line_with_the_fix():
    X = np.random.default_rng(0).integers(0, 16, (40, 8))
    with pytest.raises(DataError) as e:
        lt.sweep(mlp, (X, X[:, 0] % 3), lmbda=[0.0], folds=2, epochs=1, batch_size=8)
    assert "integer X reaches the model as torch.long" in str(e.value) and "\n" not in str(e.value)


def test_a_csv_sweeps_as_l2reg_sweep_reads_it(tmp_path, data):
    X, y = data[:2]
    names = np.array(["cat", "dog", "eel"])
    lines = ["f0,f1,f2,f3,kind,f4,f5,f6,f7"] + [",".join([*map(str, x[:4]), names[t], *map(str, x[4:])])
                                                for x, t in zip(X, y)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    r = lt.sweep(mlp, str(tmp_path / "d.csv"), label_column="kind", lmbda=[0.0, 1.0], folds=2, epochs=1,
                 batch_size=16)
    assert r.config["n"] == 96 and r.config["n_test"] == 24 and "'cat' → 0" in " ".join(r.notes)


def test_digits_cross_validates_on_the_rows_of_l2reg_sweep():
    from l2reg.data import load_dataset
    from l2reg.models.sweeping import load_data

    d, ref = load_data("digits"), load_dataset("digits", eval="test")
    assert len(d.X) == ref.n_train == 1077 and len(d.X_test) == len(ref.X_test)
    np.testing.assert_array_equal(d.X, ref.X_train)


# ---------------------------------------------------------------- what the run prints


class Encoder(torch.nn.Module):
    """A TransformerEncoderLayer: in eval mode its fused kernel has no batching rule (PyTorch's slow fallback)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(20, 8)
        self.enc = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, tokens):
        return self.head(self.enc(self.embed(tokens)).mean(1))


def test_slow_fallback_warnings_are_one_line_naming_the_ops(recwarn):
    rng = np.random.default_rng(2)
    tokens = rng.integers(0, 20, size=(24, 4))
    folds = [(np.arange(12), np.arange(12, 24)), (np.arange(12, 24), np.arange(12))]
    r = lt.train_ensemble(Encoder, tokens, (tokens[:, 0] < 10).astype(np.int64), epochs=1, batch_size=6, folds=folds,
                          members=[lt.Member(lmbda=lm, eta=0.1, fold=f) for f in (0, 1) for lm in (0.0, 1.0)],
                          strategy="vmap")
    assert not [w for w in recwarn if "performance drop" in str(w.message)]
    s = r.config["strategy"]
    ops = s["slow_fallback_ops"] + s["eval_slow_fallback_ops"]
    assert ops and all(op in s["line"] for op in ops)  # the fused attention / encoder kernels have no batching rule
    assert s["line"].count("slow fallback") <= 2 and "aten::_transformer_encoder_layer_fwd" in s["eval_slow_fallback_ops"]


def test_the_heading_names_the_factory(result):
    from rich.console import Console

    from l2reg.present import report

    assert report.sweep_heading(result) == "l2reg torch sweep: mlp on arrays"
    console = Console(width=200, record=True)
    console.print(report.sweep_table(result))
    assert "l2reg torch sweep: mlp on arrays, n = 120" in console.export_text()
