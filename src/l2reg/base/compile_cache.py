"""JAX's persistent compilation cache, on by default, so that a second run starts in seconds.

Every run compiles its epoch, its monitoring and its initialization; with
the cache, a later run of the same shapes loads them from disk instead. The
cache lives in ``$L2REG_CACHE/jax`` (default ``~/.cache/l2reg/jax``);
``L2REG_COMPILE_CACHE=0`` (or off, false, no) turns it off, 1 (or on, true,
yes) keeps the default, and ``L2REG_COMPILE_CACHE=DIR`` puts it elsewhere. A cache folder that cannot be created or written is
skipped (with a note in the log), and a corrupt entry is recompiled (JAX
reads entries defensively and ``jax_raise_persistent_cache_errors`` stays
off), so the cache never fails a run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .paths import default_cache_dir

log = logging.getLogger(__name__)

ENV = "L2REG_COMPILE_CACHE"
_configured = False


def cache_dir() -> Path | None:
    """Where the cache goes, or None when it is turned off."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in ("0", "off", "false", "no"):
        return None
    if value and value.lower() not in ("1", "on", "true", "yes"):
        return Path(value).expanduser()
    return default_cache_dir() / "jax"


def _writable(folder: Path) -> bool:
    """Whether the cache folder is (or could be made) writable; nothing is created here (JAX creates the
    folder at its first compile, so a run that fails before compiling leaves nothing behind)."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        log.info("compilation cache off: %s is not writable", folder)
        return False
    return True


def configure() -> Path | None:
    """Turn the cache on (once per process) unless disabled or unwritable; returns its folder."""
    global _configured
    folder = cache_dir()
    if _configured:
        return folder
    if folder is None or not _writable(folder):
        return None
    import jax

    if jax.config.jax_compilation_cache_dir is None:  # a caller's own choice wins
        jax.config.update("jax_compilation_cache_dir", str(folder))
        # Small programs too: l2reg's compiles are many and short (a fraction of a second each).
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_raise_persistent_cache_errors", False)
    _configured = True
    return folder
