"""Checkpoints: the whole state of a K-model run in one file, written atomically.

A checkpoint is a single ``.npz`` (no pickle) holding every leaf of the
parameters and of the optimizer state, plus a JSON document (stored as a
byte array inside the same file) with the configuration, the last complete
epoch and the histories. One file means one atomic rename: a kill at any
moment leaves the previous checkpoint or the new one, never a mix.

Loading needs a *template*: the freshly initialized state of the same
configuration. Its tree structure (optax's state classes included) is reused,
and every saved leaf must match its shape and dtype, so nothing is
unpickled and nothing of a different run is silently accepted.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from . import interrupts, store

log = logging.getLogger(__name__)

FILENAME = "checkpoint.npz"
_META = "__meta__"
FORMAT = 1


def save(path, state: dict, meta: dict) -> Path:
    """Write ``state`` (a dict of pytrees of arrays) and ``meta`` (JSON) to ``path``."""
    import jax

    arrays = {}
    for name, tree in state.items():
        for i, leaf in enumerate(jax.tree.leaves(tree)):
            arrays[f"{name}/{i}"] = np.asarray(leaf)
    return save_arrays(path, arrays, meta)


def save_arrays(path, arrays: dict, meta: dict) -> Path:
    """Write named arrays and ``meta`` (JSON) to ``path`` as one checkpoint (what :func:`save` writes; a front
    without pytrees, PyTorch's, names its arrays itself)."""
    doc = {"format": FORMAT, **meta}
    arrays = dict(arrays)
    arrays[_META] = np.frombuffer(json.dumps(doc, allow_nan=True).encode(), dtype=np.uint8)
    return store.write_npz(path, arrays)


def load_arrays(path) -> tuple[dict, dict]:
    """``(arrays, meta)`` of a checkpoint written by :func:`save_arrays`: every array by name, read without
    pickle (the caller checks each against what it expects)."""
    path = Path(path)
    meta = read_meta(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files if k != _META}, meta
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e}).".replace("\n", " ")) from None


def read_meta(path) -> dict:
    """The JSON part of a checkpoint; DataError if the file is not one of ours."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if _META not in z.files:
                raise DataError(f"{path}: not an l2reg checkpoint (no metadata).")
            doc = json.loads(bytes(z[_META]).decode())
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no checkpoint there.") from None
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e}).".replace("\n", " ")) from None
    if doc.get("format") != FORMAT:
        raise DataError(f"{path}: checkpoint format {doc.get('format')!r} is not supported (expected {FORMAT}).")
    return doc


def load(path, templates: dict) -> tuple[dict, dict]:
    """Read a checkpoint into the structure of ``templates`` (name -> pytree).

    Returns ``(state, meta)``. Any missing leaf, or one whose shape or dtype
    differs from the template's, is a DataError naming it.
    """
    import jax

    path = Path(path)
    meta = read_meta(path)
    state = {}
    with np.load(path, allow_pickle=False) as z:
        for name, template in templates.items():
            leaves, treedef = jax.tree.flatten(template)
            loaded = []
            for i, ref in enumerate(leaves):
                key = f"{name}/{i}"
                if key not in z.files:
                    raise DataError(f"{path}: checkpoint lacks {key}; it was written by a different configuration.")
                try:
                    arr = z[key]
                except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                    raise DataError(f"{path}: unreadable {key} ({type(e).__name__}: {e}).".replace("\n", " ")) from None
                ref = np.asarray(ref)
                if arr.shape != ref.shape or arr.dtype != ref.dtype:
                    raise DataError(
                        f"{path}: {key} has shape {arr.shape} {arr.dtype}, expected {ref.shape} {ref.dtype}."
                    )
                loaded.append(arr)
            state[name] = jax.tree.unflatten(treedef, loaded)
    return state, meta


def check_same_config(saved: dict, current: dict, ignore=("epochs",)) -> None:
    """Refuse to resume a run of another configuration, naming the first option that differs."""
    for key in sorted(set(saved) | set(current)):
        if key in ignore:
            continue
        a, b = saved.get(key), current.get(key)
        if a != b:
            raise ConfigError(
                f"cannot resume: option {key} differs (checkpoint has {a!r}, this run has {b!r})."
            )


#: A cluster run's folder of finished blocks (:mod:`l2reg.fronts.distributed`).
BLOCKS_DIR = "blocks"


def saved_in(run_dir) -> list[Path]:
    """What a run folder holds to resume from: its ``checkpoint*.npz`` and a cluster run's ``blocks/``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    blocks = run_dir / BLOCKS_DIR
    return sorted(run_dir.glob("checkpoint*.npz")) + ([blocks] if blocks.is_dir() else [])


def remove_all(run_dir) -> list[Path]:
    """Delete a finished run's checkpoints (:func:`saved_in`); returns them."""
    import shutil

    gone = saved_in(run_dir)
    for path in gone:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return gone


#: Options a resume may change: where the cluster is does not change the result.
MAY_CHANGE = {"address"}

#: The checkpoint files of each command, and the file a finished run leaves.
FILES = {"train": (FILENAME, "metrics.json"), "sweep": ("checkpoint-cv.npz", "sweep.json"),
         "torch sweep": ("checkpoint-cv.npz", "sweep.json"), "jax sweep": ("checkpoint-cv.npz", "sweep.json")}
#: The sweeps share their files; the ``engine`` of a saved config (sweep.json's, a checkpoint's) tells which
#: command wrote it (none: ``l2reg sweep``).
ENGINES = {"torch sweep": "torch", "jax sweep": "jax"}


def _writer(command: str, config: dict) -> str:
    """The command that wrote ``config`` among those sharing ``command``'s files."""
    if FILES[command] != FILES["sweep"]:
        return command
    return next((c for c, e in ENGINES.items() if e == config.get("engine")), "sweep")


def _config_in(path: Path, command: str) -> dict:
    """The saved config of ``command``'s file ``path`` (a finished run's JSON or a checkpoint), with its
    ``command`` (a sweep's engine says which); ``{"command": command}`` where it cannot be read."""
    try:
        doc = json.loads(path.read_text()) if path.suffix == ".json" else read_meta(path)
        config = dict(doc.get("config") or {})
    except (ValueError, TypeError, AttributeError, OSError, DataError):
        config = {}
    return dict(config, command=_writer(command, config))


def _check_writer(run_dir: Path, command: str, config: dict, finished: bool) -> None:
    """Refuse a folder that another command wrote, naming it (and its resume command, if interrupted)."""
    config = config if isinstance(config, dict) else {}
    other = config.get("command") or _writer(command, config)
    if other == command:
        return
    if finished:
        raise ConfigError(f"{run_dir} holds a finished l2reg {other}, not an l2reg {command}.")
    raise ConfigError(f"{run_dir} holds an interrupted l2reg {other}; resume it with: l2reg {other} --resume {run_dir}")


class AlreadyComplete(Exception):
    """``--resume`` of a run that finished: nothing to do (not an error)."""


def _saved_options(run_dir: Path, command: str) -> tuple[dict, bool]:
    """The options a run in ``run_dir`` was started with, and whether it finished."""
    name, finished = FILES[command]
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such folder; nothing to resume.")
    if (run_dir / finished).is_file():
        try:
            doc = json.loads((run_dir / finished).read_text())
            options = dict(doc.get("options") or doc["config"])
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{run_dir / finished} is not an l2reg {command} result: {e}.") from None
        _check_writer(run_dir, command, doc.get("config") or {}, finished=True)
        return options, True
    if not (run_dir / name).is_file():
        for other, (other_name, other_finished) in FILES.items():
            if (other_name, other_finished) == (name, finished):
                continue
            if (run_dir / other_finished).is_file():
                _check_writer(run_dir, command, _config_in(run_dir / other_finished, other), finished=True)
            if (run_dir / other_name).is_file():
                _check_writer(run_dir, command, _config_in(run_dir / other_name, other), finished=False)
        raise DataError(f"{run_dir}: no checkpoint there ({name}); nothing to resume.")
    config = read_meta(run_dir / name).get("config", {})
    _check_writer(run_dir, command, config, finished=False)
    return config, False


def resume_note(run_dir) -> str:
    """Where a resume continues from, in words ("from epoch 3 of 10", per stage for a sweep)."""
    run_dir = Path(run_dir)
    stages = [("", run_dir / FILENAME), ("cross-validation ", run_dir / "checkpoint-cv.npz"),
              ("the refit ", run_dir / "checkpoint-refit.npz")]
    done = []
    for stage, path in stages:
        if path.is_file():
            meta = read_meta(path)
            if meta.get("step"):  # saved within an epoch (a model's sweep)
                done.append(f"{stage}epoch {meta['epoch'] + 1} of {meta['epochs']}, after {meta['step']} of its "
                            f"{meta['steps']} {meta.get('unit', 'step')}s")
            elif "epoch" in meta:
                done.append(f"{stage}epoch {meta['epoch']} of {meta['epochs']}")
    where = done[-1] if done else "its saved blocks"
    return f"Resuming {run_dir} from {where}."


def resume_options(run_dir, given: dict, explicit: set, *, cls, command: str):
    """The checked options to resume the ``command`` run in ``run_dir``: the saved ones, except those given
    explicitly, which must equal the saved ones (the first that differs is named, before any work).

    Raises :class:`AlreadyComplete` for a finished run, and a one-line error
    naming the right command for another command's folder.
    """
    run_dir = Path(run_dir)
    saved, finished = _saved_options(run_dir, command)
    merged = cls.from_flat({k: saved.get(k, v) if k not in explicit else v for k, v in given.items()}).checked()
    config = merged.to_config()
    for key in sorted(explicit - MAY_CHANGE):
        if key in saved and key in config and config[key] != saved[key]:
            raise ConfigError(f"cannot resume: option {key} differs (checkpoint has {saved[key]!r}, "
                              f"this run has {config[key]!r}).")
    if finished:
        raise AlreadyComplete(f"{run_dir} is already complete ({FILES[command][1]}); nothing to resume.")
    return merged


#: ``L2REG_CHECKPOINT_SECONDS``: the least time between two checkpoints (default 5 s; 0: every epoch).
CHECKPOINT_ENV = "L2REG_CHECKPOINT_SECONDS"


CHECKPOINT_SECONDS = 5.0


def checkpoint_seconds() -> float:
    """The least time between two checkpoints, from ``L2REG_CHECKPOINT_SECONDS`` (a bad value: the default)."""
    raw = os.environ.get(CHECKPOINT_ENV, "")
    try:
        value = float(raw) if raw else CHECKPOINT_SECONDS
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        log.warning("%s must be a finite number of seconds >= 0; got %r. Using %g.", CHECKPOINT_ENV, raw,
                    CHECKPOINT_SECONDS)
        return CHECKPOINT_SECONDS
    return value


@dataclass
class Checkpointing:
    """Where :func:`fit_stack` saves, with what config, and whether to resume.

    A checkpoint is written after the first epoch, then after any epoch at
    least :data:`CHECKPOINT_SECONDS` after the last one, and always after the
    last epoch, after early stopping, and when Ctrl-C asks to stop: short
    epochs (digits: milliseconds) would otherwise spend more time writing
    checkpoints than training, while a kill loses at most those seconds.
    """

    path: Path
    config: dict
    resume: bool = False
    last: float | None = None  # monotonic time of the last save
    started: float | None = None  # monotonic time training started (:meth:`start`)
    every: float = CHECKPOINT_SECONDS  # checkpoint_seconds(), read once by :meth:`start`

    def due(self, final: bool) -> bool:
        return (final or self.last is None or interrupts.requested()
                or time.monotonic() - self.last >= checkpoint_seconds())

    def start(self) -> None:
        self.started, self.every = time.monotonic(), checkpoint_seconds()

    def due_within_epoch(self) -> bool:
        """Between two steps of an epoch (a long one: MNIST's): when Ctrl-C asks, or when the last save (else
        the start) is :func:`checkpoint_seconds` ago (0 saves at epoch ends only)."""
        if interrupts.requested():
            return True
        since = self.last if self.last is not None else self.started
        return self.every > 0 and since is not None and time.monotonic() - since >= self.every

    def saved(self) -> None:
        self.last = time.monotonic()
