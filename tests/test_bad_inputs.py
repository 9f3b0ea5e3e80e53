"""The catalogue of bad inputs (issues 7 and 13): each is one clear line on stderr and exit code 2,
never a traceback, and no file or folder is created or changed anywhere.

Each case runs in a fresh working folder without ``--out`` (so a default
``runs/COMMAND-TIME`` folder would show up there), with this module's
(warm) download cache; the listing of the working folder, the cache, the
data files and the runs that ``--resume`` points at (with every file's size
and modification time) is compared before and after.
"""

import gzip
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import l2reg
from l2reg.cli import main
from l2reg.data import load_dataset

TRAIN = ["train", "--epochs", "1", "--train-size", "100", "-q"]
SWEEP = ["sweep", "--epochs", "1", "--train-size", "100", "--folds", "2", "-q"]
EXPLAIN = ["explain", "--epochs", "1", "--train-size", "100", "-q"]


def _idx(magic_dims: tuple, shape: tuple, data: bytes) -> bytes:
    dtype_code, ndim = magic_dims
    return struct.pack(">HBB", 0, dtype_code, ndim) + b"".join(struct.pack(">I", d) for d in shape) + data


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    f = {}
    f["empty.npz"] = d / "empty.npz"
    f["empty.npz"].write_bytes(b"")
    np.savez(d / "wrongkey.npz", features=np.zeros((5, 3)), y=np.zeros(5))
    f["wrongkey.npz"] = d / "wrongkey.npz"
    np.savez(d / "object.npz", X=np.array([object()] * 4, dtype=object), y=np.zeros(4))
    f["object.npz"] = d / "object.npz"
    np.savez(d / "nan.npz", X=np.full((6, 2), np.nan), y=np.zeros(6, int))
    f["nan.npz"] = d / "nan.npz"
    np.savez(d / "rows.npz", X=np.zeros((6, 2)), y=np.zeros(5, int))
    f["rows.npz"] = d / "rows.npz"
    rng = np.random.default_rng(0)
    np.savez(d / "label12.npz", X=rng.random((40, 64)), y=np.r_[np.arange(10).repeat(3), [12] * 10])
    f["label12.npz"] = d / "label12.npz"
    np.savez(d / "negative.npz", X=rng.random((40, 4)), y=np.r_[np.zeros(39, int), [-1]])
    f["negative.npz"] = d / "negative.npz"
    (d / "nolabel.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    f["nolabel.csv"] = d / "nolabel.csv"
    (d / "text.csv").write_text("a,b,label\n1,2,0\n4,oops,1\n")
    f["text.csv"] = d / "text.csv"
    (d / "empty.csv").write_text("")
    f["empty.csv"] = d / "empty.csv"
    # MNIST folders with one damaged file each (the others are irrelevant: the first read fails).
    for name, content in {
        "truncated": _idx((8, 3), (60000, 28, 28), b"\x00" * 100),
        "badmagic": _idx((8, 1), (60000,), b"\x00" * 60000),
        "empty": b"",
        "badgzip": None,
    }.items():
        folder = d / f"mnist-{name}"
        folder.mkdir()
        for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                     "t10k-labels-idx1-ubyte"):
            target = folder / f"{stem}.gz"
            target.write_bytes(b"\x1f\x8bnot really gzip" if content is None else gzip.compress(content))
        f[f"mnist-{name}"] = folder
    f["a-file"] = d / "a-file"
    f["a-file"].write_text("x")
    return f


# (argv, expected text in the one-line error); "{name}" is replaced by the fixture's path.
CASES = [
    # train: out of range, wrong type, NaN, inf
    (TRAIN + ["--lmbda", "nan"], "lmbda must be a finite number >= 0; got nan."),
    (TRAIN + ["--lmbda", "inf"], "lmbda must be a finite number >= 0; got inf."),
    (TRAIN + ["--lmbda", "five"], "--lmbda must be a comma-separated list of numbers"),
    (TRAIN + ["--eta", "0"], "eta must be a finite number > 0; got 0.0."),
    (TRAIN + ["--eta", "nan"], "eta must be a finite number > 0; got nan."),
    (TRAIN + ["--eta", "-inf"], "eta must be a finite number > 0"),
    (TRAIN + ["--batch-size", "0"], "batch_size must be an integer >= 1; got 0."),
    (TRAIN + ["--batch-size", "101"], "batch_size must be an integer between 1 and 100; got 101."),
    (TRAIN + ["--batch-size", "2.5"], "'--batch-size'"),
    (TRAIN + ["--epochs", "-3"], "epochs must be an integer >= 1; got -3."),
    (TRAIN + ["--sizes", "64,0,10"], "sizes must be an integer >= 1"),
    (TRAIN + ["--dataset", "cifar10"], "unknown dataset 'cifar10'"),
    (TRAIN + ["--eval", "train"], "eval must be"),
    (TRAIN + ["--init", "zeros"], "init must be one of default, large; got 'zeros'."),
    (TRAIN + ["--optimizer", "rmsprop"], "optimizer must be one of"),
    (TRAIN + ["--momentum", "1.5", "--optimizer", "momentum"], "momentum"),
    (TRAIN + ["--seeds", "0,-1"], "seed must be an integer >= 0"),
    (["train", "--epochs", "1", "-q", "--train-size", "0"], "train_size"),
    # sweep
    (SWEEP + ["--lmbdas", ""], "--lmbda must be a comma-separated list"),
    (SWEEP + ["--lmbdas", "0,-0.1"], ">= 0"),
    (SWEEP + ["--lmbdas", "0,nan"], "nan"),
    (SWEEP + ["--folds", "1"], "folds"),
    (SWEEP + ["--folds", "1000"], "folds"),
    (SWEEP + ["--select", "best"], "select"),
    (SWEEP + ["--lmbda-grid", "1:0.1:x"], "lmbda_grid must be LO:HI:K"),
    # convert and explain
    (["convert", "5", "--from", "nielsen"], "n"),
    (["convert", "5", "--from", "nielsen", "--n", "-100"], "n must be"),
    (["convert", "5", "--from", "caffe", "--n", "100"], "caffe"),
    (["explain", "--epochs", "1", "--lmbda", "-2", "-q"], "lmbda must be a finite number >= 0"),
    # data files
    (TRAIN + ["--dataset", "{empty.npz}"], "empty.npz"),
    (TRAIN + ["--dataset", "{wrongkey.npz}"], "wrongkey.npz"),
    (TRAIN + ["--dataset", "{object.npz}"], "object.npz"),
    (TRAIN + ["--dataset", "{nan.npz}"], "nan.npz"),
    (TRAIN + ["--dataset", "{rows.npz}"], "rows.npz"),
    (["train", "--epochs", "1", "-q", "--dataset", "{label12.npz}", "--sizes", "64,30,10"], "do not fit the data"),
    (TRAIN + ["--dataset", "{negative.npz}"], "-1"),
    (TRAIN + ["--dataset", "{nolabel.csv}"], "label"),
    (TRAIN + ["--dataset", "{text.csv}"], "oops"),
    (TRAIN + ["--dataset", "{empty.csv}"], "empty.csv"),
    (TRAIN + ["--dataset", "mnist", "--data-dir", "{mnist-truncated}"], "-ubyte"),
    (TRAIN + ["--dataset", "mnist", "--data-dir", "{mnist-badmagic}"], "-ubyte"),
    (TRAIN + ["--dataset", "mnist", "--data-dir", "{mnist-empty}"], "-ubyte"),
    (TRAIN + ["--dataset", "mnist", "--data-dir", "{mnist-badgzip}"], "-ubyte"),
    # output folders
    (TRAIN + ["--out", "{a-file}"], "is a file"),
    (TRAIN + ["--out", "{a-file}/sub"], "is not writable"),
    # issue 13: what a newcomer types in the first hour, for each command that trains
    *[(base + args, message) for base in (TRAIN, SWEEP, EXPLAIN) for args, message in [
        (["--lmbda", "-1"], "lmbda must be a finite number >= 0; got -1.0."),
        (["--epochs", "0"], "epochs must be an integer >= 1; got 0."),
        (["--sizes", "784,30,10"], "sizes 784,30,10 do not fit the data: the first must be 64 (features)"),
        (["--dataset", "mnsit"], "unknown dataset 'mnsit'"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent"],
         "mnist: data folder /nonexistent (from data_dir) does not exist."),
    ]],
    (EXPLAIN + ["--lmbda", "0"], "explain needs a lmbda > 0 to explain"),
    # --resume of the wrong kind of folder names the right command; a differing option is named
    (["train", "--resume", "{sweep-stopped}", "-q"],
     "{sweep-stopped} holds an interrupted l2reg sweep; resume it with: l2reg sweep --resume {sweep-stopped}"),
    (["train", "--resume", "{sweep-done}", "-q"], "{sweep-done} holds a finished l2reg sweep, not an l2reg train."),
    (["sweep", "--resume", "{train-stopped}", "-q"],
     "{train-stopped} holds an interrupted l2reg train; resume it with: l2reg train --resume {train-stopped}"),
    (["sweep", "--resume", "{train-done}", "-q"], "{train-done} holds a finished l2reg train, not an l2reg sweep."),
    (["train", "--resume", "{train-stopped}", "--lmbda", "1", "-q"],
     "cannot resume: option lmbda differs (checkpoint has [0.0, 1.0], this run has [1.0])."),
    (["train", "--resume", "{train-done}", "--lmbda", "1", "-q"], "cannot resume: option lmbda differs"),
    (["train", "--resume", "{train-stopped}", "--batch-size", "5", "-q"],
     "cannot resume: option batch_size differs (checkpoint has 10, this run has 5)."),
    (["sweep", "--resume", "{sweep-stopped}", "--folds", "3", "-q"], "cannot resume: option folds differs"),
    (["train", "--resume", "{empty-folder}", "-q"], "no checkpoint there (checkpoint.npz); nothing to resume."),
]


def _fill(text: str, paths: dict) -> str:
    for name, path in paths.items():
        text = text.replace("{" + name + "}", str(path))
    return text


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The download cache of this module, warm (digits' split is cached on first use, as a download would be)."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("L2REG_CACHE", str(folder))
        mp.delenv("L2REG_DATA", raising=False)
        load_dataset("digits")
        yield folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache):
    """Run folders for --resume: a train and a sweep (lmbda 0,1), each finished and as if stopped."""
    d = tmp_path_factory.mktemp("runs")
    kept = {"train": TRAIN + ["--lmbda", "0,1"], "sweep": SWEEP + ["--lmbda", "0,1"]}
    f = {}
    for command, argv in kept.items():
        assert main(argv + ["--keep-checkpoints", "--out", str(d / "kept")]) == 0
        f[f"{command}-done"] = shutil.copytree(d / "kept", d / f"{command}-done")
        f[f"{command}-stopped"] = shutil.copytree(d / "kept", d / f"{command}-stopped")
        for p in f[f"{command}-done"].glob("checkpoint*.npz"):  # as a finished run leaves it
            p.unlink()
        for p in f[f"{command}-stopped"].iterdir():  # as if stopped before its results were written
            if not p.name.startswith("checkpoint"):
                p.unlink()
        shutil.rmtree(d / "kept")
    f["empty-folder"] = d / "empty-folder"
    f["empty-folder"].mkdir()
    return f


def _tree(*roots: Path) -> dict:
    """Every file and folder under ``roots``; a file with its size and modification time."""
    listing = {}
    for root in roots:
        for p in [root, *root.rglob("*")]:
            listing[str(p)] = None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
    return listing


@pytest.fixture
def nowhere(tmp_path, monkeypatch, files, runs, cache):
    """A fresh working folder; returns a check that nothing appeared or changed there, in the download cache,
    beside the data files or in the run folders."""
    monkeypatch.chdir(tmp_path)
    roots = (tmp_path, cache, files["a-file"].parent, runs["empty-folder"].parent)
    before = _tree(*roots)

    def unchanged():
        after = _tree(*roots)
        assert after == before, sorted(set(after.items()) ^ set(before.items()))

    return unchanged


@pytest.mark.parametrize("argv,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_gives_one_line_and_exit_2_and_creates_nothing(files, runs, nowhere, capsys, argv, message):
    paths = {**files, **runs}
    argv = [_fill(a, paths) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert _fill(message, paths) in err, err
    assert captured.out == ""
    nowhere()


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_resume_of_a_finished_run_says_so_and_rewrites_nothing(runs, nowhere, capsys, command):
    folder = runs[f"{command}-done"]
    assert main([command, "--resume", str(folder), "-q"]) == 0
    result = "metrics.json" if command == "train" else "sweep.json"
    assert capsys.readouterr().err.strip() == f"{folder} is already complete ({result}); nothing to resume."
    nowhere()


# Through a pipe, as a script or CI sees it (no -q: no progress bar may start either).
PIPED = [
    (["train", "--lmbda", "-1"], "error: lmbda must be a finite number >= 0; got -1.0."),
    (["sweep", "--epochs", "0"], "error: epochs must be an integer >= 1; got 0."),
    (["explain", "--dataset", "mnsit"], "error: unknown dataset 'mnsit'"),
    (["train", "--dataset", "mnist", "--data-dir", "/nonexistent"], "error: mnist: data folder /nonexistent"),
    (["train", "--sizes", "784,30,10", "--train-size", "100"], "error: sizes 784,30,10 do not fit the data"),
    (["train", "--batch-size", "2.5"], "error: Invalid value for '--batch-size'"),
    (["train", "--resume", "{sweep-stopped}"], "error: {sweep-stopped} holds an interrupted l2reg sweep"),
]


@pytest.mark.parametrize("argv,message", PIPED, ids=[" ".join(a) for a, _ in PIPED])
def test_error_is_one_line_on_a_piped_stderr(runs, nowhere, argv, message):
    argv = [_fill(a, runs) for a in argv]
    done = subprocess.run([sys.executable, "-m", "l2reg._entry", *argv], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith(_fill(message, runs)) and done.stderr.count("\n") == 1, repr(done.stderr)
    assert done.stderr.endswith("\n")
    nowhere()


_BEFORE_JAX = """
import sys
from l2reg.cli import main
code = main(sys.argv[1:])
print(code, "jax" in sys.modules)
"""


@pytest.mark.parametrize("command", ["train", "sweep", "explain"])
def test_a_bad_option_fails_before_jax_is_imported(nowhere, command):
    done = subprocess.run([sys.executable, "-c", _BEFORE_JAX, command, "--lmbda", "-1", "-q"], check=False,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout == "2 False\n", (done.stdout, done.stderr)
    assert done.stderr == "error: lmbda must be a finite number >= 0; got -1.0.\n"
    nowhere()


def test_catalogue_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    "kwargs,cli_args",
    [
        ({"lmbda": -1.0}, ["--lmbda", "-1"]),
        ({"eta": 0.0}, ["--eta", "0"]),
        ({"batch_size": 0}, ["--batch-size", "0"]),
        ({"init": "zeros"}, ["--init", "zeros"]),
        ({"dataset": "cifar10"}, ["--dataset", "cifar10"]),
    ],
)
def test_python_api_raises_the_same_messages(tmp_path, capsys, kwargs, cli_args):
    with pytest.raises((ValueError, TypeError)) as info:
        l2reg.train(**{"epochs": 1, "train_size": 100, **kwargs})
    assert isinstance(info.value, l2reg.L2RegError)
    assert main(TRAIN + cli_args + ["--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {info.value}"
