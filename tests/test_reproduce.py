"""``l2reg reproduce nielsen``: a smoke run on tiny IDX files, and the summary arithmetic.

The real experiment (MNIST, minutes) is not run here; see docs/reproduction.md.
"""

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pytest

from l2reg import data
from l2reg.fronts import reproduce
from l2reg.cli import main
from l2reg.errors import ConfigError

N_FILE, N_SPLIT, N_TEST = 120, 100, 40


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """Four tiny MNIST-like IDX files, trusted by the checksum table, and a small split."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = (np.arange(N_FILE) % 10).astype(np.uint8)
    # Class-dependent images, so that there is something to learn.
    means = rng.integers(0, 256, (10, 28, 28))
    images = np.clip(means[labels] + rng.normal(0, 40, (N_FILE, 28, 28)), 0, 255).astype(np.uint8)
    test_labels = (np.arange(N_TEST) % 10).astype(np.uint8)
    test_images = np.clip(means[test_labels] + rng.normal(0, 40, (N_TEST, 28, 28)), 0, 255).astype(np.uint8)
    arrays = dict(zip(data.IDX_FILES, (images, labels, test_images, test_labels)))
    sums = {}
    for stem, a in arrays.items():
        path = data.write_idx(folder / stem, a)
        sums[stem] = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(data.CHECKSUMS, "mnist", sums)
    monkeypatch.setattr(data, "MNIST_TRAIN_SIZE", N_SPLIT)
    monkeypatch.setattr(data, "_VERIFIED", {})
    monkeypatch.delenv(data.ENV_DATA, raising=False)
    monkeypatch.setattr(reproduce, "QUICK", {"small": (60, 2), "full": (100, 1)})
    return tmp_path / "data"


def test_quick_run_writes_table_plots_and_runs(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "repro"
    args = ["reproduce", "nielsen", "--data-dir", str(tiny_mnist), "--quick", "--seeds", "0,1", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Nielsen ch. 3" in text and "82.23" in text and "quick" in text

    for name in ("nielsen.md", "nielsen.json", "nielsen_small.png", "nielsen_full.png", "nielsen_cv.png",
                 "small/metrics.json", "full/metrics.json", "cv/cv.json"):
        assert (out / name).is_file(), name
    assert (out / "nielsen_small.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    result = json.loads((out / "nielsen.json").read_text())
    small, full = result["experiments"]
    assert (small["train_size"], small["epochs"], small["lmbdas"]) == (60, 2, [0.0, 0.1])
    assert (full["train_size"], full["epochs"], full["lmbdas"]) == (100, 1, [0.0, 5.0])
    cv = result["cv"]
    # the experiment's two λ and the CV λ (when it is another) × two seeds, one stack
    assert small["n_models"] == 2 * len({0.0, 0.1, cv["lmbda"]})
    row = small["rows"][1]
    assert len(row["final"]["values"]) == 2 and row["nielsen_final"] == 86.95
    assert row["peak"]["mean"] >= row["final"]["mean"]
    assert cv["folds"] == 5 and cv["lmbda"] in cv["grid"] and cv["hand_lmbda"] == 0.1
    assert "test set only reports" in cv["test_set_use"]

    md = (out / "nielsen.md").read_text()
    assert "| 60 training images, 2 epochs | 0.1 |" in md and "cross-validation" in md
    assert "| CV acc |" in md and "Quick smoke run" in md

    # A second run into the same folder is refused, as for train.
    assert main(args + ["-q"]) == 2
    assert "already holds a run (nielsen.json)" in capsys.readouterr().err


def _fake_train(lmbdas, seeds, test_curves, train_final):
    """A TrainResult-like object with runs ordered as train() orders them (seed-major)."""
    runs = []
    for s in seeds:
        for lm in lmbdas:
            runs.append({"lmbda": lm, "seed": s, "evaluation_accuracy": list(test_curves[(lm, s)]),
                         "training_accuracy": [train_final[(lm, s)]]})
    return SimpleNamespace(runs=runs, train_seconds=1.0, compile_seconds=0.5)


def test_summary_statistics():
    exp = reproduce.EXPERIMENTS[0]
    curves = {(0.0, 0): [0.70, 0.82, 0.80], (0.1, 0): [0.80, 0.88, 0.87],
              (0.0, 1): [0.75, 0.81, 0.81], (0.1, 1): [0.85, 0.86, 0.86]}
    train_final = {k: 1.0 for k in curves}
    s = reproduce._summarize(exp, _fake_train([0.0, 0.1], [0, 1], curves, train_final), 12.0)
    zero, reg = s.rows
    np.testing.assert_allclose(zero["final"]["values"], [80.0, 81.0])
    np.testing.assert_allclose(zero["final"]["mean"], 80.5)
    np.testing.assert_allclose(zero["final"]["sd"], np.std([80.0, 81.0], ddof=1))
    np.testing.assert_allclose(zero["peak"]["values"], [82.0, 81.0])
    assert zero["peak_epoch"] == [2, 2]
    np.testing.assert_allclose(zero["final_minus_nielsen"], 80.5 - 82.23)
    np.testing.assert_allclose(reg["final"]["mean"], 86.5)
    np.testing.assert_allclose(s.gain["values"], [7.0, 5.0])  # paired by seed
    np.testing.assert_allclose(s.nielsen_gain, 86.95 - 82.23)
    assert s.seconds == 12.0


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(experiments=["medium"]), "experiments must be one of small, full; got 'medium'."),
        (dict(experiments=["full"]), "the cross-validated λ is compared with the 'small' experiment"),
        (dict(seeds=[0, 0]), "seeds must be distinct; got 0,0."),
        (dict(seeds=[-1]), "seeds must be an integer >= 0; got -1."),
    ],
)
def test_bad_options(kwargs, msg):
    with pytest.raises(ConfigError) as info:
        reproduce.nielsen("/nonexistent", **kwargs)
    assert msg in str(info.value)


def test_cli_bad_seeds(tmp_path, capsys):
    assert main(["reproduce", "nielsen", "--seeds", "0,x", "--out", str(tmp_path / "r")]) == 2
    assert "--seeds must be a comma-separated list of integers" in capsys.readouterr().err
