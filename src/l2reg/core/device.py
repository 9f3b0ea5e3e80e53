"""Arrays onto the device without compiling anything.

``jnp.asarray`` of a NumPy array compiles a small XLA program for each shape
and dtype it meets (``jit(stage)``, and ``convert_element_type`` for a new
dtype): a sweep met about twenty of them, each compiled on a first run and
traced and looked up on every later one. :func:`to_device` copies instead
(``jax.device_put``), converting in NumPy first, which rounds as XLA does
(round to nearest even), so the values are the same bits.
"""

from __future__ import annotations

import jax
import numpy as np


def to_device(a, dtype=None) -> jax.Array:
    """``jnp.asarray(a, dtype)``'s array, copied rather than compiled (a device array is converted only if
    its dtype differs). Without x64, 64-bit NumPy arrays become 32-bit ones, as ``jnp.asarray`` makes them."""
    if isinstance(a, jax.Array):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    a = np.asarray(a)
    return jax.device_put(a if dtype is None else a.astype(dtype, copy=False))
