"""Writing results so that no work is lost: atomic files, checked folders.

Every file is written to a temporary name in the same folder, flushed to
disk, then renamed over the final name, so a crash leaves the old file or the
new one, never half of one. Arrays go to ``.npz`` without pickle.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)


def check_out_dir(out, *, overwrite: bool = False, marker: str = "metrics.json") -> Path:
    """Check that ``out`` can become the run's folder, without creating it.

    Called before any training, so that a bad ``--out`` fails in a second,
    not after an hour of work; the folder itself appears with the first file
    written (:func:`write_bytes`), so a run that fails before writing
    anything leaves nothing behind. A folder that already holds ``marker`` (a
    previous run) is refused unless ``overwrite``. Temporary files of a write
    that was killed half-way are removed.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out must be a folder; {out} is a file.")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "is a file" if not existing.is_dir() else "is not writable"
        raise ConfigError(f"out folder {out} is not writable: {existing} {why}.")
    if out.is_dir():
        for stale in out.glob(".*.tmp"):
            # Left by a process killed mid-write (SIGKILL gives no chance to clean up).
            stale.unlink(missing_ok=True)
        if (out / marker).exists() and not overwrite:
            raise ConfigError(f"{out} already holds a run ({marker}); pass --overwrite or choose another --out.")
    return out


def prepare_out_dir(out, *, overwrite: bool = False, marker: str = "metrics.json") -> Path:
    """:func:`check_out_dir`, then create the folder."""
    out = check_out_dir(out, overwrite=overwrite, marker=marker)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_bytes(path, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data`` (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path, obj) -> Path:
    return write_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode())


def write_npz(path, arrays: dict) -> Path:
    buf = io.BytesIO()
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype.hasobject:
            raise TypeError(f"refusing to write {k!r} to {path}: object arrays would need pickle.")
    np.savez(buf, **arrays)
    return write_bytes(path, buf.getvalue())


def write_params(path, params: list, runs: list[dict]) -> Path:
    """The one ``params.npz`` writer: every run's weights and every setting needed to reproduce it.

    ``params[r]`` is run r's list of ``{"w": (n_in, n_out), "b": (n_out,)}``;
    ``runs[r]`` its settings. The file holds ``w{l}`` ``(runs, n_in, n_out)``
    and ``b{l}`` ``(runs, n_out)`` per layer, and one array per setting that
    any run has (``lmbda``, ``seed``, ``eta``, ``momentum``, ``weight_decay``;
    NaN where a run lacks it).
    """
    arrays = {}
    for key in ("lmbda", "seed", "eta", "momentum", "weight_decay"):
        if any(key in r for r in runs):
            arrays[key] = np.array([r.get(key, np.nan) for r in runs])
    for i in range(len(params[0])):
        arrays[f"w{i}"] = np.stack([np.asarray(p[i]["w"]) for p in params])
        arrays[f"b{i}"] = np.stack([np.asarray(p[i]["b"]) for p in params])
    return write_npz(path, arrays)


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode())


def target_path(path, name: str, suffixes: tuple) -> Path:
    """The file to write: ``path`` itself when it ends in one of ``suffixes``, else ``path/name``."""
    path = Path(path)
    if path.suffix.lower() in suffixes and not path.is_dir():
        return path
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{str(path)!r} is a file, not a folder; give a folder, or a file name ending in "
                          f"{' or '.join(suffixes)}.")
    return path / name
