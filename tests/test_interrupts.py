"""Ctrl-C at every moment (issue 13): SIGINT sent to a real ``l2reg`` process at each phase.

Each case starts the console script's module (``python -m l2reg._entry``)
in a fresh working folder, without ``--out`` (so the default
``runs/COMMAND-TIME`` folder is what would appear), with
``L2REG_PAUSE_AT=<phase>``: the process announces the phase on stderr and
waits there, and the test sends SIGINT. Always: exit 130, no traceback,
nothing on stdout, and exactly one stderr line besides the marker and the
acknowledgement that Ctrl-C printed at once, starting ``interrupted: ``. It names what is saved and the resume command, and running
that exact command finishes the run to the uninterrupted result (train:
``params.npz`` bit for bit; sweep: the same rows and chosen λ), or it says
nothing was saved and the working folder is still empty. The phases that
save something are taken in one run per command, as tests/test_model_resume.py's
torch chain: stopped at the first, its resume command (which must say where it
goes on from) stopped at the next, and so on; the last resume finishes it.

The uninterrupted references run in this process and fill a compilation
cache that the subprocesses share (so they load, rather than compile, the
same executables).
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax_cache import compilation_cache  # noqa: F401

from l2reg.base import interrupts
from l2reg.cli import main

pytestmark = pytest.mark.usefixtures("compilation_cache")

L2REG = [sys.executable, "-m", "l2reg._entry"]
TRAIN = ["train", "--train-size", "200", "--epochs", "3", "--lmbda", "0,1", "-q"]
SWEEP = ["sweep", "--train-size", "200", "--epochs", "3", "--lmbda", "0,1", "--folds", "2", "-q"]
EXPLAIN = ["explain", "--train-size", "200", "--epochs", "3", "--lmbda", "1", "-q"]
ARGV = {"train": TRAIN, "sweep": SWEEP, "explain": EXPLAIN}
SAVED = re.compile(r"Saved in (?P<folder>\S+): (?P<files>.+)\. Resume with: (?P<command>l2reg .+)$")
TIMEOUT = 180  # a subprocess on a loaded machine; a pause alone gives up after 60 s

# (command, phase, what the line says first): a fresh run stopped at the phase (src: interrupts.phase,
# pause_point) saves nothing, and the working folder stays empty.
NOTHING_SAVED = [
    ("train", "import", "stopped while starting; nothing was saved."),
    ("train", "options", "stopped at 'options'."),
    ("train", "data", "stopped at 'data'."),
    ("train", "compile", "stopped at 'compile'."),
    ("sweep", "data", "stopped at 'data'."),
    ("sweep", "compile", "stopped at 'compile'."),  # the cross-validation stack, the first to compile
    ("explain", "compile", "stopped at 'compile'."),
    ("explain", "epoch", "stopped after epoch 1 of 3."),  # explain keeps no checkpoint
]
# command: [(phase, what the line says first, the files it says are saved)], in the order one run meets them:
# the fresh run stopped at the first, each resume stopped at the next (3 epochs: the train run's epoch 1 and its
# resume's epoch 2; the sweep's first CV epoch, then the refit's first epoch).
TRAIN_SAVED, CV_SAVED = ("checkpoint.npz",), ("checkpoint-cv.npz",)
REFIT_SAVED = CV_SAVED + ("checkpoint-refit.npz",)
CHAINS = {
    "train": [
        ("epoch", "stopped after epoch 1 of 3.", TRAIN_SAVED),  # after the epoch's numbers: its checkpoint too
        ("checkpoint", "stopped after epoch 2 of 3.", TRAIN_SAVED),  # just before the checkpoint write, which completes
        # writing the folder: the report is not drawn, nor the JSON written; the checkpoints stay for --resume
        ("report", "stopped at 'report'.", TRAIN_SAVED),
    ],
    "sweep": [
        ("epoch", "stopped after epoch 1 of 3.", CV_SAVED),  # an epoch of the cross-validation
        ("refit", "stopped at 'refit'.", CV_SAVED),  # between the two stages
        ("epoch", "stopped after epoch 1 of 3.", REFIT_SAVED),  # an epoch of the refit
        ("results", "stopped at 'results'.", REFIT_SAVED),
    ],
}


def _env(pause: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "L2REG_PAUSE_AT"}
    env.update(JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    if pause is not None:
        env["L2REG_PAUSE_AT"] = pause
    return env


def _interrupt(argv: list, phase: str, cwd: Path, after: str | None = None) -> str:
    """Run ``l2reg argv`` in ``cwd``, SIGINT it at ``phase``; check the common contract, return its one line.
    ``after``: the line that stopped the run this resumes; its note must say it goes on from there."""
    proc = subprocess.Popen(L2REG + argv, cwd=cwd, env=_env(phase), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    before = []
    try:
        for line in proc.stderr:  # blocks until the marker (or the end, if the phase never comes)
            if line.strip() == f"[l2reg: at {phase}]":
                break
            before.append(line)
        else:
            proc.wait(timeout=TIMEOUT)
            pytest.fail(f"never reached '{phase}' (exit {proc.returncode}): {''.join(before)}")
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(before) + rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert out == "", out
    # A resume first says where it continues from: the one note allowed besides the line.
    assert interrupts.ACKNOWLEDGED in err, err  # said at once
    lines = [line for line in err.splitlines() if line.strip() and line != interrupts.ACKNOWLEDGED and not (
        "--resume" in argv and line.startswith("Resuming "))]
    assert len(lines) == 1 and lines[0].startswith("interrupted: "), err
    if after is not None:
        _goes_on_from(after, err)
    return lines[0]


def _goes_on_from(line: str, err: str) -> None:
    """A resume of the run that ``line`` stopped says so first, and where it continues from: "... from [the refit ]
    epoch 1 of 3." after "stopped after epoch 1 of 3."."""
    folder = SAVED.search(line)["folder"]
    assert f"Resuming {folder} from " in err, err
    stopped = re.search(r"after epoch (\d+ of \d+)\.", line)
    if stopped:
        assert re.search(rf"from (\w[\w-]* )*epoch {stopped[1]}\.", err), (line, err)


def _resume(line: str, cwd: Path, command_name: str, saved: tuple, command_words: int = 1) -> Path:
    """Check that ``line`` names the ``saved`` files, which are all there is, and run its resume command as
    given (``l2reg`` and ``command_words`` words, ``l2reg torch sweep``: 2); returns the run's folder."""
    folder, argv = _saved(line, cwd, command_name, saved, command_words)
    done = subprocess.run(L2REG + argv, cwd=cwd, env=_env(), check=False, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    _goes_on_from(line, done.stderr)
    assert not list(folder.glob("checkpoint*.npz"))  # a finished run keeps none by default
    return folder


def _saved(line: str, cwd: Path, command_name: str, saved: tuple, command_words: int = 1) -> tuple[Path, list]:
    """Check that ``line`` names the ``saved`` files, which are all there is, and its resume command; returns the
    run's folder and that command's words after ``l2reg``."""
    m = SAVED.search(line)
    assert m and m["files"].split(", ") == list(saved), line
    folder = cwd / m["folder"]
    written = {"params.npz", "report.html"}  # a run stopped while its folder was written: never its JSON
    assert set(saved) <= {p.name for p in folder.iterdir()} <= set(saved) | written
    command = shlex.split(m["command"])
    assert command[:1] == ["l2reg"] and command[1] == command_name and command[-2] == "--resume", line
    assert len(command) == 3 + command_words, line
    return folder, command[1:]


def _params(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _same_train(folder: Path, reference: Path) -> None:
    got, want = _params(folder / "params.npz"), _params(reference / "params.npz")
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    a = json.loads((folder / "metrics.json").read_text())["runs"]
    b = json.loads((reference / "metrics.json").read_text())["runs"]
    assert a == b


def _same_sweep(folder: Path, reference: Path) -> None:
    got = json.loads((folder / "sweep.json").read_text())
    want = json.loads((reference / "sweep.json").read_text())
    assert got["chosen_lmbda"] == want["chosen_lmbda"]
    assert got["rows"] == want["rows"]  # bit for bit (JSON floats round-trip exactly)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, compilation_cache):  # noqa: F811
    """The uninterrupted run of a command, in this process at its first use (filling the shared compilation
    cache that the subprocesses then load from): its folder."""
    root = tmp_path_factory.mktemp("reference")

    def run(command: str) -> Path:
        if not (root / command).exists():
            assert main(ARGV[command] + ["--out", str(root / command)]) == 0
        return root / command

    return run


@pytest.mark.parametrize("command,phase,says", NOTHING_SAVED, ids=[f"{c}-{p}" for c, p, _ in NOTHING_SAVED])
def test_ctrl_c_before_anything_is_saved_exits_130_and_leaves_the_folder_empty(tmp_path, command, phase, says):
    """Stopped before anything is saved: the line says so, and the working folder is still empty."""
    line = _interrupt(ARGV[command], phase, tmp_path)
    assert line.startswith(f"interrupted: {says}"), line
    assert "nothing was saved" in line.lower(), line
    assert not any(tmp_path.iterdir()), sorted(tmp_path.rglob("*"))


@pytest.mark.parametrize("command", CHAINS)
def test_ctrl_c_at_every_saving_phase_resumes_to_the_uninterrupted_result(tmp_path, reference, command):
    """One run stopped at each phase that saves something in turn (see CHAINS), each stop by its resume command;
    every stop keeps the contract, and the last resume gives the uninterrupted run's result."""
    want = reference(command)
    argv, after = ARGV[command], None
    for phase, says, saved in CHAINS[command]:
        line = _interrupt(argv, phase, tmp_path, after)
        assert line.startswith(f"interrupted: {says}"), (phase, line)
        assert "nothing was saved" not in line.lower(), line
        _, argv = _saved(line, tmp_path, command, saved)
        argv, after = argv + ["-q"], line
    folder = _resume(line, tmp_path, command, saved)
    (_same_train if command == "train" else _same_sweep)(folder, want)


# A stand-in for a long step that does not look at the flag (XLA compiling, say): Ctrl-C only sets the
# flag there; a second Ctrl-C must not wait for the next safe point.
_BUSY = """
import sys, time
from l2reg.base import interrupts
interrupts.install()
print("ready", flush=True)
while not interrupts.requested():
    time.sleep(0.01)
print("busy", flush=True)
time.sleep(120)
print("not stopped", flush=True)
"""


@pytest.fixture
def busy():
    """A process busy in a long step, past its first Ctrl-C (the flag is taken, it goes on)."""
    proc = subprocess.Popen([sys.executable, "-c", _BUSY], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline() == "busy\n"  # the first Ctrl-C was taken, the process goes on
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_a_second_ctrl_c_exits_130_at_once(busy):
    busy.send_signal(signal.SIGINT)
    out, err = busy.communicate(timeout=60)  # well before the 120 s step ends
    assert busy.returncode == 130
    assert out == "" and err.split() == (interrupts.ACKNOWLEDGED + " " + interrupts.STOPPED_AT_ONCE).split(), (out, err)


def test_the_first_ctrl_c_is_acknowledged_at_once(busy):
    """The acknowledgement comes from a thread, not from the next safe point: while the main thread is busy."""
    assert busy.stderr.readline().strip() == ""  # the line starts on a fresh line
    assert busy.stderr.readline().strip() == interrupts.ACKNOWLEDGED
