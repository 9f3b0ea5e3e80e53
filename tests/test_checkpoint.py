"""Checkpoint files: round trip, atomicity, refusal of foreign or crafted files."""

import io

import jax
import numpy as np
import optax
import pytest

from l2reg.base import checkpoint
from l2reg.core import network
from l2reg.errors import ConfigError, DataError
from l2reg.core.network import NetworkSpec


def _state():
    spec = NetworkSpec((4, 3, 2))
    params = network.stack([network.init_params(spec, jax.random.PRNGKey(k)) for k in range(2)])
    opt_state = optax.adam(1e-3).init(params)
    return {"params": params, "opt_state": opt_state}


def test_round_trip_keeps_structure_and_values(tmp_path):
    state = _state()
    path = checkpoint.save(tmp_path / "c.npz", state, {"epoch": 3, "config": {"lmbda": [0.1]}})
    loaded, meta = checkpoint.load(path, _state())
    assert meta["epoch"] == 3 and meta["config"] == {"lmbda": [0.1]}
    assert jax.tree.structure(loaded["opt_state"]) == jax.tree.structure(state["opt_state"])
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary file left behind


def test_template_of_another_shape_is_refused(tmp_path):
    path = checkpoint.save(tmp_path / "c.npz", _state(), {"epoch": 1})
    spec = NetworkSpec((4, 5, 2))
    other = {"params": network.stack([network.init_params(spec, jax.random.PRNGKey(0))] * 2)}
    with pytest.raises(DataError, match="expected"):
        checkpoint.load(path, other)


def test_pickle_payload_is_refused_safely(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle was loaded')",))

    buf = io.BytesIO()
    meta = np.frombuffer(b'{"format": 1, "epoch": 1}', dtype=np.uint8)
    np.savez(buf, **{"params/0": np.array([Boom()], dtype=object), "__meta__": meta})
    path = tmp_path / "evil.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="params/0"):
        checkpoint.load(path, _state())


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04garbage"])
def test_garbage_files_are_data_errors(tmp_path, content):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    with pytest.raises(DataError):
        checkpoint.read_meta(path)


def test_config_mismatch_names_the_option():
    checkpoint.check_same_config({"lmbda": [1.0], "epochs": 5}, {"lmbda": [1.0], "epochs": 9})
    with pytest.raises(ConfigError, match="option eta differs"):
        checkpoint.check_same_config({"eta": 0.5}, {"eta": 0.1})


@pytest.mark.parametrize("seconds, elapsed, due", [("0", 100.0, False), ("5", 1.0, False), ("5", 6.0, True)])
def test_a_save_within_an_epoch_is_due_every_few_seconds_since_the_start(monkeypatch, tmp_path, seconds, elapsed,
                                                                          due):
    monkeypatch.setenv(checkpoint.CHECKPOINT_ENV, seconds)  # 0: at epoch ends only
    c = checkpoint.Checkpointing(tmp_path / "c.npz", {})
    c.start()
    c.started -= elapsed
    assert c.due_within_epoch() is due
