"""Tests of l2reg.data: digits, IDX parsing, downloads, user .npz/.csv files."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2reg import data
from l2reg.data import Dataset, fetch, load_dataset, read_idx, write_idx
from l2reg.errors import ChecksumError, ConfigError, ConfigTypeError, DataError, DownloadError

# Real MNIST files, if this checkout has them (only used by one optional test).
_REAL_DATA = [Path(p) for p in (os.environ.get("L2REG_DATA"),) if p] + [
    Path(__file__).resolve().parents[2] / "shared" / "data"
]

TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = data.IDX_FILES
N_TRAIN_FILE, N_TEST_FILE, N_TRAIN_SPLIT = 20, 8, 15


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No env leaking in, no real mirrors, no backoff, a fresh checksum cache."""
    for var in (data.ENV_DATA, data.ENV_MIRROR, "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path / "default-cache"))
    monkeypatch.setattr(data, "MIRRORS", {"mnist": [], "fashion-mnist": []})
    monkeypatch.setattr(data, "RETRY_BACKOFF", 0)
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 5.0)
    monkeypatch.setattr(data, "_VERIFIED", {})


def one_line(err: BaseException) -> str:
    msg = str(err)
    assert msg and "\n" not in msg, repr(msg)
    return msg


# --------------------------------------------------------------------------
# Dataset and argument checks
# --------------------------------------------------------------------------


def test_dataset_split_and_properties():
    X = np.zeros((4, 3), np.float32)
    y = np.arange(4, dtype=np.int32)
    ds = Dataset("t", X, y, X[:2], y[:2], None, None, n_classes=4)
    assert (ds.n_train, ds.n_features, ds.is_classification) == (4, 3, True)
    assert ds.split("train")[0] is X
    assert ds.split("validation")[1].shape == (2,)
    with pytest.raises(DataError, match="no test split"):
        ds.split("test")
    with pytest.raises(ConfigError, match="got 'val'"):
        ds.split("val")
    with pytest.raises(DataError, match="rows"):
        Dataset("t", X, y[:3], None, None, None, None, n_classes=4)


@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        ({"train_size": 0}, ConfigError, "train_size must be an integer between 1 and 1077; got 0."),
        ({"train_size": -3}, ConfigError, "train_size must be an integer between 1 and 1077; got -3."),
        ({"train_size": 1078}, ConfigError, "train_size must be an integer between 1 and 1077; got 1078."),
        ({"train_size": 10.0}, ConfigTypeError, "train_size must be an integer or None; got float 10.0."),
        ({"train_size": True}, ConfigTypeError, "train_size must be an integer or None; got bool True."),
        ({"train_size": "10"}, ConfigTypeError, "train_size must be an integer or None; got str '10'."),
        ({"eval": "train"}, ConfigError, "eval must be 'validation' or 'test'; got 'train'."),
        ({"eval": None}, ConfigTypeError, "eval must be 'validation' or 'test'; got NoneType None."),
    ],
)
def test_bad_options(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        load_dataset("digits", **kwargs)
    assert one_line(info.value) == msg


def test_unknown_name_and_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_dataset("foo")
    assert one_line(info.value) == (
        "unknown dataset 'foo'; expected digits, mnist, fashion-mnist, or a path to a .npz or .csv file."
    )
    missing = tmp_path / "nope.npz"
    with pytest.raises(DataError) as info:
        load_dataset(missing)
    assert str(missing) in one_line(info.value)
    other = tmp_path / "data.txt"
    other.write_text("1,2\n")
    with pytest.raises(ConfigError, match="expected a .npz or .csv file"):
        load_dataset(str(other))
    with pytest.raises(ConfigTypeError):
        load_dataset(3)


# --------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------


def test_digits_shapes_types_and_determinism():
    a, b = load_dataset("digits"), load_dataset("DIGITS", eval="test")
    assert a.name == "digits" and a.n_classes == 10 and a.is_classification
    assert (a.X_train.shape, a.X_val.shape, a.X_test.shape) == ((1077, 64), (360, 64), (360, 64))
    for X, y in (a.split("train"), a.split("validation"), a.split("test")):
        assert X.dtype == np.float32 and y.dtype == np.int32
        assert X.flags.c_contiguous and y.ndim == 1
        assert 0.0 <= X.min() and X.max() <= 1.0
    assert a.X_train.max() == 1.0
    for attr in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert a.notes and "stratified" in a.notes[0]


def test_digits_stratified_and_disjoint():
    ds = load_dataset("digits")
    total = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]), minlength=10)
    assert total.sum() == 1797
    for y, share in ((ds.y_train, 0.6), (ds.y_val, 0.2), (ds.y_test, 0.2)):
        counts = np.bincount(y, minlength=10)
        assert np.all(np.abs(counts - share * total) <= 2), counts
    # the three splits hold different images (digits has a few exact duplicates, so compare counts)
    rows = {r.tobytes() for r in np.vstack([ds.X_train, ds.X_val, ds.X_test])}
    assert len(rows) > 1700


def test_digits_split_is_scikit_learns_without_importing_it():
    """The embedded rows give exactly scikit-learn's stratified 60/20/20 split of load_digits (random_state=0).

    To regenerate ``assets/digits_split.npz`` after a change in scikit-learn's
    split, save the three index arrays this test computes.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.25, stratify=y_rest, random_state=0)
    ds = load_dataset("digits")
    for attr, want in zip(("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"),
                          (X_train, y_train, X_val, y_val, X_test, y_test)):
        np.testing.assert_array_equal(getattr(ds, attr), want)
    code = "import sys, l2reg.data as d; d.load_dataset('digits'); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_digits_train_size_takes_first_examples():
    full, small = load_dataset("digits"), load_dataset("digits", train_size=np.int64(100))
    assert small.n_train == 100
    np.testing.assert_array_equal(small.X_train, full.X_train[:100])
    np.testing.assert_array_equal(small.y_train, full.y_train[:100])
    np.testing.assert_array_equal(small.X_val, full.X_val)
    assert any("first 100 of 1077" in n for n in small.notes)
    assert load_dataset("digits", train_size=1077).n_train == 1077


# --------------------------------------------------------------------------
# IDX reading / writing
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_roundtrip(tmp_path, dtype, suffix):
    a = (np.arange(2 * 3 * 4) % 100).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / f"a.idx{suffix}", a)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape and b.flags.writeable
    np.testing.assert_array_equal(a, b)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_write_idx_rejects_unsupported(tmp_path):
    with pytest.raises(DataError, match="complex128"):
        write_idx(tmp_path / "a.idx", np.zeros(3, complex))
    with pytest.raises(DataError, match="dimensions"):
        write_idx(tmp_path / "a.idx", np.array(3, np.uint8))


_GOOD = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))


@pytest.mark.parametrize(
    "content, gz, fragment",
    [
        (b"", False, "empty file"),
        (b"\x00\x00\x08", False, "truncated IDX header"),
        (_GOOD[:9], False, "truncated IDX header"),
        (_GOOD[:-1], False, "truncated IDX data"),
        (_GOOD + b"\x00", False, "1 trailing bytes"),
        (b"\x01\x00" + _GOOD[2:], False, "not an IDX file"),
        (b"\x00\x00\x07" + _GOOD[3:], False, "unknown IDX data type code 0x07"),
        (b"\x00\x00\x08\x00", False, "0 dimensions"),
        (b"\x1f\x8b\x08\x00garbage", False, "corrupt gzip"),
        (b"not gzip at all", True, "corrupt gzip"),
        (gzip.compress(_GOOD)[:-6], True, "corrupt gzip"),
        (gzip.compress(b""), True, "empty file"),
    ],
)
def test_read_idx_errors(tmp_path, content, gz, fragment):
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    msg = one_line(info.value)
    assert path.name in msg and fragment in msg


def test_read_idx_missing(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "missing.idx")


# --------------------------------------------------------------------------
# MNIST-style folders made of tiny IDX files
# --------------------------------------------------------------------------


def _content_sha(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
        return hashlib.sha256(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).hexdigest()
    except (OSError, EOFError):
        return None


def make_idx_folder(folder: Path, *, gz: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four IDX files of a tiny MNIST (20 train, 8 test images) into folder."""
    rng = np.random.default_rng(seed)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (N_TRAIN_FILE, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: (np.arange(N_TRAIN_FILE) % 10).astype(np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (N_TEST_FILE, 28, 28), dtype=np.uint8),
        TEST_LABELS: (np.arange(N_TEST_FILE)[::-1] % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        write_idx(folder / (stem + (".gz" if gz else "")), a)
    return arrays


def trust_files(monkeypatch, folder: Path, name: str = "mnist") -> None:
    """Point the checksum table at whatever the folder holds now."""
    sums = {}
    for stem in data.IDX_FILES:
        path = folder / (stem + ".gz") if (folder / (stem + ".gz")).exists() else folder / stem
        sums[stem] = _content_sha(path) if path.exists() else None
    monkeypatch.setitem(data.CHECKSUMS, name, sums)


@pytest.fixture
def small_split(monkeypatch):
    monkeypatch.setattr(data, "MNIST_TRAIN_SIZE", N_TRAIN_SPLIT)


def _check_tiny(ds: Dataset, arrays: dict[str, np.ndarray], name: str = "mnist") -> None:
    images = arrays[TRAIN_IMAGES].reshape(N_TRAIN_FILE, 784).astype(np.float32) / 255
    assert ds.name == name and ds.n_classes == 10 and ds.n_features == 784
    assert (ds.n_train, len(ds.X_val), len(ds.X_test)) == (N_TRAIN_SPLIT, 5, N_TEST_FILE)
    np.testing.assert_allclose(ds.X_train, images[:N_TRAIN_SPLIT])
    np.testing.assert_allclose(ds.X_val, images[N_TRAIN_SPLIT:])
    np.testing.assert_array_equal(ds.y_train, arrays[TRAIN_LABELS][:N_TRAIN_SPLIT])
    np.testing.assert_array_equal(ds.y_val, arrays[TRAIN_LABELS][N_TRAIN_SPLIT:])
    np.testing.assert_allclose(ds.X_test, arrays[TEST_IMAGES].reshape(N_TEST_FILE, 784) / 255, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays[TEST_LABELS])
    for X, y in (ds.split("train"), ds.split("validation"), ds.split("test")):
        assert X.dtype == np.float32 and X.flags.c_contiguous and y.dtype == np.int32
        assert 0 <= X.min() and X.max() <= 1


@pytest.mark.parametrize(
    "layout, gz, how",
    [
        ("flat", True, "arg"),
        ("flat", False, "arg"),
        ("nested", True, "arg"),
        ("nested", False, "env"),
        ("flat", True, "env"),
    ],
)
def test_mnist_from_folder(tmp_path, monkeypatch, small_split, layout, gz, how):
    root = tmp_path / "data"
    folder = root / "mnist" if layout == "nested" else root
    arrays = make_idx_folder(folder, gz=gz)
    trust_files(monkeypatch, folder)
    if how == "env":
        monkeypatch.setenv(data.ENV_DATA, str(root))
        ds = load_dataset("mnist")
    else:
        ds = load_dataset("mnist", data_dir=root)
    _check_tiny(ds, arrays)
    assert any("Nielsen" in n for n in ds.notes)


def test_shared_parent_folder_serves_both_datasets(tmp_path, monkeypatch, small_split):
    root = tmp_path / "shared"
    a = make_idx_folder(root / "mnist", seed=1)
    b = make_idx_folder(root / "fashion-mnist", seed=2)
    trust_files(monkeypatch, root / "mnist", "mnist")
    trust_files(monkeypatch, root / "fashion-mnist", "fashion-mnist")
    monkeypatch.setenv(data.ENV_DATA, str(root))
    _check_tiny(load_dataset("mnist"), a)
    _check_tiny(load_dataset("fashion-mnist"), b, "fashion-mnist")
    small = load_dataset("fashion-mnist", train_size=4)
    assert small.n_train == 4


def test_nielsen_split_sizes():
    X, y = np.arange(12).reshape(6, 2), np.arange(6)
    Xt, yt, Xv, yv = data.nielsen_split(X, y, 4)
    assert (len(Xt), len(Xv)) == (4, 2) and yv.tolist() == [4, 5]
    with pytest.raises(DataError, match="Nielsen"):
        data.nielsen_split(X, y, 6)


def test_missing_data_dir_files_never_download(tmp_path, monkeypatch):
    monkeypatch.setitem(data.MIRRORS, "mnist", ["http://127.0.0.1:9/"])  # would fail loudly if used
    root = tmp_path / "data"
    make_idx_folder(root)
    (root / (TRAIN_LABELS + ".gz")).unlink()
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=root)
    msg = one_line(info.value)
    assert str(root) in msg and TRAIN_LABELS in msg and TRAIN_IMAGES not in msg
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=tmp_path / "absent")
    assert "absent" in one_line(info.value)
    assert not (tmp_path / "default-cache").exists()


def _rewrite(stem: str, content) -> callable:
    def mutate(folder: Path) -> None:
        path = folder / (stem + ".gz")
        if isinstance(content, np.ndarray):
            write_idx(path, content)
        else:
            path.write_bytes(content(path.read_bytes()))

    return mutate


def _flip_pixel(folder: Path) -> None:
    a = read_idx(folder / (TRAIN_IMAGES + ".gz"))
    a[0, 0, 0] ^= 0xFF
    write_idx(folder / (TRAIN_IMAGES + ".gz"), a)


_gz = gzip.compress
_raw = gzip.decompress
_IMG = np.zeros((N_TRAIN_FILE, 28, 28), np.uint8)

BAD_IDX = [
    ("missing file", lambda f: (f / (TEST_IMAGES + ".gz")).unlink(), DataError, TEST_IMAGES, "missing"),
    ("empty file", _rewrite(TRAIN_IMAGES, lambda b: b""), DataError, TRAIN_IMAGES, "empty file"),
    ("truncated header", _rewrite(TRAIN_IMAGES, lambda b: _gz(_raw(b)[:10])), DataError, TRAIN_IMAGES, "truncated IDX header"),
    ("truncated data", _rewrite(TRAIN_IMAGES, lambda b: _gz(_raw(b)[:-5])), DataError, TRAIN_IMAGES, "truncated IDX data"),
    ("trailing bytes", _rewrite(TRAIN_LABELS, lambda b: _gz(_raw(b) + b"\x00\x01")), DataError, TRAIN_LABELS, "2 trailing bytes"),
    ("wrong magic", _rewrite(TRAIN_IMAGES, np.zeros(N_TRAIN_FILE, np.uint8)), DataError, TRAIN_IMAGES, "wrong IDX magic 2049; expected 2051 (images)."),
    ("wrong dims", _rewrite(TEST_LABELS, np.zeros((N_TEST_FILE, 1), np.uint8)), DataError, TEST_LABELS, "wrong IDX magic 2050; expected 2049 (labels)."),
    ("wrong dtype", _rewrite(TRAIN_IMAGES, _IMG.astype(np.float32)), DataError, TRAIN_IMAGES, "wrong IDX magic 3331"),
    ("corrupt gzip", _rewrite(TRAIN_IMAGES, lambda b: b[:20] + bytes(x ^ 0x55 for x in b[20:40]) + b[40:]), DataError, TRAIN_IMAGES, "corrupt gzip"),
    ("truncated gzip", _rewrite(TEST_IMAGES, lambda b: b[: len(b) // 2]), DataError, TEST_IMAGES, "corrupt gzip"),
    ("labels out of range", _rewrite(TRAIN_LABELS, np.full(N_TRAIN_FILE, 12, np.uint8)), DataError, TRAIN_LABELS, "labels must be in 0..9; found 12."),
    ("count mismatch", _rewrite(TRAIN_LABELS, np.zeros(N_TRAIN_FILE - 1, np.uint8)), DataError, TRAIN_LABELS, "has 20 images but"),
    ("checksum mismatch", _flip_pixel, ChecksumError, TRAIN_IMAGES, "SHA-256"),
]


@pytest.mark.parametrize(
    "mutate, exc, filename, fragment", [case[1:] for case in BAD_IDX], ids=[case[0] for case in BAD_IDX]
)
def test_bad_idx_files(tmp_path, monkeypatch, small_split, mutate, exc, filename, fragment):
    folder = tmp_path / "mnist"
    make_idx_folder(folder)
    trust_files(monkeypatch, folder)
    checksums = dict(data.CHECKSUMS["mnist"])
    mutate(folder)
    if exc is not ChecksumError:  # let the parser, not the checksum, see the damage
        trust_files(monkeypatch, folder)
    else:
        monkeypatch.setitem(data.CHECKSUMS, "mnist", checksums)
    with pytest.raises(exc) as info:
        load_dataset("mnist", data_dir=folder)
    msg = one_line(info.value)
    assert filename in msg and fragment in msg, msg


def test_checksum_verified_once_per_file(tmp_path, monkeypatch, small_split):
    folder = tmp_path / "mnist"
    make_idx_folder(folder)
    trust_files(monkeypatch, folder)
    load_dataset("mnist", data_dir=folder)
    assert len(data._VERIFIED) == 4

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed again")

    with monkeypatch.context() as m:
        m.setattr(data, "hashlib", SimpleNamespace(sha256=no_hashing))
        load_dataset("mnist", data_dir=folder)  # every verdict comes from the cache
    # a changed file (other size) is hashed again, and the change is caught
    write_idx(folder / (TEST_LABELS + ".gz"), np.ones(N_TEST_FILE + 1, np.uint8))
    with pytest.raises(ChecksumError, match=TEST_LABELS):
        load_dataset("mnist", data_dir=folder)


def _real_folder() -> Path | None:
    for root in _REAL_DATA:
        if all((root / "mnist" / (s + ".gz")).is_file() for s in data.IDX_FILES):
            return root
    return None


@pytest.mark.skipif(_real_folder() is None, reason="real MNIST files not available")
def test_real_mnist_checksums():
    ds = load_dataset("mnist", data_dir=_real_folder())
    assert (ds.n_train, len(ds.X_val), len(ds.X_test), ds.n_features) == (50_000, 10_000, 10_000, 784)
    assert ds.X_train.dtype == np.float32 and ds.X_train.max() == 1.0
    assert np.bincount(ds.y_test).tolist()[:2] == [980, 1135]


# --------------------------------------------------------------------------
# Downloads from a local HTTP server
# --------------------------------------------------------------------------


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.requests.append(self.path)
            fail = srv.fail_count > 0
            srv.fail_count -= fail
        if fail and srv.fail_mode in ("404", "500"):
            self.send_error(int(srv.fail_mode))
            return
        if fail and srv.fail_mode == "close":
            body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def serve():
    """serve(folder) -> server with .url, .requests, .fail_mode, .fail_count."""
    servers = []

    def start(folder: Path, fail_mode: str = "404", fail_count: int = 0):
        folder.mkdir(parents=True, exist_ok=True)
        srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
        srv.daemon_threads = True
        srv.lock, srv.requests = threading.Lock(), []
        srv.fail_mode, srv.fail_count = fail_mode, fail_count
        srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def blob(tmp_path):
    """A gzipped file on the 'remote' side and the SHA-256 of its content."""
    content = np.random.default_rng(0).bytes(50_000)
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "blob.gz").write_bytes(gzip.compress(content))
    return SimpleNamespace(remote=remote, content=content, sha=hashlib.sha256(content).hexdigest())


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_success(tmp_path, serve, blob):
    srv = serve(blob.remote)
    dest = tmp_path / "dest"
    path = fetch("blob.gz", dest, [srv.url], blob.sha)
    assert path == dest / "blob.gz" and gzip.decompress(path.read_bytes()) == blob.content
    assert _listing(dest) == ["blob.gz"] and srv.requests == ["/blob.gz"]
    # already there and valid: no new request
    assert fetch("blob.gz", dest, [srv.url], blob.sha) == path and len(srv.requests) == 1


def test_fetch_falls_back_to_second_mirror(tmp_path, serve, blob):
    empty = serve(tmp_path / "empty")  # real 404, not retried
    good = serve(blob.remote)
    fetch("blob.gz", tmp_path / "dest", [empty.url, good.url], blob.sha)
    assert len(empty.requests) == 1 and len(good.requests) == 1


@pytest.mark.parametrize("mode", ["close", "500"])
def test_fetch_retries_transient_failures(tmp_path, serve, blob, mode):
    srv = serve(blob.remote, fail_mode=mode, fail_count=2)
    path = fetch("blob.gz", tmp_path / "dest", [srv.url.rstrip("/")], blob.sha)
    assert gzip.decompress(path.read_bytes()) == blob.content
    assert len(srv.requests) == 3 and _listing(tmp_path / "dest") == ["blob.gz"]


def test_fetch_checksum_mismatch_leaves_nothing(tmp_path, serve, blob):
    srv = serve(blob.remote)
    dest = tmp_path / "dest"
    with pytest.raises(ChecksumError) as info:
        fetch("blob.gz", dest, [srv.url], "0" * 64)
    msg = one_line(info.value)
    assert "blob.gz" in msg and blob.sha[:16] in msg and "0000000000000000" in msg
    assert _listing(dest) == [] and len(srv.requests) == 1


def test_fetch_all_mirrors_down(tmp_path, serve, blob):
    flaky = serve(blob.remote, fail_mode="close", fail_count=99)
    mirrors = [serve(tmp_path / "empty").url, _dead_url(), flaky.url]
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError) as info:
        fetch("blob.gz", dest, mirrors, blob.sha)
    msg = one_line(info.value)
    assert all(m + "blob.gz" in msg for m in mirrors) and "HTTP 404" in msg
    assert len(flaky.requests) == data.DOWNLOAD_ATTEMPTS
    assert _listing(dest) == []
    with pytest.raises(DownloadError, match="no mirrors"):
        fetch("blob.gz", dest, [], None)


def test_load_mnist_downloads_into_cache(tmp_path, monkeypatch, serve, small_split):
    remote = tmp_path / "remote"
    arrays = make_idx_folder(remote)
    trust_files(monkeypatch, remote)
    srv = serve(remote)
    cache = tmp_path / "cache"
    monkeypatch.setenv(data.ENV_CACHE, str(cache))
    monkeypatch.setenv(data.ENV_MIRROR, srv.url)
    _check_tiny(load_dataset("mnist"), arrays)
    assert _listing(cache / "mnist") == sorted(s + ".gz" for s in data.IDX_FILES)
    assert len(srv.requests) == 4
    # second load: from the cache, no request
    srv.fail_count = 99
    _check_tiny(load_dataset("mnist"), arrays)
    assert len(srv.requests) == 4
    # a missing file is fetched again on its own
    (cache / "mnist" / (TEST_LABELS + ".gz")).unlink()
    srv.fail_count = 0
    load_dataset("mnist")
    assert srv.requests[-1] == "/" + TEST_LABELS + ".gz" and len(srv.requests) == 5


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_CACHE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == tmp_path / "xdg" / "l2reg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.default_cache_dir() == Path.home() / ".cache" / "l2reg"


# --------------------------------------------------------------------------
# User data: .npz and .csv
# --------------------------------------------------------------------------


def _clf_arrays(n: int = 50, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    X = np.arange(n * d, dtype=np.float64).reshape(n, d)
    return X, np.arange(n) % 3


def test_npz_classification_with_holdout(tmp_path):
    X, y = _clf_arrays()
    np.savez(tmp_path / "data.npz", X=X, y=y)
    ds = load_dataset(tmp_path / "data.npz")
    assert ds.name == "data.npz" and ds.n_classes == 3 and ds.X_test is None
    assert (ds.n_train, len(ds.X_val)) == (40, 10)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int32 and ds.X_train.flags.c_contiguous
    assert any("Held out 20% of X (10 examples) for validation" in n for n in ds.notes)
    assert sorted(np.bincount(ds.y_val).tolist()) == [3, 3, 4]  # stratified
    # features are used as given (no scaling); rows keep their labels
    rows = {tuple(r): lab for r, lab in zip(X.astype(np.float32), y)}
    assert all(rows[tuple(r)] == lab for r, lab in zip(ds.X_val, ds.y_val))
    again = load_dataset(tmp_path / "data.npz")
    np.testing.assert_array_equal(ds.X_val, again.X_val)
    assert load_dataset(tmp_path / "data.npz", train_size=5).n_train == 5


@pytest.mark.parametrize(
    "y, expect_shape, n_classes",
    [
        (np.linspace(0, 1, 30), (30, 1), None),
        (np.ones((30, 2)) * 0.5, (30, 2), None),
        (np.arange(30) % 2 * 1.0, (30,), 2),  # whole floats are labels
        (np.arange(30, dtype=np.uint8) % 4, (30,), 4),
    ],
)
def test_npz_task_detection(tmp_path, y, expect_shape, n_classes):
    np.savez(tmp_path / "d.npz", X=np.ones((30, 2), np.int64), X_val=np.ones((3, 2)), y=y, y_val=y[:3])
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.n_classes == n_classes and ds.y_train.shape == expect_shape
    assert ds.n_train == 30 and len(ds.y_val) == 3  # X_val given: all of X trains
    assert ds.y_train.dtype == (np.int32 if n_classes else np.float32)
    assert not any("Held out" in n for n in ds.notes)


def test_npz_eval_test(tmp_path):
    X, y = _clf_arrays()
    np.savez(tmp_path / "with.npz", X=X, y=y, X_test=X[:5], y_test=np.array([0, 1, 2, 3, 0]))
    ds = load_dataset(tmp_path / "with.npz", eval="test")
    assert ds.n_train == 50 and ds.X_val is None and len(ds.X_test) == 5 and ds.n_classes == 4
    np.savez(tmp_path / "without.npz", X=X, y=y)
    ds = load_dataset(tmp_path / "without.npz", eval="test")  # a stratified test part is held out of X
    assert ds.n_train == 40 and len(ds.X_test) == 10 and ds.X_val is None
    assert np.all(np.abs(np.bincount(ds.y_test, minlength=3) - 0.2 * np.bincount(y)) < 1)  # stratified
    assert any("Held out 20% of X (10 examples) as the test set, stratified by label" in n for n in ds.notes)


class _Evil:
    """Unpickling this would create a marker file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _evil_object_array(tmp_path: Path) -> dict:
    return {"X": np.array([[_Evil(str(tmp_path / "pwned"))]], dtype=object), "y": np.zeros(1)}


BAD_NPZ = [
    ("wrong keys", lambda t: {"data": np.ones((3, 2)), "target": np.zeros(3)}, "missing array 'X'"),
    ("missing y", lambda t: {"X": np.ones((3, 2))}, "missing array 'y'"),
    ("half pair", lambda t: {"X": np.ones((3, 2)), "y": np.zeros(3), "X_val": np.ones((1, 2))}, "'y_val'"),
    ("object array", _evil_object_array, "pickled"),
    ("nan in X", lambda t: {"X": np.array([[1.0, np.nan], [0, 0]]), "y": np.zeros(2)}, "non-finite"),
    ("inf in y", lambda t: {"X": np.ones((2, 2)), "y": np.array([0.5, np.inf])}, "y has 1 non-finite"),
    ("too big for float32", lambda t: {"X": np.full((2, 2), 1e300), "y": np.zeros(2)}, "non-finite"),
    ("row mismatch", lambda t: {"X": np.ones((3, 2)), "y": np.zeros(4)}, "y has 4 rows but X has 3"),
    ("1-D X", lambda t: {"X": np.ones(3), "y": np.zeros(3)}, "X must be 2-D"),
    ("string X", lambda t: {"X": np.array([["a", "b"]]), "y": np.zeros(1)}, "X must be numeric"),
    ("negative label", lambda t: {"X": np.ones((3, 2)), "y": np.array([0, -1, 2])}, "labels must be integers in 0..C-1; found -1"),
    ("feature mismatch", lambda t: {"X": np.ones((3, 2)), "y": np.zeros(3), "X_val": np.ones((1, 3)), "y_val": np.zeros(1)}, "X_val has 3 features"),
    ("target mismatch", lambda t: {"X": np.ones((3, 2)), "y": np.ones((3, 2)) / 3, "X_val": np.ones((1, 2)), "y_val": np.ones((1, 3)) / 3}, "y_val has shape"),
]


@pytest.mark.parametrize("make, fragment", [c[1:] for c in BAD_NPZ], ids=[c[0] for c in BAD_NPZ])
def test_bad_npz(tmp_path, make, fragment):
    path = tmp_path / "bad.npz"
    np.savez(path, **make(tmp_path))
    with pytest.raises(DataError) as info:
        load_dataset(path)
    msg = one_line(info.value)
    assert "bad.npz" in msg and fragment in msg, msg
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "content, fragment",
    [
        (pickle.dumps({"X": _Evil("/nonexistent/pwned"), "y": [0]}), "pickled"),
        (b"hello", "pickled"),
        (b"PK\x03\x04 broken zip", "not a readable .npz"),
        (b"", "not a readable .npz"),
    ],
)
def test_npz_not_an_archive(tmp_path, content, fragment):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_dataset(path)
    assert fragment in one_line(info.value)


def test_npy_named_npz(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.ones((2, 2)))
    (tmp_path / "a.npz").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="single .npy array"):
        load_dataset(tmp_path / "a.npz")


def test_csv_classification_and_regression(tmp_path):
    rows = "\n".join(f"{i},{i % 3},{i * 0.5}" for i in range(20))
    (tmp_path / "c.csv").write_text("x1,label,x2\n" + rows + "\n\n")
    ds = load_dataset(tmp_path / "c.csv")
    assert ds.n_classes == 3 and ds.n_features == 2 and (ds.n_train, len(ds.X_val)) == (16, 4)
    assert ds.name == "c.csv" and any("Held out 20% of X (4 examples)" in n for n in ds.notes)
    for X, y in (ds.split("train"), ds.split("validation")):
        np.testing.assert_allclose(X[:, 1], X[:, 0] * 0.5)
        np.testing.assert_array_equal(y, X[:, 0].astype(int) % 3)
    reg = load_dataset(tmp_path / "c.csv", label_column="x2")
    assert reg.n_classes is None and reg.y_train.shape == (16, 1) and reg.y_train.dtype == np.float32


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("a,b\n1,2\n", "no label column 'label' (name it with --label-column or label_column=); columns present: 'a', 'b'."),
        ("a,label\n1,0\nx,1\n", "line 3, column 'a': not a number: 'x'."),
        ("a,label\n1,0\n2,\n", "the label column 'label' has an empty cell"),
        ("", "empty file"),
        ("\n  \n", "empty file"),
        ("a,label\n", "no data rows"),
        ("a,label\n1,0,5\n", "line 2 has 3 fields"),
        ("a,label\nnan,0\n", "non-finite"),
        ("label\n1\n", "no feature columns"),
        ("a,label\n1,-2\n", "found -2"),
    ],
)
def test_bad_csv(tmp_path, text, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_dataset(path)
    msg = one_line(info.value)
    assert "bad.csv" in msg and fragment in msg, msg


def test_csv_eval_test_holds_out_a_test_part(tmp_path):
    rows = "\n".join(f"{i},{i % 2}" for i in range(20))
    (tmp_path / "c.csv").write_text("a,label\n" + rows + "\n")
    ds = load_dataset(tmp_path / "c.csv", eval="test")
    assert ds.n_train == 16 and len(ds.y_test) == 4 and sorted(ds.y_test) == [0, 0, 1, 1]
    assert not set(ds.X_train[:, 0]) & set(ds.X_test[:, 0])
    assert any("Held out 20% of X (4 examples) as the test set" in n for n in ds.notes)


# --------------------------------------------------------------------------
# Random bytes: DataError or success, never anything else
# --------------------------------------------------------------------------

_FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load_or_data_error(load, path: Path):
    try:
        return load(path)
    except DataError as err:
        one_line(err)
        return None


@_FUZZ
@given(
    prefix=st.sampled_from([b"", b"\x00\x00\x08\x01", b"\x00\x00\x08\x03", b"\x00\x00\x0d\x02", b"\x1f\x8b"]),
    body=st.binary(max_size=64),
    compress=st.booleans(),
)
def test_fuzz_read_idx(prefix, body, compress):
    content = prefix + body
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("f.idx.gz" if compress else "f.idx")
        path.write_bytes(gzip.compress(content) if compress else content)
        arr = _load_or_data_error(read_idx, path)
        assert arr is None or isinstance(arr, np.ndarray)


def _zip_with(member: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("X.npy", member)
        z.writestr("y.npy", member)
    return buf.getvalue()


@_FUZZ
@given(
    kind=st.sampled_from(["raw", "zip", "npy", "zipped-npy"]),
    body=st.binary(max_size=96),
)
def test_fuzz_npz(kind, body):
    npy_head = b"\x93NUMPY\x01\x00"
    content = {
        "raw": body,
        "zip": b"PK\x03\x04" + body,
        "npy": npy_head + body,
        "zipped-npy": _zip_with(npy_head + body),
    }[kind]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.npz"
        path.write_bytes(content)
        ds = _load_or_data_error(load_dataset, path)
        assert ds is None or isinstance(ds, Dataset)


_CELLS = st.sampled_from(["label", "a", "1", "0", "2.5", "-1", "nan", "", "x", '"q,1"', "1e40", " 3 "])


@_FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=80),
        st.lists(st.lists(_CELLS, min_size=1, max_size=4), max_size=6).map(
            lambda rows: "\n".join(",".join(r) for r in rows).encode()
        ),
    )
)
def test_fuzz_csv(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.csv"
        path.write_bytes(raw)
        ds = _load_or_data_error(load_dataset, path)
        assert ds is None or isinstance(ds, Dataset)


# ---------------------------------------------------------------- issue 24: labels, shapes, feature scales


def test_csv_string_labels_are_encoded_as_the_estimators_do(tmp_path):
    """Sorted unique values → 0..C-1 (scikit-learn's LabelEncoder), the names kept in ``classes`` and the notes."""
    from sklearn.preprocessing import LabelEncoder

    names = ["dog", "cat", "emu", "cat", "dog", "emu"] * 5
    rows = "\n".join(f"{i / 30:g},{name}" for i, name in enumerate(names))
    (tmp_path / "s.csv").write_text("a,kind\n" + rows + "\n")
    ds = load_dataset(tmp_path / "s.csv", label_column="kind", eval="test")
    assert ds.n_classes == 3 and ds.classes == ("cat", "dog", "emu")
    want = dict(zip(names, LabelEncoder().fit_transform(names)))
    got = np.concatenate([ds.y_train, ds.y_test])
    X = np.concatenate([ds.X_train, ds.X_test])[:, 0]
    assert [want[names[int(round(x * 30))]] for x in X] == list(got)
    assert "'cat' → 0, 'dog' → 1, 'emu' → 2" in " ".join(ds.notes)


def test_csv_numeric_labels_keep_no_classes(tmp_path):
    (tmp_path / "n.csv").write_text("a,label\n" + "\n".join(f"{i},{i % 2}" for i in range(10)) + "\n")
    assert load_dataset(tmp_path / "n.csv").classes is None


def test_feature_range_hint_names_raw_scales_only():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    raw = Dataset("raw", X[:200].astype(np.float32), y[:200].astype(np.int32), None, None, None, None, n_classes=10)
    hint = data.feature_range_hint(raw)
    assert hint is not None and "from 0 to 16" in hint and "--standardize" in hint and "\n" not in hint
    scaled = Dataset("s", (X[:200] / 16).astype(np.float32), y[:200].astype(np.int32), None, None, None, None,
                     n_classes=10)
    assert data.feature_range_hint(scaled) is None
    z = data.standardized(raw)
    assert data.feature_range_hint(z) is None
    np.testing.assert_allclose(z.X_train.mean(axis=0), 0, atol=1e-5)
    live = z.X_train.std(axis=0) > 0  # constant pixels stay 0
    np.testing.assert_allclose(z.X_train.std(axis=0)[live], 1, rtol=1e-4)
    assert "standardized" in z.notes[-1]


@pytest.mark.parametrize("kwargs, message", [
    (dict(dataset="digits", label_column="target"), "label_column applies to a .csv dataset; got dataset 'digits'."),
    (dict(dataset="digits", label_column=""), "label_column must be a non-empty string"),
    (dict(dataset="digits", standardize="yes"), "standardize must be True or False"),
])
def test_label_column_and_standardize_are_checked_once_in_the_options(kwargs, message):
    from l2reg.options import TrainOptions

    with pytest.raises((ConfigError, ConfigTypeError)) as info:
        TrainOptions(**kwargs).checked()
    assert message in str(info.value)
