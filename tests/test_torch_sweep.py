"""l2reg.torch.sweeping: the PyTorch λ path shares selection, results and reports with the JAX sweep."""

import json

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


def test_the_torch_sweep_on_ray_equals_the_one_in_process(data, result, tmp_path):
    """The PyTorch sweep in blocks on a Ray cluster (one fold × 3 pairs per task): the same choice and scores.
    The factory goes by name (a file and a function), which every worker can load."""
    pytest.importorskip("ray")
    import ray

    (tmp_path / "models.py").write_text("import torch\n\ndef mlp():\n    return torch.nn.Sequential("
                                        "torch.nn.Linear(8, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))\n")
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        on_ray = lt.sweep(f"{tmp_path}/models.py:mlp", data, lmbda=[0.0, 5.0, 50.0], eta=[0.05, 0.2], folds=3,
                          epochs=3, batch_size=16, select="1se", seed=4, backend="ray", block_size=3)
    finally:
        ray.shutdown()
    assert on_ray.chosen_index == result.chosen_index
    for name in ("validation_accuracy", "validation_cost", "weight_sq_norm"):
        np.testing.assert_allclose(on_ray.cv.final[name], result.cv.final[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(on_ray.refit_history["test_accuracy"], result.refit_history["test_accuracy"],
                               atol=1e-6)
