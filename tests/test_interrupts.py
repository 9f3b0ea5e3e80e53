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
nothing was saved and the working folder is still empty.

The uninterrupted references run in this process and fill a compilation
cache that the subprocesses share (so they load, rather than compile, the
same executables).
"""

import json
import os
import re
import shlex
import shutil
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

# (command, phase, what the line says first, the files it says are saved): the phase is where L2REG_PAUSE_AT
# stops the process (src: interrupts.phase, pause_point). "sweep-refit" is a sweep stopped at 'refit' and
# resumed: its first epoch is the refit's (the resumed cross-validation has none left), which a fresh sweep
# cannot pause at.
AFTER_EPOCH = "stopped after epoch 1 of 3."
TRAIN_SAVED, CV_SAVED = ("checkpoint.npz",), ("checkpoint-cv.npz",)
CASES = [
    ("train", "import", "stopped while starting; nothing was saved.", ()),
    ("train", "options", "stopped at 'options'.", ()),
    ("train", "data", "stopped at 'data'.", ()),
    ("train", "compile", "stopped at 'compile'.", ()),
    ("train", "epoch", AFTER_EPOCH, TRAIN_SAVED),  # after the epoch's numbers: its checkpoint is still written
    ("train", "checkpoint", AFTER_EPOCH, TRAIN_SAVED),  # just before the checkpoint write, which completes
    ("sweep", "data", "stopped at 'data'.", ()),
    ("sweep", "compile", "stopped at 'compile'.", ()),  # the cross-validation stack, the first to compile
    ("sweep", "epoch", AFTER_EPOCH, CV_SAVED),  # an epoch of the cross-validation
    ("sweep", "refit", "stopped at 'refit'.", CV_SAVED),  # between the two stages
    ("sweep-refit", "epoch", AFTER_EPOCH, CV_SAVED + ("checkpoint-refit.npz",)),  # an epoch of the refit
    # writing the folder: the report is not drawn, nor the JSON written; the checkpoints stay for --resume
    ("train", "report", "stopped at 'report'.", TRAIN_SAVED),
    ("sweep", "results", "stopped at 'results'.", CV_SAVED + ("checkpoint-refit.npz",)),
    ("explain", "compile", "stopped at 'compile'.", ()),
    ("explain", "epoch", AFTER_EPOCH, ()),  # explain keeps no checkpoint
]


def _env(pause: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "L2REG_PAUSE_AT"}
    env.update(JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    if pause is not None:
        env["L2REG_PAUSE_AT"] = pause
    return env


def _interrupt(argv: list, phase: str, cwd: Path) -> str:
    """Run ``l2reg argv`` in ``cwd``, SIGINT it at ``phase``; check the common contract, return its one line."""
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
    return lines[0]


def _resume(line: str, cwd: Path, command_name: str, saved: tuple, command_words: int = 1) -> Path:
    """Check that ``line`` names the ``saved`` files, which are all there is, and run its resume command as
    given (``l2reg`` and ``command_words`` words, ``l2reg torch sweep``: 2); returns the run's folder."""
    m = SAVED.search(line)
    assert m and m["files"].split(", ") == list(saved), line
    folder = cwd / m["folder"]
    written = {"params.npz", "report.html"}  # a run stopped while its folder was written: never its JSON
    assert set(saved) <= {p.name for p in folder.iterdir()} <= set(saved) | written
    command = shlex.split(m["command"])
    assert command[:1] == ["l2reg"] and command[1] == command_name and command[-2] == "--resume", line
    assert len(command) == 3 + command_words, line
    done = subprocess.run(L2REG + command[1:], cwd=cwd, env=_env(), check=False, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert f"Resuming {m['folder']} from " in done.stderr, done.stderr
    stopped = re.search(r"after epoch (\d+ of \d+)\.", line)
    if stopped:  # it continues where it stopped: "... from [the refit ]epoch 1 of 3."
        assert re.search(rf"from (\w[\w-]* )*epoch {stopped[1]}\.", done.stderr), (line, done.stderr)
    assert not list(folder.glob("checkpoint*.npz"))  # a finished run keeps none by default
    return folder


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
def references(tmp_path_factory, compilation_cache):  # noqa: F811
    """The uninterrupted runs, in this process (filling the shared compilation cache)."""
    root = tmp_path_factory.mktemp("reference")
    for command in ("train", "sweep"):
        assert main(ARGV[command] + ["--out", str(root / command)]) == 0
    return root


@pytest.fixture(scope="module")
def sweep_at_refit(tmp_path_factory, references):
    """A sweep interrupted between its stages: (working folder, its one line)."""
    cwd = tmp_path_factory.mktemp("at-refit")
    return cwd, _interrupt(SWEEP, "refit", cwd)


def _stop(request, cwd: Path, command: str, phase: str) -> str:
    """Interrupt case (command, phase) in ``cwd`` (created here); its one line."""
    if command == "sweep" and phase == "refit":  # the module's one, copied
        at_refit, line = request.getfixturevalue("sweep_at_refit")
        shutil.copytree(at_refit, cwd)
        return line
    if command == "sweep-refit":
        shutil.copytree(request.getfixturevalue("sweep_at_refit")[0], cwd)
        folder = next((cwd / "runs").iterdir())
        return _interrupt(["sweep", "--resume", str(folder.relative_to(cwd)), "-q"], phase, cwd)
    cwd.mkdir()
    return _interrupt(ARGV[command], phase, cwd)


@pytest.mark.parametrize("command,phase,says,saved", CASES, ids=[f"{c}-{p}" for c, p, *_ in CASES])
def test_ctrl_c_exits_130_with_one_line_and_a_resume_that_works(request, tmp_path, references, command, phase,
                                                               says, saved):
    cwd = tmp_path / "work"
    line = _stop(request, cwd, command, phase)
    assert line.startswith(f"interrupted: {says}"), line
    if not saved:
        assert "nothing was saved" in line.lower(), line
        assert not any(cwd.iterdir()), sorted(cwd.rglob("*"))
        return
    assert "nothing was saved" not in line.lower(), line
    folder = _resume(line, cwd, command.split("-")[0], saved)
    if command == "train":
        _same_train(folder, references / "train")
    else:
        _same_sweep(folder, references / "sweep")


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
