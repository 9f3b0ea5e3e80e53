"""The network: parameters, forward pass, costs and accuracy, for K models at once.

A *stack* of K models is one pytree: a list with one dict per layer,

    {"w": (n_in, K, n_out), "b": (K, n_out)}

The model axis sits second-to-last in every leaf. Two reasons:

* with one mini-batch shared by all K models, the first layer of all of them
  is a single ``(m, n_in) @ (n_in, K*n_out)`` matrix multiply, which is what
  makes training many λ at once cheap on a CPU (see docs/benchmarks.md);
* a per-model hyperparameter stored as ``(K, 1)`` broadcasts against every
  leaf, so plain optax transforms (``add_decayed_weights``, ``sgd``) take one
  λ and one η per model without any vmap.

Models in one stack are arranged as G groups of L members (K = G·L). The
members of a group see the same mini-batches (a λ list with one seed); groups
differ in data order or data (seeds, cross-validation folds).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..options import ACTIVATIONS, COSTS, INITS  # noqa: F401  (re-exported: the choices live with the options)

# The output layer that each cost goes with (quadratic is sigmoid for
# classification, linear for regression).
_OUTPUT = {"cross-entropy": "sigmoid", "log-likelihood": "softmax"}


@dataclass(frozen=True)
class NetworkSpec:
    """Static description of the network; hashable, so it can key a jit cache."""

    sizes: tuple[int, ...]
    activation: str = "sigmoid"
    cost: str = "cross-entropy"
    regression: bool = False

    @property
    def output(self) -> str:
        if self.cost == "quadratic":
            return "linear" if self.regression else "sigmoid"
        return _OUTPUT[self.cost]

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1


# ---------------------------------------------------------------- parameters


def init_normals(spec: NetworkSpec, key: jax.Array, dtype=jnp.float32):
    """One model's N(0, 1) draws, before scaling: a list of ``{"w": (n_in, n_out), "b": (n_out,)}``."""
    params = []
    for layer, (n_in, n_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        kw, kb = jax.random.split(jax.random.fold_in(key, layer))
        params.append({"w": jax.random.normal(kw, (n_in, n_out), dtype), "b": jax.random.normal(kb, (n_out,), dtype)})
    return params


def init_scale(spec: NetworkSpec, init: str = "default") -> list[float]:
    """The weight scale of each layer: 1/√n_in (``default``) or 1 (``large``)."""
    return [1.0 / np.sqrt(n_in) if init == "default" else 1.0 for n_in in spec.sizes[:-1]]


def init_params(spec: NetworkSpec, key: jax.Array, init: str = "default", dtype=jnp.float32):
    """One model's parameters, as network2 initializes them.

    ``default``: weights ~ N(0, 1/n_in) (network2's default_weight_initializer);
    ``large``: weights ~ N(0, 1) (its large_weight_initializer).
    Biases ~ N(0, 1) in both, as in network2.
    Returns a list of ``{"w": (n_in, n_out), "b": (n_out,)}``.
    """
    return [{"w": scale * layer["w"], "b": layer["b"]}
            for scale, layer in zip(init_scale(spec, init), init_normals(spec, key, dtype))]


def stack(models, repeats: int = 1):
    """Stack a list of single-model parameter lists into one K-model stack.

    Each model is repeated ``repeats`` times in a row (the L members of a group
    start from the same weights).
    """
    models = [m for m in models for _ in range(repeats)]
    return [
        {
            "w": jnp.stack([m[i]["w"] for m in models], axis=1),  # (n_in, K, n_out)
            "b": jnp.stack([m[i]["b"] for m in models], axis=0),  # (K, n_out)
        }
        for i in range(len(models[0]))
    ]


def unstack(params, k: int):
    """Model k of a stack, as a list of ``{"w": (n_in, n_out), "b": (n_out,)}``."""
    return [{"w": layer["w"][:, k, :], "b": layer["b"][k]} for layer in params]


def n_models(params) -> int:
    return params[0]["b"].shape[0]


# ---------------------------------------------------------------- forward


def _act(name: str, z):
    if name == "sigmoid":
        return jax.nn.sigmoid(z)
    if name == "tanh":
        return jnp.tanh(z)
    if name == "relu":
        return jax.nn.relu(z)
    raise ValueError(name)


def logits(spec: NetworkSpec, params, x):
    """Pre-activations of the output layer for every model: ``(m, K, n_out)``.

    ``x`` is ``(m, n_in)`` when all K models see the same inputs, or
    ``(G, m, n_in)`` with one batch per group of K/G models.
    """
    w0 = params[0]["w"]
    n_in, K, n_out = w0.shape
    if x.ndim == 2 and K < 4:
        # For one or a few models this contraction takes XLA's faster small-GEMM
        # path (measured: 0.22 against 0.26 s per MNIST epoch at K = 1).
        z = jnp.einsum("mi,iko->mko", x, w0)
    elif x.ndim == 2:
        # One GEMM for all models: (m, n_in) @ (n_in, K*n_out).
        z = (x @ w0.reshape(n_in, K * n_out)).reshape(x.shape[0], K, n_out)
    else:
        G = x.shape[0]
        z = jnp.einsum("gmi,iglo->mglo", x, w0.reshape(n_in, G, K // G, n_out))
        z = z.reshape(x.shape[1], K, n_out)
    z = z + params[0]["b"]
    for layer in params[1:]:
        a = _act(spec.activation, z)
        z = jnp.einsum("mki,iko->mko", a, layer["w"]) + layer["b"]
    return z


def to_groups(tree, G: int):
    """A stack (or any tree shaped like one) in group-major layout, for G data streams.

    ``(n_in, K, n_out)`` leaves become ``(G, n_in, L, n_out)`` and ``(K, c)``
    leaves (biases, ``(K, 1)`` hyperparameters) ``(G, 1, L, c)``, so that
    per-model numbers still broadcast against every leaf, and each group's
    first layer is one contiguous ``(n_in, L·n_out)`` matrix. Other leaves
    (step counts) are unchanged. :func:`from_groups` undoes it.
    """

    def one(a):
        if a.ndim == 3:
            n_in, K, n_out = a.shape
            return jnp.transpose(a.reshape(n_in, G, K // G, n_out), (1, 0, 2, 3))
        if a.ndim == 2:
            K, c = a.shape
            return a.reshape(G, 1, K // G, c)
        return a

    return jax.tree.map(one, tree)


def from_groups(tree, like):
    """Undo :func:`to_groups`; ``like`` is a tree in the usual layout (only its shapes are read)."""

    def one(a, ref):
        if ref.ndim == 3:
            G, n_in, L, n_out = a.shape
            return jnp.transpose(a, (1, 0, 2, 3)).reshape(n_in, G * L, n_out)
        if ref.ndim == 2:
            return a.reshape(ref.shape)
        return a

    return jax.tree.map(one, tree, like)


def logits_grouped(spec: NetworkSpec, params, x):
    """Output pre-activations ``(G, m, L, n_out)`` of a group-major stack (:func:`to_groups`).

    ``x`` is ``(G, m, n_in)``: group g's batch, seen by its L models. The first
    layer is one batched GEMM ``(G, m, n_in) @ (G, n_in, L·n_out)``, which the
    usual layout can only get by transposing W1 on every step.
    """
    w0 = params[0]["w"]
    G, n_in, L, n_out = w0.shape
    z = jnp.matmul(x, w0.reshape(G, n_in, L * n_out)).reshape(G, x.shape[1], L, n_out) + params[0]["b"]
    return head_grouped(spec, z, params[1:])


def head_grouped(spec: NetworkSpec, z, layers):
    """The network after its first layer, group-major: output pre-activations from z1 ``(G, m, L, H)``."""
    for layer in layers:
        a = _act(spec.activation, z)
        z = jnp.einsum("gmli,gilo->gmlo", a, layer["w"]) + layer["b"]
    return z


def grouped_cost(spec: NetworkSpec, z, y, w):
    """Σ over a group-major stack's models of each one's mean C0 over its group's valid rows.

    ``z`` ``(G, m, L, n_out)`` output pre-activations, ``y`` the group's targets,
    ``w`` ``(G, m)`` 1 for real rows, 0 for padding. The models share no
    parameters, so its gradient is each model's own.
    """
    t = targets(spec, y, spec.sizes[-1])[:, :, None]
    c = cost_per_example(spec, z, t)  # (G, m, L)
    wk = w[:, :, None]
    return jnp.sum(jnp.sum(c * wk, axis=1) / jnp.maximum(jnp.sum(wk, axis=1), 1.0))


def outputs(spec: NetworkSpec, z):
    """Network outputs from output pre-activations ``z``."""
    if spec.output == "sigmoid":
        return jax.nn.sigmoid(z)
    if spec.output == "softmax":
        return jax.nn.softmax(z, axis=-1)
    return z


def targets(spec: NetworkSpec, y, n_out: int):
    """Targets as the cost wants them: one-hot vectors for classification."""
    if spec.regression:
        return y
    return jax.nn.one_hot(y, n_out, dtype=jnp.float32)


def cost_per_example(spec: NetworkSpec, z, t):
    """C0 for each example and model, ``(m, K)``, from pre-activations ``z``.

    * cross-entropy (sigmoid outputs): −Σ_j [t ln a + (1−t) ln(1−a)], written
      with softplus so that saturated units give finite costs;
    * log-likelihood (softmax outputs): −ln a_y;
    * quadratic: ½‖a − t‖².
    """
    if spec.cost == "cross-entropy":
        return jnp.sum(t * jax.nn.softplus(-z) + (1 - t) * jax.nn.softplus(z), axis=-1)
    if spec.cost == "log-likelihood":
        return -jnp.sum(t * jax.nn.log_softmax(z, axis=-1), axis=-1)
    return 0.5 * jnp.sum((outputs(spec, z) - t) ** 2, axis=-1)


def correct(spec: NetworkSpec, z, y):
    """1.0 where the model's prediction is right, ``(m, K)``; zeros for regression."""
    if spec.regression:
        return jnp.zeros(z.shape[:-1], z.dtype)
    return (jnp.argmax(z, axis=-1) == y).astype(z.dtype)


def predict(spec: NetworkSpec, params, x):
    """Outputs of every model for inputs ``x`` (m, n_in): ``(K, m, n_out)``."""
    return jnp.swapaxes(outputs(spec, logits(spec, params, x)), 0, 1)


# ---------------------------------------------------------------- evaluation


def _eval_logits(spec: NetworkSpec, params, x):
    """Output pre-activations ``(K, m, n_out)`` for inputs ``x`` ``(m, n_in)``.

    Model-major after the first layer, so that every later layer is a batched
    GEMM without transposes: on MNIST's 10,000 test images this evaluation
    runs near the first layer's GEMM rate (bench: 60 against 90–110 ms for
    15 models in the training layout of :func:`logits`).
    """
    w0 = params[0]["w"]
    n_in, K, n_out = w0.shape
    z = (x @ w0.reshape(n_in, K * n_out)).reshape(x.shape[0], K, n_out) + params[0]["b"]
    z = jnp.swapaxes(z, 0, 1)  # (K, m, n_1)
    for layer in params[1:]:
        a = _act(spec.activation, z)
        z = jnp.einsum("kmi,kio->kmo", a, jnp.swapaxes(layer["w"], 0, 1)) + layer["b"][:, None, :]
    return z


def _eval_sums(spec: NetworkSpec, params, x, y, w):
    """Σ C0, Σ correct and Σ weight of every model over the rows ``x``: three ``(K,)``.

    ``w`` ``(m, K)`` weights the rows per model; None counts every row once.
    """
    z = _eval_logits(spec, params, x)
    c0 = cost_per_example(spec, z, targets(spec, y, spec.sizes[-1])[None])  # (K, m)
    ok = correct(spec, z, y[None])  # (K, m)
    if w is None:
        return c0.sum(1), ok.sum(1), jnp.full(c0.shape[:1], x.shape[0], c0.dtype)
    w = w.T.astype(c0.dtype)
    return (c0 * w).sum(1), (ok * w).sum(1), w.sum(1)


def _eval_chunks(spec: NetworkSpec, params, X, Y, member, chunk: int):
    # Whole chunks in one lax.map and the rest in one more call: no padded copy of X.
    n = X.shape[0]
    n_main = n // chunk * chunk
    parts = []
    if n_main:
        c = n_main // chunk

        def rows(a):
            return None if a is None else a[:n_main].reshape(c, chunk, *a.shape[1:])

        sums = jax.lax.map(lambda b: _eval_sums(spec, params, *b), (rows(X), rows(Y), rows(member)))
        parts.append(tuple(p.sum(0) for p in sums))
    if n_main < n:
        parts.append(_eval_sums(spec, params, X[n_main:], Y[n_main:], None if member is None else member[n_main:]))
    cost_sum, ok_sum, count = (sum(p[i] for p in parts) for i in range(3))
    count = jnp.maximum(count, 1)
    return cost_sum / count, ok_sum / count


def evaluate(spec: NetworkSpec, params, X, Y, member=None, chunk: int = 1024):
    """Mean C0 and accuracy of every model on ``(X, Y)``: two ``(K,)`` arrays.

    ``member`` may be :class:`Rows`: each group's models are then scored on
    its own rows only (:func:`evaluate_rows`).

    ``member`` ``(n, K)`` optionally weights which examples count for which
    model (cross-validation folds). The penalty is not included here; see
    :func:`l2reg.core.penalties.l2_cost`.
    """
    if isinstance(member, Rows):
        return evaluate_rows(spec, params, X, Y, member)
    chunk = max(1, min(chunk, X.shape[0]))
    return _eval_chunks(spec, params, X, Y, member, chunk)


@dataclass(frozen=True)
class Rows:
    """Which rows of a set each of the G groups of a stack is scored on: ``idx`` ``(G, n_max)`` and
    ``valid`` ``(G, n_max)`` (padding False). A cross-validation fold's models read only its held-out
    rows, not the whole set under a mask."""

    idx: jax.Array
    valid: jax.Array


jax.tree_util.register_dataclass(Rows, data_fields=["idx", "valid"], meta_fields=[])


def evaluate_rows(spec: NetworkSpec, params, X, Y, rows: Rows, chunk: int = 1024):
    """Mean C0 and accuracy ``(K,)`` of each model on its own group's rows (:class:`Rows`), group-major:
    group g's rows through its L models, one batched pass over ``chunk`` rows at a time."""
    G, n_max = rows.idx.shape
    chunk = max(1, min(chunk, n_max))
    n_chunks = -(-n_max // chunk)
    pad = n_chunks * chunk - n_max
    idx = jnp.pad(rows.idx, ((0, 0), (0, pad))).reshape(G, n_chunks, chunk).swapaxes(0, 1)
    valid = jnp.pad(rows.valid, ((0, 0), (0, pad))).reshape(G, n_chunks, chunk).swapaxes(0, 1)
    grouped = to_groups(params, G)

    def one(c):
        i, v = c  # (G, chunk)
        z = logits_grouped(spec, grouped, X[i])  # (G, chunk, L, n_out)
        y = Y[i]
        t = targets(spec, y, spec.sizes[-1])[:, :, None]
        w = v.astype(X.dtype)[:, :, None]  # (G, chunk, 1)
        ok = correct(spec, z, y[:, :, None] if y.ndim == 2 else y)
        return jnp.sum(cost_per_example(spec, z, t) * w, 1), jnp.sum(ok * w, 1), jnp.sum(w, 1)  # (G, L) each

    cost, ok, count = (p.sum(0) for p in jax.lax.map(one, (idx, valid)))  # (G, L), (G, L), (G, 1)
    count = jnp.maximum(count, 1)
    return (cost / count).reshape(-1), (ok / count).reshape(-1)


def weight_sq_norms(params):
    """Σw² of each layer for every model: ``(K, n_layers)``. Biases excluded."""
    return jnp.stack([jnp.sum(layer["w"] ** 2, axis=(0, 2)) for layer in params], axis=1)
