"""The command line: a real run, and one-line errors with exit code 2 for bad input."""

import json
import numpy as np
import pytest

from l2reg.cli import main

SMALL = ["--epochs", "2", "--train-size", "200", "-q"]


def test_train_writes_metrics_and_params(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--lmbda", "0,1", "--out", str(out), "--epochs", "2", "--train-size", "200"]) == 0
    captured = capsys.readouterr()
    assert "λ" in captured.out and "validation acc" in captured.out
    meta = json.loads((out / "metrics.json").read_text())
    assert [r["lmbda"] for r in meta["runs"]] == [0.0, 1.0]
    assert len(meta["runs"][0]["evaluation_accuracy"]) == 2
    with np.load(out / "params.npz", allow_pickle=False) as z:
        assert z["w0"].shape == (2, 64, 30)


def test_refuses_to_overwrite_a_previous_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--out", str(out)]) == 0
    assert main(["train", *SMALL, "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", *SMALL, "--out", str(out), "--overwrite"]) == 0


def test_help_lists_the_options(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--lmbda" in text and "--eta" in text


BAD = [
    (["--lmbda", "-1"], "lmbda must be a finite number >= 0; got -1.0."),
    (["--lmbda", "nan"], "lmbda must be a finite number >= 0; got nan."),
    (["--lmbda", "0,,1"], "--lmbda must be a comma-separated list of numbers"),
    (["--lmbda", "abc"], "--lmbda must be a comma-separated list of numbers"),
    (["--eta", "0"], "eta must be a finite number > 0; got 0.0."),
    (["--eta", "-0.5"], "eta must be a finite number > 0"),
    (["--eta", "inf"], "eta must be a finite number > 0"),
    (["--eta", "abc"], "--eta must be a comma-separated list of numbers"),
    (["--optimizer", "rmsprop"], "optimizer must be one of sgd, momentum, nesterov, adam, adamw, lbfgs"),
    (["--weight-decay", "0.1"], "weight_decay (decoupled) applies to optimizer 'adamw'"),
    (["--penalty", "l1", "--lmbda-per-layer", "1,2,3"], "lmbda_per_layer must give one λ per weight layer"),
    (["--early-stopping", "--eval", "test"], "early_stopping needs eval='validation'"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1; got 0."),
    (["--batch-size", "100000"], "batch_size must be an integer between 1 and 200"),
    (["--epochs", "0"], "epochs must be an integer >= 1"),
    (["--sizes", "784,30,10"], "do not fit the data"),
    (["--dataset", "cifar10"], "unknown dataset 'cifar10'"),
    (["--dataset", "missing.npz"], "missing.npz"),
    (["--train-size", "0"], "train_size"),
    (["--eval", "train"], "eval must be"),
    (["--seeds", "0,x"], "--seed must be a comma-separated list of integers"),
    (["--cost", "hinge"], "cost must be one of"),
    (["--monitor", "loss"], "monitor must be one of"),
    (["--no-such-option"], "No such option"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    argv = ["train", "--epochs", "1", "--train-size", "200", "--out", str(out), *args]
    if "--train-size" in args:
        argv = ["train", "--epochs", "1", "--out", str(out), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert message in err
    assert not (out / "metrics.json").exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["train", *SMALL, "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_unwritable_out_is_refused(tmp_path, capsys):
    # A folder below a file cannot be created, even by root (CI runs as root).
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["train", *SMALL, "--out", str(f / "sub")]) == 2
    assert "is not writable" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sweep", "explain"])
def test_help_says_one_seed_and_one_momentum_where_lists_are_refused(command):
    """sweep and explain refuse a list of seeds or momenta: their --help says one value, not "or a list"."""
    from typer.testing import CliRunner

    import l2reg.cli as cli

    text = " ".join(CliRunner().invoke(cli.app, [command, "--help"]).output.replace("│", " ").split())
    for option in ("--seed", "--momentum"):
        entry = text.split(f" {option} ", 1)[1].split(" --", 1)[0]
        assert "one value" in entry and "or a list" not in entry, (option, entry)


@pytest.mark.parametrize("argv,message", [
    (["sweep", "--seed", "0,1"], "a sweep takes one seed"),
    (["sweep", "--optimizer", "momentum", "--momentum", "0.1,0.2"], "momentum must be one number in a sweep"),
    (["explain", "--seed", "0,1"], "explain takes one seed"),
])
def test_one_value_options_refuse_lists_in_one_line(argv, message, capsys, tmp_path):
    assert main(argv + ["--epochs", "1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


# ---------------------------------------------------------------- issue 24: data options


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    """Digits as a CSV with string labels in a 'target' column, as (n, 1) integer labels, and raw (0–16)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    root = tmp_path_factory.mktemp("files")
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    lines = [",".join(f"p{i}" for i in range(64)) + ",target"]
    lines += [",".join(f"{v:g}" for v in xi) + f",{names[yi]}" for xi, yi in zip(X / 16, y)]
    (root / "str.csv").write_text("\n".join(lines) + "\n")
    np.savez(root / "column.npz", X=X / 16, y=y.reshape(-1, 1))
    np.savez(root / "raw.npz", X=X, y=y)
    return root


def test_label_column_and_string_labels_on_the_cli(digits_files, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["train", "--dataset", str(digits_files / "str.csv"), "--label-column", "target", "--epochs", "1",
                 "--lmbda", "0", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "classification with 10 classes (labels 'eight' → 0" in " ".join(text.split())
    assert main(["train", "--dataset", str(digits_files / "str.csv"), "--epochs", "1", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "no label column 'label' (name it with --label-column" in err and err.count("\n") == 1


def test_label_column_is_refused_for_a_builtin_dataset(capsys, tmp_path):
    assert main(["sweep", "--label-column", "target", "--out", str(tmp_path / "o")]) == 2
    assert "label_column applies to a .csv dataset" in capsys.readouterr().err


def test_integer_labels_of_shape_n_by_1_are_named_as_such(digits_files, capsys, tmp_path):
    assert main(["train", "--dataset", str(digits_files / "column.npz"), "--epochs", "1",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "y has shape (n, 1)" in err and "y.ravel()" in err and "real-valued targets need" not in err


def test_raw_features_get_a_one_line_hint_and_standardize_removes_it(digits_files, caplog, tmp_path):
    import logging

    with caplog.at_level(logging.WARNING):
        assert main(["train", "--dataset", str(digits_files / "raw.npz"), "--epochs", "1", "--lmbda", "0", "-q",
                     "--out", str(tmp_path / "raw")]) == 0
    hints = [r.getMessage() for r in caplog.records if "far outside [0, 1]" in r.getMessage()]
    assert len(hints) == 1 and "from 0 to 16" in hints[0] and "\n" not in hints[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--dataset", str(digits_files / "raw.npz"), "--epochs", "1", "--lmbda", "0", "-q",
                     "--standardize", "--out", str(tmp_path / "z")]) == 0
    assert not [r for r in caplog.records if "far outside" in r.getMessage()]
    config = json.loads((tmp_path / "z" / "metrics.json").read_text())["config"]
    assert config["standardize"] is True
