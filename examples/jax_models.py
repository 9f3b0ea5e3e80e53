"""JAX model factories for l2reg.jax: each takes a ``jax.random`` key and returns the library's own model.

    from l2reg.jax import Member, train_ensemble
    from examples.jax_models import nnx_cnn
    result = train_ensemble(nnx_cnn, X, y, members=[Member(lmbda=l, eta=0.1) for l in (0, 1, 10)], epochs=5)
    model = result.model(2)  # an nnx.Module, trained with λ = 10

Inputs are scikit-learn's 8×8 digits as 64 features per row, as l2reg loads them.
"""

import equinox as eqx
import flax.linen as linen
import jax
import jax.numpy as jnp
from flax import nnx


class DigitsCNN(nnx.Module):
    """A small Flax NNX CNN with BatchNorm: two conv blocks (conv, BatchNorm, ReLU, 2×2 max-pool), two dense layers."""

    def __init__(self, rngs: nnx.Rngs, classes: int = 10):
        self.conv1 = nnx.Conv(1, 8, (3, 3), padding="SAME", rngs=rngs)
        self.bn1 = nnx.BatchNorm(8, rngs=rngs)
        self.conv2 = nnx.Conv(8, 16, (3, 3), padding="SAME", rngs=rngs)
        self.bn2 = nnx.BatchNorm(16, rngs=rngs)
        self.fc = nnx.Linear(64, 32, rngs=rngs)
        self.out = nnx.Linear(32, classes, rngs=rngs)

    def __call__(self, x):
        x = x.reshape(-1, 8, 8, 1)  # NHWC
        x = nnx.max_pool(nnx.relu(self.bn1(self.conv1(x))), (2, 2), (2, 2))  # (4, 4, 8)
        x = nnx.max_pool(nnx.relu(self.bn2(self.conv2(x))), (2, 2), (2, 2))  # (2, 2, 16)
        return self.out(nnx.relu(self.fc(x.reshape(x.shape[0], -1))))


def nnx_cnn(key) -> nnx.Module:
    """The Flax NNX CNN with BatchNorm (running statistics carried per member; eval mode uses them)."""
    return DigitsCNN(nnx.Rngs(key))


class LinenMLP(linen.Module):
    """A Flax Linen MLP 64-100-10 with dropout (off when ``train`` is False, as l2reg evaluates)."""

    hidden: int = 100
    classes: int = 10

    @linen.compact
    def __call__(self, x, train: bool = True):
        x = linen.relu(linen.Dense(self.hidden)(x))
        x = linen.Dropout(0.1, deterministic=not train)(x)
        return linen.Dense(self.classes)(x)


def linen_mlp(key):
    """A Linen ``(module, variables)`` pair."""
    module = LinenMLP()
    return module, module.init(key, jnp.zeros((1, 64)), train=False)


def equinox_mlp(key) -> eqx.Module:
    """An Equinox MLP 64-100-10, called on one example (l2reg vmaps it over the batch)."""
    return eqx.nn.MLP(64, 10, 100, 1, activation=jax.nn.relu, key=key)
