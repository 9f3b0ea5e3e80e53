"""Model factories for `l2reg torch ...`: each is a no-argument function returning an nn.Module.

    l2reg torch audit examples/models.py:transformer_block --compare timm,hf
    l2reg torch sweep examples/models.py:digits_cnn --data digits --lmbda 0,1,10,100 --epochs 10
    l2reg torch sweep examples/models.py:digits_bn_cnn --data digits --lmbda 0,3,30,300 --epochs 10
"""

import torch
from torch import nn


def digits_cnn() -> nn.Module:
    """A small CNN for scikit-learn's 8×8 digits given as 64 features per row."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (8, 4, 4)
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (16, 2, 2)
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10),
    )


def mnist_cnn() -> nn.Module:
    """A small CNN for MNIST given as 784 features per row (28×28 images, as l2reg loads them)."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),  # (8, 12, 12)
        nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # (16, 4, 4)
        nn.Flatten(), nn.Linear(256, 10),
    )


class _Block(nn.Module):
    """One pre-norm transformer block over token embeddings, with a tied output head."""

    def __init__(self, vocab: int = 50, dim: int = 32, heads: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied: one parameter, two names

    def forward(self, tokens):
        x = self.embed(tokens)
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return self.head(x)


def transformer_block() -> nn.Module:
    """Embeddings, LayerNorms, attention, an MLP and a tied head: where the decay recipes disagree."""
    torch.manual_seed(0)
    return _Block()


def digits_bn_cnn() -> nn.Module:
    """digits_cnn with BatchNorm2d after each convolution (default settings: running statistics kept per member)."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),  # (8, 4, 4)
        nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  # (16, 2, 2)
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10),
    )


class _RowGRU(nn.Module):
    """An 8×8 digit read row by row: a GRU over 8 steps of 8 pixels, then a linear head on its last state."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.gru = nn.GRU(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x):  # (m, 64)
        out, _ = self.gru(x.reshape(len(x), 8, 8))
        return self.head(out[:, -1])


def digits_gru() -> nn.Module:
    """A GRU classifier for the 8×8 digits (vmap has no rule for its fused kernel: members step one at a time)."""
    return _RowGRU()
