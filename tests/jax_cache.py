"""A persistent XLA compilation cache in a temporary folder, for the test modules that use it.

Every ``fit_stack`` call compiles its epoch (about a second on a loaded 2-core
machine). Tests that fit the same shapes many times (scikit-learn's estimator
checks, a vectorized run against its separate runs) then hit the cache
instead. Use it with ``from jax_cache import compilation_cache  # noqa: F401``
and ``pytestmark = pytest.mark.usefixtures("compilation_cache")``.
"""

import jax
import pytest

_NAMES = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
          "jax_persistent_cache_min_entry_size_bytes")


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory):
    from jax.experimental.compilation_cache import compilation_cache as cc

    saved = {name: getattr(jax.config, name) for name in _NAMES}
    jax.config.update(_NAMES[0], str(tmp_path_factory.mktemp("jax-cache")))
    jax.config.update(_NAMES[1], 0.0)
    jax.config.update(_NAMES[2], -1)
    cc.reset_cache()
    yield
    for name, value in saved.items():
        jax.config.update(name, value)
    cc.reset_cache()
