"""Where ``L2REG_COMPILE_CACHE`` puts JAX's persistent compilation cache (nothing is compiled here)."""

from pathlib import Path

import pytest

from l2reg.base import compile_cache


@pytest.mark.parametrize("value,where", [
    ("", "default"), ("1", "default"), ("on", "default"), ("TRUE", "default"), ("yes", "default"),
    ("0", None), ("off", None), ("False", None), ("no", None),
    ("{tmp}/cache", "{tmp}/cache"), ("  {tmp}/x  ", "{tmp}/x"),
])
def test_cache_dir_reads_on_off_and_folders(value, where, monkeypatch, tmp_path):
    monkeypatch.setenv("L2REG_CACHE", str(tmp_path / "l2reg"))
    monkeypatch.setenv(compile_cache.ENV, value.format(tmp=tmp_path))
    if where == "default":
        want = tmp_path / "l2reg" / "jax"
    else:
        want = None if where is None else Path(where.format(tmp=tmp_path))
    assert compile_cache.cache_dir() == want
