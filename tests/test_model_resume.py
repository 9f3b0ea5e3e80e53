"""Ctrl-C, checkpoints and ``--resume`` for your own model's sweep (``l2reg torch sweep``, ``l2reg jax sweep``).

Subprocess cases as tests/test_interrupts.py's (its helpers): a real ``l2reg`` process is stopped with
SIGINT where ``L2REG_PAUSE_AT`` holds it, says what is saved and the exact resume command (exit 130), and
that command finishes the sweep to the uninterrupted result (one reference run, in this process). In
process: ``train_ensemble`` stopped and resumed equals an uninterrupted one (torch with BatchNorm, dropout,
momentum and Adam state; JAX), and a resume refuses another command's folder and a changed option by name.
"""

import itertools
import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from jax_cache import compilation_cache  # noqa: E402, F401
from test_interrupts import SAVED, _interrupt, _resume  # noqa: E402

from l2reg.base import interrupts  # noqa: E402
from l2reg.base.checkpoint import Checkpointing  # noqa: E402
from l2reg.cli import main  # noqa: E402
from l2reg.errors import Interrupted  # noqa: E402

pytestmark = pytest.mark.usefixtures("compilation_cache")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = "from torch import nn\n\n\ndef mlp():\n    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))\n"
COMMON = ["--data", "digits", "--lmbda", "0,1", "--epochs", "2", "--folds", "2", "--strategy", "vmap", "-q"]
JAX = ["jax", "sweep", f"{EXAMPLES}/jax_models.py:linen_mlp", *COMMON]
CV, REFIT = ("checkpoint-cv.npz",), ("checkpoint-cv.npz", "checkpoint-refit.npz")

# One torch sweep stopped at each moment in turn, each time by its own resume command: (phase where SIGINT
# comes, what the line says first, the files it says are saved).
CHAIN = [
    ("step", "stopped in epoch 1 of 2, after 1 of its 9 steps.", CV),  # within the first CV epoch
    ("epoch", "stopped after epoch 1 of 2.", CV),  # the end of a CV epoch
    ("refit", "stopped at 'refit'.", CV),  # between the two stages
    ("step", "stopped in epoch 1 of 2, after 1 of its 17 steps.", REFIT),  # within the refit's first epoch
    ("report", "stopped at 'report'.", REFIT),  # writing the folder: the checkpoints stay
]


@pytest.fixture(scope="module")
def torch_argv(tmp_path_factory):
    """``l2reg torch sweep`` of a tiny MLP (a factory file of its own: the subprocesses import it)."""
    factory = tmp_path_factory.mktemp("factory") / "tiny.py"
    factory.write_text(TINY)
    return ["torch", "sweep", f"{factory}:mlp", *COMMON]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, torch_argv):
    """The uninterrupted torch and jax sweeps, in this process."""
    root = tmp_path_factory.mktemp("reference")
    for name, argv in (("torch", torch_argv), ("jax", JAX)):
        assert main(argv + ["--out", str(root / name)]) == 0
    return root


def _same_sweep(folder: Path, reference: Path) -> None:
    got, want = (json.loads((f / "sweep.json").read_text()) for f in (folder, reference))
    assert got["chosen_lmbda"] == want["chosen_lmbda"]
    assert [r.keys() for r in got["rows"]] == [r.keys() for r in want["rows"]]
    for a, b in zip(got["rows"], want["rows"]):
        for key in a:
            np.testing.assert_allclose(np.float64(a[key]), np.float64(b[key]), rtol=1e-5, atol=1e-7, err_msg=key)
    with np.load(folder / "params.npz") as g, np.load(reference / "params.npz") as w:
        assert g.files == w.files
        for key in w.files:
            np.testing.assert_allclose(g[key], w[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_torch_sweep_stopped_while_loading_its_data_saves_nothing(torch_argv, tmp_path):
    line = _interrupt(torch_argv, "data", tmp_path)
    assert line == "interrupted: stopped at 'data'. Nothing was saved yet; run the same command again to start over."
    assert not any(tmp_path.iterdir())


def test_torch_sweep_stopped_at_every_moment_resumes_to_the_same_result(reference, torch_argv, tmp_path):
    argv = torch_argv
    for phase, says, saved in CHAIN:
        line = _interrupt(argv, phase, tmp_path)
        assert line.startswith(f"interrupted: {says}"), (phase, line)
        m = SAVED.search(line)
        assert m and m["files"].split(", ") == list(saved), line
        argv = shlex.split(m["command"])[1:] + ["-q"]
        assert argv[:3] == ["torch", "sweep", "--resume"], line
    _same_sweep(_resume(line, tmp_path, "torch", saved, command_words=2), reference / "torch")


def test_jax_sweep_stopped_in_an_epoch_resumes_to_the_same_result(reference, tmp_path, capsys):
    """In process (its programs compiled once): the same flow as the torch sweep's, through the same CLI code."""
    folder = tmp_path / "run"
    capsys.readouterr()
    with _ctrl_c_at("step"):  # 9 steps an epoch, in compiled calls of 3
        assert main(JAX + ["--out", str(folder)]) == 130
    assert capsys.readouterr().err.strip() == (
        f"interrupted: stopped in epoch 1 of 2, after 3 of its 9 steps. Saved in {folder}: checkpoint-cv.npz. "
        f"Resume with: l2reg jax sweep --resume {folder}")
    assert main(["jax", "sweep", "--resume", str(folder), "-q"]) == 0
    assert f"Resuming {folder} from cross-validation epoch 1 of 2, after 3 of its 9 steps." in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["params.npz", "report.html", "sweep.json"]
    _same_sweep(folder, reference / "jax")


def test_a_finished_run_is_left_alone_and_other_commands_folders_are_refused(reference, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(reference / "torch", folder)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert main(["torch", "sweep", "--resume", str(folder)]) == 0
    assert capsys.readouterr().err.strip() == f"{folder} is already complete (sweep.json); nothing to resume."
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    for command, says in ((["jax", "sweep"], "holds a finished l2reg torch sweep, not an l2reg jax sweep."),
                          (["sweep"], "holds a finished l2reg torch sweep, not an l2reg sweep.")):
        assert main(command + ["--resume", str(folder)]) == 2
        assert capsys.readouterr().err.strip().endswith(says)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, torch_argv):
    """A torch sweep stopped after its first CV epoch (in process): its folder."""
    folder = tmp_path_factory.mktemp("stopped") / "run"
    with _ctrl_c_at("epoch"):
        assert main(torch_argv + ["--out", str(folder)]) == 130
    return folder


@pytest.mark.parametrize("argv, says", [
    (["--lmbda", "0,2"], "cannot resume: option lmbda differs (checkpoint has [0.0, 1.0], this run has [0.0, 2.0])."),
    (["--epochs", "3"], "cannot resume: option epochs differs (checkpoint has 2, this run has 3)."),
    ([f"{EXAMPLES}/models.py:digits_cnn"], "cannot resume: option model differs"),
])
def test_a_changed_option_is_refused_by_name(stopped, argv, says, capsys):
    assert main(["torch", "sweep", "--resume", str(stopped), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {says}"), err


@pytest.mark.parametrize("command", [["jax", "sweep"], ["sweep"], ["train"]], ids=" ".join)
def test_other_commands_refuse_the_folder_naming_its_resume_command(stopped, command, capsys):
    assert main([*command, "--resume", str(stopped), "-q"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {stopped} holds an interrupted l2reg torch sweep; resume it "
                                               f"with: l2reg torch sweep --resume {stopped}")


# ---------------------------------------------------------------- train_ensemble in process


class _ctrl_c_at:
    """Ctrl-C at the ``n``-th safe point ``name`` (``step``: after a step, ``epoch``: after an epoch)."""

    def __init__(self, name: str, n: int = 1):
        self.name, self.n = name, n

    def __enter__(self):
        self.real, seen = interrupts.pause_point, itertools.count(1)

        def pause(name):
            if name == self.name and next(seen) == self.n:
                interrupts._requested.set()

        interrupts.pause_point = pause

    def __exit__(self, *exc):
        interrupts.pause_point = self.real
        interrupts._requested.clear()


def bn_dropout_mlp():
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))


def _data():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(91, 6)).astype(np.float32), rng.integers(0, 3, 91)
    return X, y, [(np.arange(0, 60), np.arange(60, 91)), (np.arange(30, 91), np.arange(0, 30))]


def _stopped_and_resumed(train, model_fn, X, y, path, at: tuple, **kw):
    with _ctrl_c_at(*at), pytest.raises(Interrupted) as stop:
        train(model_fn, X, y, **kw, checkpoint=Checkpointing(path, {"run": 1}))
    return stop.value, train(model_fn, X, y, **kw, checkpoint=Checkpointing(path, {"run": 1}, resume=True))


def _same_ensemble(got, want) -> None:
    for k, sd in enumerate(want.state_dicts):
        for name, a in sd.items():
            np.testing.assert_allclose(got.state_dicts[k][name], a, rtol=1e-5, atol=1e-6, err_msg=name)
    for name in want.history:
        np.testing.assert_allclose(got.history[name], want.history[name], rtol=1e-5, err_msg=name)


# 4 steps per epoch here; "step" comes after every step of an epoch but its last
@pytest.mark.parametrize("optimizer, at, says", [
    ("momentum", ("step", 4), "stopped in epoch 2 of 3, after 1 of its 4 steps."),  # within an epoch
    ("adam", ("step", 2), "stopped in epoch 1 of 3, after 2 of its 4 steps."),
    ("adam", ("epoch", 2), "stopped after epoch 2 of 3."),  # at an epoch's end
])
def test_torch_train_ensemble_stopped_and_resumed_equals_one_run(tmp_path, optimizer, at, says):
    from l2reg.torch import Member, train_ensemble

    X, y, folds = _data()
    kw = dict(members=[Member(lmbda=v, eta=0.01, fold=f) for f in range(2) for v in (0.0, 5.0)], folds=folds,
              epochs=3, batch_size=16, optimizer=optimizer, seed=3, strategy="vmap")
    stop, got = _stopped_and_resumed(train_ensemble, bn_dropout_mlp, X, y, tmp_path / "c.npz", at, **kw)
    assert str(stop) == says
    _same_ensemble(got, train_ensemble(bn_dropout_mlp, X, y, **kw))


def test_jax_train_ensemble_stopped_and_resumed_equals_one_run(tmp_path):
    import sys

    sys.path.insert(0, str(EXAMPLES))
    from jax_models import linen_mlp  # dropout: a key per member and step

    from l2reg.jax import Member, train_ensemble

    rng = np.random.default_rng(0)
    X, y = rng.random((120, 64), np.float32), rng.integers(0, 10, 120)
    kw = dict(members=[Member(lmbda=v, eta=0.05, fold=f) for f in range(2) for v in (0.0, 5.0)],
              folds=[(np.arange(0, 80), np.arange(80, 120)), (np.arange(40, 120), np.arange(0, 40))], epochs=2,
              batch_size=16, optimizer="momentum", seed=3, strategy="vmap")
    stop, got = _stopped_and_resumed(train_ensemble, linen_mlp, X, y, tmp_path / "c.npz", ("step", 2), **kw)
    assert str(stop) == "stopped in epoch 1 of 2, after 2 of its 5 steps."
    _same_ensemble(got, train_ensemble(linen_mlp, X, y, **kw))
