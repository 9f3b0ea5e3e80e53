"""The catalogue of bad inputs (issue 7): each is one clear line on stderr and exit code 2,
never a traceback, and nothing is written half-way."""

import gzip
import struct

import numpy as np
import pytest

import l2reg
from l2reg.cli import main

TRAIN = ["train", "--epochs", "1", "--train-size", "100", "-q"]
SWEEP = ["sweep", "--epochs", "1", "--train-size", "100", "--folds", "2", "-q"]


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
    (TRAIN + ["--lmbda", "-1"], "lmbda must be a finite number >= 0; got -1.0."),
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
    (TRAIN + ["--sizes", "784,30,10"], "do not fit the data"),
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
]


@pytest.mark.parametrize("argv,message", CASES, ids=[" ".join(a[1 if a[0] != "train" else 0 :]) for a, _ in CASES])
def test_bad_input_gives_one_line_and_exit_2(files, tmp_path, capsys, argv, message):
    for name, path in files.items():
        argv = [a.replace("{" + name + "}", str(path)) for a in argv]
    if "--out" not in argv and argv[0] in ("train", "sweep", "explain"):
        argv += ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert message in err, err
    out = tmp_path / "out"
    assert not out.exists() or not any(p.suffix in (".json", ".npz", ".html") for p in out.iterdir())


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
