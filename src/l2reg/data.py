"""Datasets: the embedded digits set, MNIST and Fashion-MNIST, and user files.

* ``digits``: scikit-learn's 1,797 8x8 digits, scaled to [0, 1], with a fixed
  stratified 60/20/20 train/validation/test split. No download.
* ``mnist`` and ``fashion-mnist``: the four IDX files (gzipped or raw), split
  as in Nielsen's book: the first 50,000 training images train, the last
  10,000 validate, the 10,000 t10k images test. Files come from ``data_dir``,
  else ``$L2REG_DATA``, else the cache folder, where missing files are
  downloaded. The decompressed content of every file is checked against its
  published SHA-256.
* a path to a ``.npz`` file (``X``, ``y``, optional ``X_val``/``y_val`` and
  ``X_test``/``y_test``) or to a ``.csv`` file with a header row.

Everything here is NumPy only (scikit-learn is imported lazily); no JAX.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import http.client
import io
import logging
import math
import numbers
import os
import struct
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from .base.paths import ENV_CACHE, default_cache_dir  # noqa: F401  (ENV_CACHE: re-exported)
from .errors import ChecksumError, ConfigError, ConfigTypeError, DataError, DownloadError

__all__ = [
    "CHECKSUMS",
    "Dataset",
    "IDX_FILES",
    "MIRRORS",
    "MNIST_TRAIN_SIZE",
    "default_cache_dir",
    "feature_range_hint",
    "fetch",
    "load_dataset",
    "read_idx",
    "standardized",
    "write_idx",
]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# Module constants (tests may patch them).
# --------------------------------------------------------------------------

BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist")

#: The four IDX files of MNIST and Fashion-MNIST, without the ``.gz`` suffix.
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: SHA-256 of the *decompressed* content of each file (the .gz bytes differ
#: between mirrors). ``None`` skips the check for that file.
CHECKSUMS: dict[str, dict[str, str | None]] = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

#: Base URLs tried in order; ``$L2REG_MIRROR`` (one base URL) is tried first.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
}

#: Nielsen's split: the first MNIST_TRAIN_SIZE training images train, the
#: rest (10,000 for the real files) validate.
MNIST_TRAIN_SIZE = 50_000

#: Share of X held out for validation when a user file has no X_val.
VALIDATION_FRACTION = 0.2

DOWNLOAD_TIMEOUT = 30.0  # seconds, per network operation
DOWNLOAD_ATTEMPTS = 3  # per mirror
RETRY_BACKOFF = 1.0  # seconds; the wait before attempt k+1 is RETRY_BACKOFF * k

ENV_DATA = "L2REG_DATA"
ENV_MIRROR = "L2REG_MIRROR"

_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_SPLITS = {"train": ("X_train", "y_train"), "validation": ("X_val", "y_val"), "test": ("X_test", "y_test")}
_EVALS = ("validation", "test")

# Decompressed SHA-256 of files already hashed in this process, keyed by
# (resolved path, size, mtime_ns), so that repeated loads skip the hashing.
_VERIFIED: dict[tuple[str, int, int], str] = {}


# --------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """Arrays of one dataset, split into train / validation / test.

    ``X_*`` are ``(n, d)`` float32, C-contiguous. For classification
    (``n_classes`` set) ``y_*`` are ``(n,)`` int32 labels in
    ``0..n_classes-1``; for regression (``n_classes is None``) they are
    ``(n, t)`` float32. A split that does not exist is ``None``. ``classes``
    holds the original label of each class index when the file's labels were
    strings (sorted unique values → 0..C-1, as the estimators encode them).
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    n_classes: int | None
    notes: tuple[str, ...] = ()
    classes: tuple | None = None  # the original labels of 0..C-1, when they were not already 0..C-1 (CSV strings)

    def __post_init__(self) -> None:
        if not isinstance(self.notes, tuple):
            object.__setattr__(self, "notes", tuple(self.notes))
        if self.X_train is None or self.y_train is None:
            raise DataError(f"dataset {self.name!r}: the train split needs both X_train and y_train.")
        for which, (xa, ya) in _SPLITS.items():
            X, y = getattr(self, xa), getattr(self, ya)
            if (X is None) != (y is None):
                raise DataError(f"dataset {self.name!r}: {xa} and {ya} must both be given or both be None.")
            if X is None:
                continue
            if np.ndim(X) != 2:
                raise DataError(f"dataset {self.name!r}: {xa} must be 2-D; got shape {np.shape(X)}.")
            if len(y) != len(X):
                raise DataError(f"dataset {self.name!r}: {ya} has {len(y)} rows but {xa} has {len(X)}.")

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def is_classification(self) -> bool:
        return self.n_classes is not None

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` of ``"train"``, ``"validation"`` or ``"test"``."""
        if not isinstance(which, str) or which not in _SPLITS:
            raise ConfigError(f"split must be 'train', 'validation' or 'test'; got {which!r}.")
        xa, ya = _SPLITS[which]
        X, y = getattr(self, xa), getattr(self, ya)
        if X is None:
            raise DataError(f"dataset {self.name!r} has no {which} split.")
        return X, y


def standardized(ds: Dataset) -> Dataset:
    """``ds`` with every feature z-scored by the training split's mean and standard deviation (a constant
    feature becomes 0), the same transform applied to the validation and test splits."""
    mean = ds.X_train.mean(axis=0, dtype=np.float64)
    sd = ds.X_train.std(axis=0, dtype=np.float64)
    sd = np.where(sd > 0, sd, 1.0)

    def z(X):
        return None if X is None else np.ascontiguousarray((X - mean) / sd, dtype=np.float32)

    note = f"Features standardized by the mean and standard deviation of the {ds.n_train} training examples."
    return dataclasses.replace(ds, X_train=z(ds.X_train), X_val=z(ds.X_val), X_test=z(ds.X_test),
                               notes=ds.notes + (note,))


def feature_range_hint(ds: Dataset) -> str | None:
    """One line when the features fall far outside [0, 1] (the 99th percentile of |x| above 4, e.g. raw digits
    pixels 0–16), which sigmoid networks with N(0, 1/n_in) weights train poorly on; else None."""
    X = ds.X_train
    typical = float(np.percentile(np.abs(X), 99))
    if typical <= 4:
        return None
    lo, hi = float(X.min()), float(X.max())
    return (f"{ds.name}: features range from {lo:g} to {hi:g}, far outside [0, 1]; scale them (e.g. X / {max(abs(lo), hi):g}) "
            "or standardize them (--standardize, standardize=True): raw scales saturate the sigmoids and cost accuracy.")


# --------------------------------------------------------------------------
# load_dataset
# --------------------------------------------------------------------------


def load_dataset(
    name: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    *,
    train_size: int | None = None,
    eval: str = "validation",  # noqa: A002 - the option's public name
    label_column: str = "label",
) -> Dataset:
    """Load the dataset ``name``: ``digits``, ``mnist``, ``fashion-mnist``, or a ``.npz``/``.csv`` path.

    ``train_size`` keeps the first N training examples (after the split).
    ``eval`` ("validation" or "test") says which split the caller evaluates
    on; it only changes user files (with ``"test"``, all of X trains and
    X_test is required). The built-in datasets always have all three splits.
    ``data_dir`` is where MNIST-style IDX files are looked for (it is not used
    for the other datasets). ``label_column`` names the label column of a CSV.
    """
    eval_ = _check_eval(eval)
    _check_train_size_type(train_size)
    if not isinstance(label_column, str):
        raise ConfigTypeError(f"label_column must be a string; got {type(label_column).__name__} {label_column!r}.")
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise ConfigTypeError(f"dataset name must be a string or a path; got {type(name).__name__} {name!r}.")

    key = name.strip().lower()
    if key == "digits":
        ds = _load_digits()
    elif key in ("mnist", "fashion-mnist"):
        ds = _load_idx_dataset(key, data_dir)
    else:
        path = Path(name).expanduser()
        suffix = path.suffix.lower()
        if suffix in (".npz", ".csv"):
            if not path.exists():
                raise DataError(f"data file not found: {name}.")
            if not path.is_file():
                raise DataError(f"{name} is not a file.")
            if suffix == ".npz":
                arrays = _read_npz(path)
            else:
                arrays = _read_csv(path, label_column)
            ds = _build_user_dataset(path, arrays, eval_)
        elif name and path.is_file():
            raise ConfigError(f"unsupported data file {name!r}; expected a .npz or .csv file.")
        else:
            raise ConfigError(
                f"unknown dataset {name!r}; expected digits, mnist, fashion-mnist, or a path to a .npz or .csv file."
            )
    return _apply_train_size(ds, train_size)


def check_dataset_name(name, data_dir=None, train_size=None) -> None:
    """Cheap checks of a dataset argument, before anything is loaded, created or imported.

    A :class:`Dataset` passes; a name must be built in or a path to an existing
    ``.npz``/``.csv`` file; ``data_dir``, when given for MNIST-style data, must be
    a folder. The same messages as :func:`load_dataset`'s.
    """
    _check_train_size_type(train_size)
    if train_size is not None and int(train_size) < 1:
        raise ConfigError(f"train_size must be an integer >= 1; got {int(train_size)}.")
    if isinstance(name, Dataset):
        if train_size is not None:
            raise ConfigError("train_size applies when loading by name; slice the Dataset instead.")
        return
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise ConfigTypeError(f"dataset name must be a string or a path; got {type(name).__name__} {name!r}.")
    key = name.strip().lower()
    if key in ("mnist", "fashion-mnist"):
        root = data_dir if data_dir is not None else os.environ.get(ENV_DATA, "").strip() or None
        if root is not None and not Path(root).expanduser().is_dir():
            source = "data_dir" if data_dir is not None else ENV_DATA
            raise DataError(f"{key}: data folder {Path(root).expanduser()} (from {source}) does not exist.")
        return
    if key == "digits":
        return
    path = Path(name).expanduser()
    if path.suffix.lower() in (".npz", ".csv"):
        if not path.exists():
            raise DataError(f"data file not found: {name}.")
        if not path.is_file():
            raise DataError(f"{name} is not a file.")
    elif name and path.is_file():
        raise ConfigError(f"unsupported data file {name!r}; expected a .npz or .csv file.")
    else:
        import difflib

        close = difflib.get_close_matches(key, BUILTIN_DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown dataset {name!r}{hint}; expected digits, mnist, fashion-mnist, or a path to a .npz or .csv file."
        )


def _check_eval(eval_: object) -> str:
    if not isinstance(eval_, str):
        raise ConfigTypeError(f"eval must be 'validation' or 'test'; got {type(eval_).__name__} {eval_!r}.")
    if eval_ not in _EVALS:
        raise ConfigError(f"eval must be 'validation' or 'test'; got {eval_!r}.")
    return eval_


def _check_train_size_type(train_size: object) -> None:
    if train_size is None:
        return
    if isinstance(train_size, (bool, np.bool_)) or not isinstance(train_size, numbers.Integral):
        raise ConfigTypeError(
            f"train_size must be an integer or None; got {type(train_size).__name__} {train_size!r}."
        )


def _apply_train_size(ds: Dataset, train_size: int | None) -> Dataset:
    if train_size is None:
        return ds
    n = ds.n_train
    k = int(train_size)
    if not 1 <= k <= n:
        raise ConfigError(f"train_size must be an integer between 1 and {n}; got {k}.")
    if k == n:
        return ds
    return dataclasses.replace(
        ds,
        X_train=ds.X_train[:k],
        y_train=ds.y_train[:k],
        notes=ds.notes + (f"Using the first {k} of {n} training examples (train_size={k}).",),
    )


# --------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------


#: The rows of each part of the split, as scikit-learn's
#: ``train_test_split(..., stratify=y, random_state=0)`` draws them (20 % test,
#: then a quarter of the rest for validation); tests/test_data.py checks them
#: against scikit-learn. Embedded because importing scikit-learn's datasets
#: takes longer (1.2 s) than the whole rest of a one-epoch run.
_DIGITS_ROWS = "assets/digits_split.npz"


def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits, ``(X (1797, 64) in 0..16, y)``, read from its data file without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if path is None or not path.is_file():  # a layout we do not know: the slow, sure way
        from sklearn.datasets import load_digits

        return load_digits(return_X_y=True)
    data = np.loadtxt(path, delimiter=",")  # as load_digits reads it
    return data[:, :-1], data[:, -1].astype(int)


def _split_digits() -> dict[str, np.ndarray]:
    """scikit-learn's digits, scaled to [0, 1], split 60/20/20 (stratified, random_state=0)."""
    from importlib.resources import files

    X, y = _digits_raw()
    X = (np.asarray(X, dtype=np.float64) / 16.0).astype(np.float32)
    y = np.asarray(y, dtype=np.int32)
    with (files("l2reg") / _DIGITS_ROWS).open("rb") as f, np.load(f) as rows:
        parts = [(rows[k], k) for k in ("train", "val", "test")]
    return {f"{a}_{k}": np.ascontiguousarray(arr[r]) for r, k in parts for a, arr in (("X", X), ("y", y))}


def _load_digits() -> Dataset:
    """The digits split (scikit-learn's images, the embedded rows of each part)."""
    arrays = _split_digits()
    n = sum(len(arrays[k]) for k in ("y_train", "y_val", "y_test"))
    note = (
        f"scikit-learn digits: {n} 8x8 images scaled to [0, 1]; stratified 60/20/20 split "
        f"(random_state=0): {len(arrays['y_train'])} train, {len(arrays['y_val'])} validation, "
        f"{len(arrays['y_test'])} test."
    )
    return Dataset(name="digits", n_classes=10, notes=(note,), **arrays)


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES: dict[tuple[str, int], int] = {
    ("u", 1): 0x08,
    ("i", 1): 0x09,
    ("i", 2): 0x0B,
    ("i", 4): 0x0C,
    ("f", 4): 0x0D,
    ("f", 8): 0x0E,
}
_MAGIC_IMAGES = 0x0803  # uint8, 3-D
_MAGIC_LABELS = 0x0801  # uint8, 1-D


def _one_line(obj: object) -> str:
    """``str(obj)`` with all whitespace runs (newlines included) collapsed."""
    return " ".join(str(obj).split())


def _is_gzip(path: Path, head: bytes) -> bool:
    return head[:2] == _GZIP_MAGIC or path.name.lower().endswith(".gz")


def _read_content(path: Path) -> bytes:
    """The file's bytes, decompressed if it is gzipped."""
    label = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{label}: file not found ({path}).") from None
    except OSError as exc:
        raise DataError(f"{label}: cannot read {path}: {_one_line(exc.strerror or exc)}.") from None
    if not raw:
        raise DataError(f"{label}: empty file.")
    if _is_gzip(path, raw):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{label}: corrupt gzip data ({_one_line(exc)}).") from None
        if not raw:
            raise DataError(f"{label}: empty file (after decompression).")
    return raw


def _parse_idx(data: bytes, label: str) -> tuple[int, np.ndarray]:
    """``(magic, array)`` of IDX bytes; the array is a read-only big-endian view."""
    if len(data) < 4:
        raise DataError(f"{label}: truncated IDX header ({len(data)} bytes; need at least 4).")
    magic = int.from_bytes(data[:4], "big")
    if data[0] or data[1]:
        raise DataError(f"{label}: not an IDX file (magic {magic}; the first two bytes must be zero).")
    code, ndim = data[2], data[3]
    dtype = _IDX_DTYPES.get(code)
    if dtype is None:
        raise DataError(f"{label}: unknown IDX data type code 0x{code:02X} (magic {magic}).")
    if ndim == 0:
        raise DataError(f"{label}: IDX header declares 0 dimensions (magic {magic}).")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{label}: truncated IDX header ({len(data)} bytes; {ndim} dimensions need {header})."
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = math.prod(dims)
    expected = count * dtype.itemsize
    actual = len(data) - header
    shape = "x".join(map(str, dims))
    if actual < expected:
        raise DataError(
            f"{label}: truncated IDX data; dimensions {shape} need {expected} bytes after the header, found {actual}."
        )
    if actual > expected:
        raise DataError(
            f"{label}: {actual - expected} trailing bytes after the IDX data (dimensions {shape} need {expected})."
        )
    if count == 0:
        return magic, np.empty(dims, dtype=dtype)
    return magic, np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a writable native-endian array."""
    p = Path(path)
    _, arr = _parse_idx(_read_content(p), p.name)
    return np.array(arr, dtype=arr.dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzipped when the name ends in ``.gz``.

    Supported dtypes: uint8, int8, int16, int32, float32, float64.
    """
    p = Path(path)
    a = np.asarray(array)
    code = _IDX_CODES.get((a.dtype.kind, a.dtype.itemsize))
    if code is None:
        raise DataError(
            f"{p.name}: cannot write dtype {a.dtype} as IDX; use uint8, int8, int16, int32, float32 or float64."
        )
    if not 1 <= a.ndim <= 255:
        raise DataError(f"{p.name}: IDX arrays need 1 to 255 dimensions; got {a.ndim}.")
    if any(d >= 2**32 for d in a.shape):
        raise DataError(f"{p.name}: IDX dimensions must be below 2**32; got shape {a.shape}.")
    header = bytes([0, 0, code, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    payload = header + np.ascontiguousarray(a, dtype=a.dtype.newbyteorder(">")).tobytes()
    if p.name.lower().endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    p.write_bytes(payload)
    return p


# --------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _remember_verified(path: Path, digest: str) -> None:
    try:
        _VERIFIED[_stat_key(path)] = digest
    except OSError:  # pragma: no cover - the file vanished; nothing to remember
        pass


def _content_sha256(path: Path) -> str:
    """SHA-256 of the file's content, decompressed if gzipped (streamed)."""
    with open(path, "rb") as f:
        head = f.read(2)
    h = hashlib.sha256()
    if _is_gzip(path, head):
        try:
            with gzip.open(path, "rb") as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    h.update(chunk)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path.name}: corrupt gzip data ({_one_line(exc)}).") from None
    else:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def _checksum_message(label: str, got: str, expected: str) -> str:
    return (
        f"{label}: SHA-256 of the decompressed content is {got[:16]}...; "
        f"expected {expected[:16]}... (corrupt or wrong file)."
    )


def _verify_content(path: Path, data: bytes, expected: str | None) -> None:
    """Check the decompressed ``data`` of ``path``; once per file per process."""
    if not expected:
        return
    expected = expected.lower()
    try:
        key = _stat_key(path)
    except OSError:
        key = None
    if key is not None and _VERIFIED.get(key) == expected:
        return
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise ChecksumError(_checksum_message(path.name, got, expected) + f" File: {path}.")
    if key is not None:
        _VERIFIED[key] = got


# --------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------


class _Permanent(Exception):
    """A failure that retrying the same mirror will not fix."""


class _Transient(Exception):
    """A failure worth retrying on the same mirror."""


def _join_url(base: str, filename: str) -> str:
    return base if base.endswith(filename) else base.rstrip("/") + "/" + filename


def _download_once(url: str, dest: Path, sha256: str | None) -> None:
    """Download ``url`` to ``dest`` atomically (temp file, fsync, verify, replace)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp: Path | None = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "l2reg (python urllib)"})
            try:
                with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.strip().isdigit() else None
                    got = 0
                    next_log = 0.25
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        got += len(chunk)
                        if total and got / total >= next_log and got < total:
                            logger.debug("%s: %d%% of %d bytes", dest.name, 100 * got // total, total)
                            next_log += 0.25
                    if total is not None and got != total:
                        raise _Transient(f"connection closed after {got} of {total} bytes")
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    raise _Permanent(reason) from None
                raise _Transient(reason) from None
            except urllib.error.URLError as exc:
                raise _Transient(_one_line(exc.reason)) from None
            except ValueError as exc:  # malformed URL, unknown scheme
                raise _Permanent(_one_line(exc)) from None
            except (http.client.HTTPException, OSError) as exc:
                raise _Transient(_one_line(exc) or type(exc).__name__) from None
            out.flush()
            os.fsync(out.fileno())
        try:
            digest = _content_sha256(tmp)
        except DataError as exc:
            raise _Transient(f"corrupt download: {exc}") from None
        if sha256 and digest != sha256.lower():
            raise ChecksumError(_checksum_message(dest.name, digest, sha256.lower()))
        os.replace(tmp, dest)
        tmp = None
        _remember_verified(dest, digest)
    finally:
        if tmp is not None:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass


def fetch(
    filename: str,
    dest_dir: str | os.PathLike,
    mirrors: list[str],
    sha256: str | None,
) -> Path:
    """Download ``<mirror><filename>`` into ``dest_dir/filename`` and return its path.

    ``sha256`` is the digest of the *decompressed* content when the file is
    gzipped (of the raw content otherwise); ``None`` skips the check. Each
    mirror is tried up to ``DOWNLOAD_ATTEMPTS`` times (transient failures
    only), waiting ``RETRY_BACKOFF * attempt`` seconds between attempts. A
    failed download never leaves a file behind. If ``dest_dir/filename``
    already exists with the right content, nothing is downloaded.

    Raises ChecksumError if a mirror served the wrong content and no mirror
    served the right one, DownloadError if every mirror failed otherwise.
    """
    dest_dir = Path(dest_dir).expanduser()
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{filename}: cannot create folder {dest_dir}: {_one_line(exc.strerror or exc)}.") from None
    dest = dest_dir / filename
    if dest.is_file() and sha256:
        try:
            if _content_sha256(dest) == sha256.lower():
                _remember_verified(dest, sha256.lower())
                return dest
        except DataError:
            pass
    if not mirrors:
        raise DownloadError(f"{filename}: no mirrors to download from.")

    tried: list[str] = []
    checksum_failed = False
    for base in mirrors:
        url = _join_url(base, filename)
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            logger.info("Downloading %s (attempt %d of %d)", url, attempt, DOWNLOAD_ATTEMPTS)
            try:
                _download_once(url, dest, sha256)
            except ChecksumError as exc:
                checksum_failed = True
                logger.warning("%s", exc)
                tried.append(f"{url} ({str(exc).split(': ', 1)[-1].rstrip('.')})")
                break
            except _Permanent as exc:
                logger.warning("Download of %s failed: %s", url, exc)
                tried.append(f"{url} ({exc})")
                break
            except _Transient as exc:
                logger.warning("Download of %s failed: %s", url, exc)
                if attempt < DOWNLOAD_ATTEMPTS:
                    if RETRY_BACKOFF > 0:
                        time.sleep(RETRY_BACKOFF * attempt)
                    continue
                tried.append(f"{url} ({exc}; {DOWNLOAD_ATTEMPTS} attempts)")
            else:
                logger.info("Saved %s (%d bytes)", dest, dest.stat().st_size)
                return dest
    message = f"could not download {filename}; tried " + ", ".join(tried) + "."
    if checksum_failed:
        raise ChecksumError(message)
    raise DownloadError(message)


def _mirrors_for(name: str) -> list[str]:
    out: list[str] = []
    env = os.environ.get(ENV_MIRROR, "").strip()
    for base in ([env] if env else []) + list(MIRRORS.get(name, [])):
        if base not in out:
            out.append(base)
    return out


# --------------------------------------------------------------------------
# MNIST / Fashion-MNIST
# --------------------------------------------------------------------------


def _find_file(folder: Path, stem: str) -> Path | None:
    for fname in (stem + ".gz", stem):
        p = folder / fname
        if p.is_file():
            return p
    return None


def _find_idx_files(root: Path, name: str) -> tuple[Path, dict[str, Path | None]]:
    """The folder among ``root/name`` and ``root`` with the most of the files."""
    candidates = [(folder, {stem: _find_file(folder, stem) for stem in IDX_FILES}) for folder in (root / name, root)]
    # max() keeps the first of equals, so root/name wins a tie.
    return max(candidates, key=lambda c: sum(p is not None for p in c[1].values()))


def _locate_idx_files(name: str, data_dir: str | os.PathLike | None) -> tuple[Path, dict[str, Path]]:
    source = "data_dir"
    if data_dir is None:
        env = os.environ.get(ENV_DATA, "").strip()
        if env:
            data_dir, source = env, ENV_DATA
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"{name}: data folder {root} (from {source}) does not exist.")
        folder, found = _find_idx_files(root, name)
        missing = [stem + "[.gz]" for stem, p in found.items() if p is None]
        if missing:
            raise DataError(
                f"{name}: missing {', '.join(missing)} in {root} (also looked in {root / name}); "
                f"nothing is downloaded when {source} is set."
            )
        return folder, {k: v for k, v in found.items() if v is not None}

    folder = default_cache_dir() / name
    found = {stem: _find_file(folder, stem) for stem in IDX_FILES}
    files: dict[str, Path] = {}
    for stem, p in found.items():
        if p is None:
            logger.info("%s: %s is not in the cache %s; downloading it.", name, stem, folder)
            p = fetch(stem + ".gz", folder, _mirrors_for(name), CHECKSUMS.get(name, {}).get(stem))
        files[stem] = p
    return folder, files


def _load_idx_member(path: Path, expected_sha: str | None, kind: str) -> np.ndarray:
    data = _read_content(path)
    _verify_content(path, data, expected_sha)
    magic, arr = _parse_idx(data, path.name)
    want = _MAGIC_IMAGES if kind == "images" else _MAGIC_LABELS
    if magic != want:
        raise DataError(f"{path.name}: wrong IDX magic {magic}; expected {want} ({kind}).")
    return arr


def _images_and_labels(
    files: dict[str, Path], sums: Mapping[str, str | None], prefix: str
) -> tuple[np.ndarray, np.ndarray]:
    img_path, lab_path = files[f"{prefix}-images-idx3-ubyte"], files[f"{prefix}-labels-idx1-ubyte"]
    images = _load_idx_member(img_path, sums.get(f"{prefix}-images-idx3-ubyte"), "images")
    labels = _load_idx_member(lab_path, sums.get(f"{prefix}-labels-idx1-ubyte"), "labels")
    if len(images) != len(labels):
        raise DataError(
            f"{img_path.name} has {len(images)} images but {lab_path.name} has {len(labels)} labels."
        )
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"{lab_path.name}: labels must be in 0..9; found {int(labels.max())}.")
    n = len(images)
    X = images.reshape(n, -1).astype(np.float32)
    X /= np.float32(255.0)
    return X, labels.astype(np.int32)


def nielsen_split(
    X: np.ndarray, y: np.ndarray, n_train: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """First ``n_train`` (default ``MNIST_TRAIN_SIZE``) rows train, the rest validate."""
    n_train = MNIST_TRAIN_SIZE if n_train is None else n_train
    if not 0 < n_train < len(X):
        raise DataError(
            f"the training file has {len(X)} images; Nielsen's split needs more than {n_train} "
            f"({n_train} to train, the rest to validate)."
        )
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _load_idx_dataset(name: str, data_dir: str | os.PathLike | None) -> Dataset:
    folder, files = _locate_idx_files(name, data_dir)
    sums = CHECKSUMS.get(name, {})
    X_all, y_all = _images_and_labels(files, sums, "train")
    X_test, y_test = _images_and_labels(files, sums, "t10k")
    if X_all.shape[1] != X_test.shape[1]:
        raise DataError(
            f"{name}: training images have {X_all.shape[1]} pixels but test images have {X_test.shape[1]}."
        )
    X_train, y_train, X_val, y_val = nielsen_split(X_all, y_all)
    note = (
        f"{name} from {folder}: the first {len(X_train)} training images train, the last {len(X_val)} "
        f"validate (Nielsen's split), the {len(X_test)} t10k images test; pixels scaled to [0, 1]."
    )
    return Dataset(name, X_train, y_train, X_val, y_val, X_test, y_test, n_classes=10, notes=(note,))


# --------------------------------------------------------------------------
# User data: .npz and .csv
# --------------------------------------------------------------------------

_NPZ_KEYS = ("X", "y", "X_val", "y_val", "X_test", "y_test")
# What np.load / NpzFile may raise on a malformed or hostile file.
_NPZ_READ_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    struct.error,
    OverflowError,
    SyntaxError,
    MemoryError,
)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    label = path.name
    try:
        obj = np.load(path, allow_pickle=False)
    except _NPZ_READ_ERRORS as exc:
        text = _one_line(exc)
        if "allow_pickle" in text:
            raise DataError(f"{label}: not a .npz archive (looks like pickled data, which is never loaded).") from None
        raise DataError(f"{label}: not a readable .npz archive ({text[:200]}).") from None
    if not hasattr(obj, "files"):
        raise DataError(f"{label}: holds a single .npy array, not a .npz archive with X and y.")
    arrays: dict[str, np.ndarray] = {}
    try:
        keys = list(obj.files)
        for key in ("X", "y"):
            if key not in keys:
                shown = ", ".join(repr(k) for k in keys[:20]) or "none"
                raise DataError(f"{label}: missing array {key!r}; found {shown}.")
        for xk, yk in (("X_val", "y_val"), ("X_test", "y_test")):
            if (xk in keys) != (yk in keys):
                have, lack = (xk, yk) if xk in keys else (yk, xk)
                raise DataError(f"{label}: has {have!r} but not {lack!r}; give both or neither.")
        extra = [k for k in keys if k not in _NPZ_KEYS]
        if extra:
            logger.warning("%s: ignoring arrays %s", label, ", ".join(repr(k) for k in extra[:20]))
        for key in _NPZ_KEYS:
            if key not in keys:
                continue
            try:
                arrays[key] = np.asarray(obj[key])
            except _NPZ_READ_ERRORS as exc:
                text = _one_line(exc)
                if "allow_pickle" in text or "pickle" in text.lower():
                    raise DataError(
                        f"{label}: array {key!r} holds Python objects (pickled data); refusing to load it. "
                        f"Save plain numeric arrays."
                    ) from None
                raise DataError(f"{label}: cannot read array {key!r} ({text[:200]}).") from None
    finally:
        obj.close()
    return arrays


def _read_csv(path: Path, label_column: str) -> dict[str, np.ndarray]:
    label = path.name
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise DataError(f"{label}: cannot read {path}: {_one_line(exc.strerror or exc)}.") from None
    if not text.strip():
        raise DataError(f"{label}: empty file.")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[list[float]] = []
    try:
        header: list[str] | None = None
        for row in reader:
            if row and any(c.strip() for c in row):
                header = [c.strip() for c in row]
                break
        if header is None:
            raise DataError(f"{label}: empty file.")
        if label_column not in header:
            shown = ", ".join(repr(_one_line(h)[:40]) for h in header[:20])
            more = f" and {len(header) - 20} more" if len(header) > 20 else ""
            raise DataError(f"{label}: no label column {label_column!r} (name it with --label-column or "
                            f"label_column=); columns present: {shown}{more}.")
        if header.count(label_column) > 1:
            raise DataError(f"{label}: label column {label_column!r} appears {header.count(label_column)} times.")
        if len(header) < 2:
            raise DataError(f"{label}: no feature columns besides the label column {label_column!r}.")
        li = header.index(label_column)
        labels: list[str] = []
        for row in reader:
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{label}: line {reader.line_num} has {len(row)} fields; the header has {len(header)}."
                )
            values = []
            labels.append(row[li].strip())
            for j, cell in enumerate(row):
                if j == li:
                    values.append(0.0)  # the label, parsed below
                    continue
                try:
                    values.append(float(cell))
                except ValueError:
                    raise DataError(
                        f"{label}: line {reader.line_num}, column {_one_line(header[j])[:40]!r}: "
                        f"not a number: {cell.strip()[:40]!r}."
                    ) from None
            rows.append(values)
    except csv.Error as exc:
        raise DataError(f"{label}: CSV error at line {reader.line_num}: {_one_line(exc)}.") from None
    if not rows:
        raise DataError(f"{label}: no data rows after the header.")
    table = np.array(rows, dtype=np.float64)
    return {"X": np.delete(table, li, axis=1), **_csv_labels(labels, label, label_column)}


def _csv_labels(labels: list[str], label: str, column: str) -> dict[str, np.ndarray]:
    """Numbers as numbers; any other label makes every label a string class, encoded as the estimators
    do (sorted unique values → 0..C-1), the names kept in ``classes``."""
    try:
        return {"y": np.array([float(v) for v in labels], dtype=np.float64)}
    except ValueError:
        pass
    if any(not v for v in labels):
        raise DataError(f"{label}: the label column {column!r} has an empty cell; give every row a label.")
    classes, y = np.unique(np.array(labels, dtype=object).astype(str), return_inverse=True)
    return {"y": y.astype(np.int64), "classes": classes}


def _check_X(X: np.ndarray, key: str, label: str) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise DataError(f"{label}: {key} must be numeric; got dtype {X.dtype}.")
    if X.ndim != 2:
        raise DataError(f"{label}: {key} must be 2-D (examples x features); got shape {X.shape}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{label}: {key} is empty; got shape {X.shape}.")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf below
        Xf = np.ascontiguousarray(X, dtype=np.float32)
    bad = ~np.isfinite(Xf)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(
            f"{label}: {key} has {int(bad.sum())} non-finite values (NaN, inf, or too large for float32), "
            f"first at row {i}, column {j}."
        )
    return Xf


def _check_y(y: np.ndarray, key: str, n: int, xkey: str, label: str) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise DataError(f"{label}: {key} must be numeric; got dtype {y.dtype}.")
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] == 0):
        raise DataError(f"{label}: {key} must be 1-D (labels or one target) or 2-D (targets); got shape {y.shape}.")
    if len(y) != n:
        raise DataError(f"{label}: {key} has {len(y)} rows but {xkey} has {n}.")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            raise DataError(f"{label}: {key} has {int(bad.sum())} non-finite values (NaN or inf).")
    return y


def _is_whole(y: np.ndarray) -> bool:
    if y.dtype.kind in "biu":
        return True
    return bool(np.all(y == np.round(y)))


def _build_user_dataset(path: Path, arrays: dict[str, np.ndarray], eval_: str) -> Dataset:
    label = path.name
    pairs = [("X", "y"), ("X_val", "y_val"), ("X_test", "y_test")]
    Xs: dict[str, np.ndarray] = {}
    ys: dict[str, np.ndarray] = {}
    for xk, yk in pairs:
        if xk not in arrays:
            continue
        Xs[xk] = _check_X(arrays[xk], xk, label)
        ys[yk] = _check_y(arrays[yk], yk, len(Xs[xk]), xk, label)
    d = Xs["X"].shape[1]
    for xk, X in Xs.items():
        if X.shape[1] != d:
            raise DataError(f"{label}: {xk} has {X.shape[1]} features but X has {d}.")
    y0 = ys["y"]
    for yk, y in ys.items():
        if y.ndim != y0.ndim or (y.ndim == 2 and y.shape[1] != y0.shape[1]):
            raise DataError(f"{label}: {yk} has shape {y.shape}, which does not match y's {y0.shape}.")

    classification = y0.ndim == 1 and all(_is_whole(y) for y in ys.values())
    n_classes: int | None = None
    if classification:
        lo = min(int(np.min(y)) for y in ys.values())
        if lo < 0:
            where = next(k for k, y in ys.items() if int(np.min(y)) == lo)
            raise DataError(f"{label}: labels must be integers in 0..C-1; found {lo} in {where}.")
        hi = max(int(np.max(y)) for y in ys.values())
        if hi >= 2**31 - 1:
            raise DataError(f"{label}: labels must be integers in 0..C-1 with C below 2**31; found {hi}.")
        n_classes = hi + 1
        ys = {k: np.ascontiguousarray(y, dtype=np.int32) for k, y in ys.items()}
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is caught just below
            ys = {k: np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float32) for k, y in ys.items()}
        for k, y in ys.items():
            if not np.isfinite(y).all():
                raise DataError(f"{label}: {k} has values too large for float32.")

    classes = arrays.get("classes")
    if classification:
        task = f"classification with {n_classes} classes"
        if classes is not None:
            shown = ", ".join(f"{str(c)!r} → {i}" for i, c in enumerate(classes[:10]))
            task += f" (labels {shown}{', …' if len(classes) > 10 else ''})"
    else:
        task = f"regression with {ys['y'].shape[1]} target(s)"
    notes = [f"{label}: {len(Xs['X'])} examples, {d} features, {task}; features used as given."]
    X_train, y_train = Xs["X"], ys["y"]
    X_val, y_val = Xs.get("X_val"), ys.get("y_val")
    X_test, y_test = Xs.get("X_test"), ys.get("y_test")
    held = X_val is None if eval_ == "validation" else X_test is None
    if held:  # the split the caller evaluates on is missing: hold it out of X
        X_train, X_ev, y_train, y_ev, stratified = _hold_out(X_train, y_train, classification, label)
        what = "for validation" if eval_ == "validation" else "as the test set"
        how = ", stratified by label" if stratified else ""
        notes.append(f"Held out {100 * VALIDATION_FRACTION:g}% of X ({len(X_ev)} examples) {what}{how} "
                     f"(random_state=0); {len(X_train)} examples train.")
        if eval_ == "validation":
            X_val, y_val = X_ev, y_ev
        else:
            X_test, y_test = X_ev, y_ev
    return Dataset(label, X_train, y_train, X_val, y_val, X_test, y_test, n_classes=n_classes, notes=tuple(notes),
                   classes=None if classes is None else tuple(str(c) for c in classes))


def _hold_out(
    X: np.ndarray, y: np.ndarray, classification: bool, label: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    from sklearn.model_selection import train_test_split

    n = len(X)
    if n < 2:
        raise DataError(
            f"{label}: need at least 2 examples to hold out a validation set; got {n} "
            f"(give X_val and y_val, or use eval='test')."
        )
    if classification:
        try:
            X_tr, X_va, y_tr, y_va = train_test_split(
                X, y, test_size=VALIDATION_FRACTION, stratify=y, random_state=0
            )
            stratified = True
        except ValueError:  # a class too small to stratify
            stratified = False
    else:
        stratified = False
    if not stratified:
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=VALIDATION_FRACTION, random_state=0)
    c = np.ascontiguousarray
    return c(X_tr), c(X_va), c(y_tr), c(y_va), stratified
