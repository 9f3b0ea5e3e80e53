"""A plain NumPy oracle of network2's update, for tests: float64, batch by batch.

    w ← (1 − ηλ/n)·w − (η/m)·Σ_x ∂C_x/∂w,   b ← b − (η/m)·Σ_x ∂C_x/∂b

with backpropagation written out as in Nielsen's network2.py (sigmoid hidden
and output layers, cross-entropy cost: δ_L = a − y).
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def backprop(ws, bs, x, y_onehot):
    """Gradients of Σ_x C_x (summed, not averaged) for a batch x (m, n_in)."""
    activations, zs = [x], []
    a = x
    for w, b in zip(ws, bs):
        z = a @ w + b
        zs.append(z)
        a = sigmoid(z)
        activations.append(a)
    delta = a - y_onehot  # cross-entropy with sigmoid outputs
    gw, gb = [None] * len(ws), [None] * len(ws)
    for layer in range(len(ws) - 1, -1, -1):
        gw[layer] = activations[layer].T @ delta
        gb[layer] = delta.sum(0)
        if layer:
            s = sigmoid(zs[layer - 1])
            delta = (delta @ ws[layer].T) * s * (1 - s)
    return gw, gb


def sgd_epoch(ws, bs, X, y, batches, eta, lmbda, n, n_classes):
    """One epoch over the given index batches; returns new (ws, bs)."""
    ws = [w.astype(np.float64) for w in ws]
    bs = [b.astype(np.float64) for b in bs]
    for idx in batches:
        x = X[idx].astype(np.float64)
        t = np.eye(n_classes)[y[idx]]
        gw, gb = backprop(ws, bs, x, t)
        m = len(idx)
        ws = [(1 - eta * lmbda / n) * w - (eta / m) * g for w, g in zip(ws, gw)]
        bs = [b - (eta / m) * g for b, g in zip(bs, gb)]
    return ws, bs
