"""Sweeps on a Ray cluster: the CV grid in blocks, one Ray task per block.

A sweep's cross-validation is P = E·L pairs (η, λ; λ fastest) × k folds. On
Ray each *block* (one fold × ``block_size`` pairs; by default all of a
fold's P pairs) is one task that trains its models as one vectorized stack
with the same block function as in process (the front's, e.g. :func:`l2reg.fronts.sweeping.train_block`), so a
task is a whole stack, not a trial: one fold of one block trains on its
n = that fold's training size, with the fold's own seed, exactly as the
in-process run's group g does. The refit of the λ path at the chosen η
(n = the whole training set) is one more block, or with ``block_size``
blocks of that many λ (each λ's model starts from the same seed and sees
the same data order however the path is cut). The data (the
front's task, e.g. :class:`~l2reg.fronts.sweeping.CVTask`: X, y, folds, pairs, test set) goes to the
cluster once (``ray.put``); each node's object store then serves it to
every task there.

Faults. A task whose worker dies is retried (``max_retries``). With a run
folder every finished block is saved atomically to ``DIR/blocks/NAME.npz``
(NumPy arrays and a JSON skeleton, no pickle) as soon as it arrives, and
``DIR/checkpoint-cv.npz`` (written before the first task) holds the options
that ``l2reg sweep --resume DIR`` resumes with; a resumed run loads the
finished blocks and submits only the others. ``DIR/blocks/log.json`` records,
per start of the sweep, the blocks it loaded and the blocks it ran (where,
how long), which is how a resume shows that it did not rerun any.

Connecting. ``address`` None starts a Ray instance on this machine (or uses
the one this process already has); "auto" joins the cluster started here
with ``ray start``; HOST:PORT joins the cluster whose head is there. Before
``ray.init`` (which waits a long time for an address where nothing answers)
the address gets a TCP check of a few seconds, so that a wrong one is one
clear line. A cluster with Ray's token authentication (what ``ray start
--head`` gives once ``~/.ray/auth_token`` exists) admits a process that
joins by address only with ``RAY_AUTH_MODE=token`` and that token (Ray's
rule; the error says so). Ray is imported only here, inside functions:
``import l2reg`` and ``import l2reg.sweep`` never import it.

Workers compile like any l2reg process, through l2reg's compilation cache
on their node (:mod:`l2reg.base.compile_cache`): each shape compiles once per
node, and later blocks and later sweeps load it.

Nothing here is specific to JAX: :meth:`RayExecutor.run_blocks` ships a task
object once and calls a block function on each block.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
import zipfile
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ..base import checkpoint, interrupts, store
from ..base import validation as V
from ..errors import ConfigError, Interrupted, L2RegError
from ..options import check_backend, parse_address  # noqa: F401  (the checks live with the options)
from .cv import CHECKPOINT_CV, BlockResult, RefitBlock, assemble, join_refits, plan_blocks, refit_blocks

log = logging.getLogger(__name__)

LOG_FILE = "log.json"
#: Retries of a block whose worker died (Ray's ``max_retries``); errors raised by the block itself are not retried.
MAX_RETRIES = 3
#: Seconds the TCP check of ``address`` waits for an answer.
CONNECT_TIMEOUT = 3.0
_TREE = "__tree__"


class ClusterError(L2RegError, RuntimeError):
    """A block could not be trained on the cluster (its worker died more than ``max_retries`` times, say)."""


# ---------------------------------------------------------------- options


def _resolve_auto() -> tuple[str, int] | None:
    """The head that ``address="auto"`` joins, as Ray finds it (RAY_ADDRESS, then this machine's cluster)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:  # a Ray without this helper: ray.init finds it, unchecked
        return None
    try:
        return parse_address(canonicalize_bootstrap_address_or_die("auto"))
    except ConnectionError:
        raise ConfigError("address 'auto': no Ray cluster is running on this machine; start one with "
                          "`ray start --head`, or give the head's HOST:PORT.") from None


def check_reachable(address, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """A one-line :class:`~l2reg.errors.ConfigError` unless something answers at ``address`` within ``timeout`` s."""
    where = _resolve_auto() if address == "auto" else parse_address(address)
    if where is None:
        return
    host, port = where
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__).lower()
        raise ConfigError(f"address {address}: no Ray cluster answers at {host}:{port} ({why}); start one with "
                          f"`ray start --head --port {port}` there, or check the address.") from None


# ---------------------------------------------------------------- the connection


_connected: dict = {}  # the address this module passed to ray.init, while it holds that connection


def connect(address=None) -> None:
    """``ray.init`` for ``address`` (None: a Ray instance on this machine), unless this process is connected.

    A connection this module made to another address is closed first; one the
    caller made (``ray.init`` before the sweep) is used as it is.
    """
    import ray

    if ray.is_initialized():
        if not _connected or _connected.get("address") == address or address is None:
            return
        ray.shutdown()
    kwargs = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": False}
    if address is None:
        token = Path.home() / ".ray" / "auth_token"
        had_token = token.exists()
        ray.init(include_dashboard=False, **kwargs)
        if not had_token and token.exists():
            log.warning(AUTH_TOKEN_NOTE.format(token=_home_relative(token)))
    else:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, getattr(ray.exceptions, "AuthenticationError", ConnectionError)) as e:
            raise _connect_error(address, e) from None
    _connected.clear()
    _connected["address"] = address


#: Said once, on the run that made Ray create the token (recent Ray does so when it starts a local instance).
AUTH_TOKEN_NOTE = ("Ray created {token}: from now on `ray start --head` on this machine turns on token "
                   "authentication, so every machine or process that joins that cluster by address needs "
                   "`export RAY_AUTH_MODE=token` and this token (delete the file to go back).")


def _home_relative(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def _connect_error(address: str, error: Exception) -> ConfigError:
    """One line for a failed ``ray.init(address=...)``; Ray's token authentication named when it was the cause."""
    import ray

    auth = getattr(ray.exceptions, "AuthenticationError", ())  # token authentication (recent Ray)
    if any(isinstance(c, auth) for c in (error, error.__cause__, error.__context__)):
        return ConfigError(f"address {address}: the cluster wants Ray's authentication token; set RAY_AUTH_MODE=token "
                           "and give the head's token (~/.ray/auth_token, or RAY_AUTH_TOKEN).")
    return ConfigError(f"address {address}: cannot join the Ray cluster there ({_first_line(error)}).")


def describe_cluster() -> str:
    """The cluster's size in words: "2 nodes, 8 CPUs"."""
    import ray

    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    cpus = int(ray.cluster_resources().get("CPU", 0))
    return f"{nodes} node{'s' if nodes != 1 else ''}, {cpus} CPU{'s' if cpus != 1 else ''}"


# ---------------------------------------------------------------- blocks and their files


def pack(tree) -> dict:
    """A tree of dicts, lists, arrays and JSON scalars as flat arrays plus its JSON skeleton (no pickle)."""
    arrays = {}

    def walk(x):
        if isinstance(x, dict):
            if not all(isinstance(k, str) for k in x):
                raise TypeError(f"pack needs string keys; got {list(x)!r}.")
            return {"d": {k: walk(v) for k, v in x.items()}}
        if isinstance(x, (list, tuple)):
            return {"l": [walk(v) for v in x]}
        if x is None or isinstance(x, (bool, int, float, str)):
            return {"v": x}
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(x)
        return {"a": key}

    skeleton = walk(tree)
    arrays[_TREE] = np.frombuffer(json.dumps(skeleton, allow_nan=True).encode(), np.uint8)
    return arrays


def unpack(arrays) -> object:
    """The tree that :func:`pack` flattened (``arrays``: a mapping such as an open ``.npz``)."""

    def walk(node):
        kind, value = next(iter(node.items()))
        if kind == "d":
            return {k: walk(v) for k, v in value.items()}
        if kind == "l":
            return [walk(v) for v in value]
        return value if kind == "v" else np.asarray(arrays[value])

    return walk(json.loads(bytes(arrays[_TREE]).decode()))


class BlockStore:
    """The run folder's ``blocks/``: one ``NAME.npz`` per finished block, and ``log.json`` of what ran."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir) / checkpoint.BLOCKS_DIR
        self.log_path = self.dir / LOG_FILE

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.npz"

    def save(self, name: str, doc: dict) -> None:
        store.write_npz(self.path(name), pack(doc))

    def load(self, name: str, block: dict) -> dict | None:
        """The saved ``doc`` of block ``name`` if it is there and was this ``block``; else None."""
        path = self.path(name)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                doc = unpack(z)
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, json.JSONDecodeError,
                UnicodeDecodeError) as e:
            log.warning("%s: unreadable (%s); training the block again", path, type(e).__name__)
            return None
        if doc.get("block") != block:
            log.warning("%s holds another block (%s); training it again", path, doc.get("block"))
            return None
        return doc

    def clear(self) -> None:
        """Remove the blocks of an earlier run in this folder (a fresh start, ``--overwrite``)."""
        if self.dir.is_dir():
            for path in self.dir.glob("*.npz"):
                path.unlink()
            self.log_path.unlink(missing_ok=True)

    def runs(self) -> list:
        """The log: one entry per start of a stage (``stage``, ``resume``, ``loaded``, ``ran``)."""
        if not self.log_path.is_file():
            return []
        return json.loads(self.log_path.read_text())["runs"]

    def write_log(self, runs: list) -> None:
        store.write_json(self.log_path, {"runs": runs})


def _block_id(block) -> dict:
    """What identifies a block in its file: its folds and pairs, or the refit's η and λ path."""
    if isinstance(block, RefitBlock):
        return {"eta": float(block.eta), "lmbdas": [float(v) for v in block.lmbdas]}
    return {"folds": [int(g) for g in block.folds], "pairs": [int(p) for p in block.pairs]}


# ---------------------------------------------------------------- what a worker runs


def _to_numpy(tree):
    if isinstance(tree, dict):
        return {k: _to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_to_numpy(v) for v in tree]
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    return np.asarray(tree)


def run_block(fn: Callable, task, block, hook: Callable | None = None) -> dict:
    """What a worker runs: ``fn(task, block, on_epoch=...)``, as NumPy, with where and how long it ran.

    ``hook(block_name, epoch)``, if given, runs before the block's training
    (epoch None) and after each of its epochs, in the worker.
    """
    from .. import __version__

    on_epoch = None if hook is None else (lambda epoch, _metrics: hook(block.name, epoch))
    t0 = time.perf_counter()
    result = _to_numpy(fn(task, block, on_epoch=on_epoch).to_dict())
    return {"result": result, "worker": {"pid": os.getpid(), "node": _node_ip(),
                                         "seconds": time.perf_counter() - t0, "l2reg": __version__}}


def _node_ip() -> str:
    import ray.util

    return ray.util.get_node_ip_address()


# ---------------------------------------------------------------- the executor


class RayExecutor:
    """Trains a sweep's two stages on a Ray cluster, in blocks; the same interface as
    :class:`l2reg.fronts.orchestration.LocalExecutor` (``cv``, ``refit``) and, to float32 tolerance, the same results.

    ``address``: None (a Ray instance on this machine, or the connection this
    process already has), "auto" or HOST:PORT. ``block_size``: pairs per
    task (None: all of a fold's). ``run_dir``: where finished blocks are
    saved (``blocks/``) and ``checkpoint-cv.npz`` says what to resume;
    ``resume`` loads the finished blocks and runs only the others (``config``
    must equal the saved one, ``address`` aside). ``on_block(done, total,
    cluster)`` is called as blocks finish (default: a log line).
    The count runs over both stages: k·⌈P/block_size⌉ CV blocks, then
    ⌈L/block_size⌉ refit blocks (``expect_refit=False`` when no refit follows, as in
    :class:`~l2reg.sklearn.L2MLPClassifierCV`, whose refit is in process).
    ``max_retries``: retries of a block whose worker died. ``worker_hook``
    (picklable) runs in the worker before each block and after each of its
    epochs as ``worker_hook(block_name, epoch)``: for fault-injection tests
    and debugging. ``on_epoch`` of ``cv``/``refit`` is not called on Ray.
    Each stage gets its block function (a front's
    :class:`~l2reg.fronts.orchestration.Blocks`): ``fn(task, block, on_epoch=...)``
    returning a :class:`~l2reg.fronts.cv.BlockResult`; nothing here knows a front.

    The connection stays open for the rest of the process (later sweeps
    reuse its warm workers; ``ray.shutdown()`` ends it).
    """

    def __init__(self, run_dir=None, *, resume: bool = False, config: dict | None = None, address=None,
                 block_size: int | None = None, max_retries: int = MAX_RETRIES,
                 on_block: Callable[[int, int, str], None] | None = None, expect_refit: bool = True,
                 worker_hook: Callable | None = None):
        check_backend("ray", address, block_size)
        self.max_retries = V.integer("max_retries", max_retries, low=0)
        if address is not None:
            check_reachable(address)  # seconds, before any data is loaded or any file written
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.resume, self.config = resume, dict(config or {})
        self.address, self.block_size = address, block_size
        self.on_block = on_block or _log_block
        self.worker_hook = worker_hook
        self.expect_refit = V.flag("expect_refit", expect_refit)
        self._cv_blocks = 0  # CV blocks of this executor, where the refit's count starts
        self._connect_seconds = 0.0
        self._task = None  # (task, its object ref)
        self.blocks = None if self.run_dir is None else BlockStore(self.run_dir)

    # ------------------------------------------------------------ the two stages

    def cv(self, fn: Callable, task, on_epoch=None, beside=None):
        """Every pair on every fold, one task per block; the blocks assembled into one :class:`~l2reg.fronts.cv.CVRun`.
        ``beside`` is not run: the workers compile their own blocks."""
        t0 = time.perf_counter()
        connect(self.address)
        self._connect_seconds = time.perf_counter() - t0
        blocks = plan_blocks(len(task.pair_lmbda), len(task.folds), self.block_size)
        self._start_run_dir([b.name for b in blocks])
        self._cv_blocks = len(blocks)
        L = len(task.pair_lmbda) // len(np.unique(task.pair_eta))  # the λ path that the refit trains
        n_refit = math.ceil(L / (self.block_size or L)) if self.expect_refit else 0
        results = self.run_blocks(fn, task, blocks, stage="cv", total=len(blocks) + n_refit)
        return assemble(task, blocks, results)

    def refit(self, fn: Callable, task, grid: list, eta: float, on_epoch=None) -> BlockResult:
        """The λ path ``grid`` at ``eta`` on all the training rows , in blocks of
        ``block_size`` λ (each λ's model is independent of the others: same seed, same data order)."""
        connect(self.address)
        blocks = refit_blocks(eta, grid, self.block_size)
        results = self.run_blocks(fn, task, blocks, stage="refit", offset=self._cv_blocks,
                                  total=self._cv_blocks + len(blocks))
        return join_refits(results)

    # ------------------------------------------------------------ the run folder

    def _start_run_dir(self, names: list) -> None:
        """Resume: check the saved options. Fresh start: the meta-only checkpoint that ``--resume`` reads."""
        if self.run_dir is None:
            return
        path = self.run_dir / CHECKPOINT_CV
        if self.resume and path.is_file():
            meta = checkpoint.read_meta(path)
            if meta.get("backend") != "ray":
                raise ConfigError(f"cannot resume {self.run_dir} on backend 'ray': it was started in process.")
            checkpoint.check_same_config(meta.get("config", {}), self.config, ignore=tuple(checkpoint.MAY_CHANGE))
            return
        self.blocks.clear()
        checkpoint.save(path, {}, {"config": self.config, "backend": "ray", "stage": "cv", "blocks": names})

    # ------------------------------------------------------------ running blocks

    def run_blocks(self, fn: Callable, task, blocks: Sequence, *, stage: str, offset: int = 0,
                   total: int | None = None) -> list:
        """``fn(task, block)`` for every block on the cluster (finished ones loaded when resuming); results in order.

        ``on_block`` counts from ``offset`` (blocks of earlier stages) up to ``total``.
        """
        import ray

        t_start = time.perf_counter()
        docs = {}
        if self.blocks is not None and self.resume:
            docs = {b.name: d for b in blocks if (d := self.blocks.load(b.name, _block_id(b))) is not None}
        todo = [b for b in blocks if b.name not in docs]
        cluster = describe_cluster()
        entry = {"stage": stage, "resume": bool(self.resume), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "cluster": cluster, "connect_seconds": self._connect_seconds if stage == "cv" else 0.0,
                 "loaded": sorted(docs), "ran": []}
        runs = self._log(None, entry)
        log.info("ray %s: %d blocks on %s (%d finished before)", stage, len(blocks), cluster, len(docs))
        total = len(blocks) + offset if total is None else total
        self.on_block(offset + len(docs), total, cluster)
        if todo:
            t0 = time.perf_counter()
            task_ref = self._put(task)
            entry["put_seconds"] = time.perf_counter() - t0
            remote = ray.remote(max_retries=self.max_retries, retry_exceptions=False, num_cpus=1)(run_block)
            pending = {remote.remote(fn, task_ref, b, self.worker_hook): b for b in todo}
            with interrupts.graceful() if self.run_dir is not None else nullcontext():
                self._collect(pending, docs, entry, runs, count=(offset, total), cluster=cluster)
        entry["wall_seconds"] = time.perf_counter() - t_start
        self._log(runs, entry)
        return [BlockResult.from_dict(docs[b.name]["result"]) for b in blocks]

    def _put(self, task):
        """The task in the cluster's object store, put once for both stages (each node then fetches it once)."""
        import ray

        if self._task is None or self._task[0] is not task:
            self._task = (task, ray.put(task))
        return self._task[1]

    def _collect(self, pending: dict, docs: dict, entry: dict, runs: list, *, count: tuple, cluster: str) -> None:
        """Wait for the blocks in ``pending`` (ref -> block), saving each as it arrives."""
        import ray

        offset, total = count
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                if interrupts.requested():
                    where = f" {len(docs)} finished blocks are saved in {self.blocks.dir}." if self.blocks else ""
                    raise Interrupted(f"stopped with {len(pending)} blocks still running;{where}", epoch=0,
                                      checkpoint=None if self.blocks is None else self.blocks.dir)
                for ref in ready:
                    block = pending.pop(ref)
                    out = self._get(ref, block)
                    doc = {"block": _block_id(block), "worker": out["worker"], "result": out["result"]}
                    if self.blocks is not None:
                        self.blocks.save(block.name, doc)
                    docs[block.name] = doc
                    entry["ran"].append({"name": block.name, **out["worker"]})
                    self._log(runs, entry)
                    _check_version(out["worker"])
                    self.on_block(offset + len(docs), total, cluster)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def _get(self, ref, block):
        """The block's output; a block's own error raised as it is, a lost worker as :class:`ClusterError`."""
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, L2RegError):
                raise cause from None
            why = _first_line(cause if cause is not None else e)
            raise ClusterError(f"block {block.name} failed on the cluster: {why}") from None
        except ray.exceptions.RayError as e:
            raise ClusterError(f"block {block.name} failed on the cluster after {self.max_retries} retries: "
                               f"{_first_line(e)}") from None

    def _log(self, runs: list | None, entry: dict) -> list:
        """Write ``blocks/log.json`` with ``entry`` as its last run (appended when ``runs`` is None)."""
        if self.blocks is None:
            return []
        if runs is None:
            runs = self.blocks.runs() + [entry]
        self.blocks.write_log(runs)
        return runs


def _log_block(done: int, total: int, cluster: str) -> None:
    log.info("ray: %d of %d blocks done (%s)", done, total, cluster)


def _check_version(worker: dict) -> None:
    from .. import __version__

    if worker.get("l2reg") != __version__:
        log.warning("worker on %s runs l2reg %s, this process %s: install the same version on every node",
                    worker.get("node"), worker.get("l2reg"), __version__)


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
