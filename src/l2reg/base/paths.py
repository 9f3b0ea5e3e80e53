"""Where l2reg keeps what it caches (downloaded data sets, compiled programs)."""

from __future__ import annotations

import os
from pathlib import Path

#: The cache folder, when set.
ENV_CACHE = "L2REG_CACHE"


def default_cache_dir() -> Path:
    """``$L2REG_CACHE``, else ``$XDG_CACHE_HOME/l2reg``, else ``~/.cache/l2reg``."""
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        return Path(xdg).expanduser() / "l2reg"
    return Path.home() / ".cache" / "l2reg"
