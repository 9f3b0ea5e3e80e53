"""The engine's initial stack is network2's initialization, bit for bit, whatever compiles it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from l2reg.core import engine, network
from l2reg.core.network import NetworkSpec

CASES = [  # (sizes, init, dtype, seeds, L)
    ((64, 30, 10), "large", jnp.float32, (0,), 1),
    ((784, 30, 10), "default", jnp.float32, (0, 1, 2, 3, 4), 2),
    ((5, 4, 6, 3), "default", jnp.float64, (7, 3), 3),
    ((784, 100, 50, 10), "large", jnp.float32, (11,), 1),
]


@pytest.mark.parametrize("sizes,init,dtype,seeds,L", CASES)
def test_init_stack_equals_init_params_of_each_seed_bit_for_bit(sizes, init, dtype, seeds, L):
    spec = NetworkSpec(sizes)
    with jax.enable_x64(dtype == jnp.float64):
        got = engine.init_stack(spec, seeds, L, init, dtype)
        want = network.stack([network.init_params(spec, engine.seed_keys(s)[0], init, dtype) for s in seeds], repeats=L)
        for g, w in zip(got, want):
            assert g["w"].dtype == w["w"].dtype == jnp.dtype(dtype)
            np.testing.assert_array_equal(g["w"], w["w"])
            np.testing.assert_array_equal(g["b"], w["b"])
