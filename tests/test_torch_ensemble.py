"""The vectorized ensemble against K ordinary PyTorch loops, member by member.

Oracle: for each member, the plain loop a PyTorch user writes:
``torch.manual_seed(seed_f); model = model_fn(); opt = SGD(decay_groups(model, λ/n), lr=η)``
(or ``SGD(momentum=…)``, ``AdamW(decay_groups(model, wd))``, …), then for each
batch of the fold's order ``zero_grad(); F.cross_entropy(model(x), y).backward();
opt.step()``. Two folds of different sizes, so the fold split, the per-fold n in
λ/n and batches of different sizes at the end of an epoch are all covered.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from l2reg.errors import ConfigError, ConfigTypeError, DataError, L2RegError  # noqa: E402
from l2reg.torch import Member, decay_groups, fold_seeds, train_ensemble  # noqa: E402
from torch_loops import one_thread, ordinary_epochs  # noqa: E402, F401  (one_thread: autouse fixture)

N, EPOCHS, M = 91, 3, 16


def mlp():
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3))


def cnn_batch_stats():
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3, track_running_stats=False), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 3))


MODELS = {"mlp": (mlp, (6,)), "cnn": (cnn, (1, 6, 6)), "cnn_batch_stats": (cnn_batch_stats, (1, 6, 6))}

OPTIMIZERS = {
    "sgd": lambda g, eta: torch.optim.SGD(g, lr=eta),
    "momentum": lambda g, eta: torch.optim.SGD(g, lr=eta, momentum=0.9),
    "nesterov": lambda g, eta: torch.optim.SGD(g, lr=eta, momentum=0.9, nesterov=True),
    "adam": lambda g, eta: torch.optim.Adam(g, lr=eta),
    "adamw": lambda g, eta: torch.optim.AdamW(g, lr=eta),
}
# (λ or wd, η) per member, the same in both folds.
SETTINGS = {
    "sgd": [(0.0, 0.1), (5.0, 0.1), (40.0, 0.05)],
    "momentum": [(0.0, 0.02), (5.0, 0.02), (40.0, 0.01)],
    "nesterov": [(0.0, 0.02), (40.0, 0.01)],
    "adam": [(0.0, 0.01), (40.0, 0.01)],
    "adamw": [(0.0, 0.01), (0.5, 0.01), (5.0, 0.02)],
}


def _data(shape, *, seed=0, regression=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, *shape)).astype(np.float32)
    y = rng.normal(size=N).astype(np.float32) if regression else rng.integers(0, 3, N)
    perm = rng.permutation(N)
    folds = [(np.sort(perm[:60]), np.sort(perm[60:])), (np.sort(perm[36:]), np.sort(perm[:36]))]  # 60 and 55 rows
    return X, y, folds


def _members(optimizer):
    decoupled = optimizer == "adamw"
    return [Member(lmbda=0.0 if decoupled else s, weight_decay=s if decoupled else 0.0, eta=eta, fold=f)
            for f in range(2) for s, eta in SETTINGS[optimizer]]


def _ordinary_run(model_fn, X, y, *, member, fold, seed, optimizer, loss, epochs=EPOCHS):
    """One member the usual way; returns its state_dict and (training cost, validation accuracy) per epoch."""
    tr, va = fold
    curve = []
    for model, Xt, yt in ordinary_epochs(model_fn, X, y, member=member, fold=fold, seed=seed, optimizer=optimizer,
                                         make_optimizer=OPTIMIZERS[optimizer], loss=loss, epochs=epochs,
                                         batch_size=M):
        with torch.no_grad():
            sq = sum(float(p.pow(2).sum()) for g in decay_groups(model, 1.0) if g["weight_decay"] for p in g["params"])
            cost = float(loss(model(Xt[tr]), yt[tr])) + member.lmbda / (2 * len(tr)) * sq
            acc = float((model(Xt[va]).argmax(1) == yt[va]).double().mean()) if y.dtype.kind == "i" else np.nan
        curve.append((cost, acc))
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}, np.array(curve)


CASES = [(opt, "mlp") for opt in OPTIMIZERS] + [("sgd", "cnn"), ("momentum", "cnn"), ("adamw", "cnn"),
                                                ("sgd", "cnn_batch_stats")]


@pytest.mark.parametrize("optimizer,model_name", CASES)
def test_vectorized_equals_ordinary_loops(optimizer, model_name):
    model_fn, shape = MODELS[model_name]
    X, y, folds = _data(shape)
    members = _members(optimizer)
    result = train_ensemble(model_fn, X, y, members=members, folds=folds, epochs=EPOCHS, batch_size=M,
                            optimizer=optimizer, momentum=0.9, seed=7)
    seeds = fold_seeds(7, 2)
    for k, mb in enumerate(members):
        state, curve = _ordinary_run(model_fn, X, y, member=mb, fold=folds[mb.fold], seed=seeds[mb.fold],
                                     optimizer=optimizer, loss=F.cross_entropy)
        for name, want in state.items():
            np.testing.assert_allclose(result.state_dicts[k][name], want, rtol=1e-5, atol=2e-6, err_msg=name)
        np.testing.assert_allclose(result.history["training_cost"][:, k], curve[:, 0], rtol=1e-5)
        if model_name != "cnn_batch_stats":  # batch statistics: the evaluation chunks differ
            np.testing.assert_allclose(result.history["validation_accuracy"][:, k], curve[:, 1], atol=1e-12)
    assert result.history["training_cost"].shape == (EPOCHS, len(members))


def test_regression_with_mse_equals_ordinary_loops():
    X, y, folds = _data((6,), regression=True)
    members = _members("sgd")
    model_fn = lambda: nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1))  # noqa: E731
    result = train_ensemble(model_fn, X, y, members=members, folds=folds, epochs=EPOCHS, batch_size=M, seed=3)
    assert "training_accuracy" not in result.history and result.config["loss"] == "mse"
    for k, mb in enumerate(members):
        state, curve = _ordinary_run(model_fn, X, y, member=mb, fold=folds[mb.fold], seed=fold_seeds(3, 2)[mb.fold],
                                     optimizer="sgd", loss=lambda out, t: F.mse_loss(out.reshape(t.shape), t))
        for name, want in state.items():
            np.testing.assert_allclose(result.state_dicts[k][name], want, rtol=1e-5, atol=2e-6)
        np.testing.assert_allclose(result.history["training_cost"][:, k], curve[:, 0], rtol=1e-5)


def test_metrics_use_each_members_own_rows_and_decayed_weights():
    X, y, folds = _data((6,))
    result = train_ensemble(mlp, X, y, members=_members("sgd"), folds=folds, epochs=1, batch_size=M, seed=7)
    model = result.load_into(mlp(), 4)  # fold 1, λ = 5
    sq = float(model[0].weight.detach().pow(2).sum() + model[2].weight.detach().pow(2).sum())
    assert result.history["weight_sq_norm"][0, 4] == pytest.approx(sq, rel=1e-6)
    assert result.history["penalty"][0, 4] == pytest.approx(5.0 / (2 * 55) * sq, rel=1e-6)
    with torch.no_grad():
        acc = (model(torch.as_tensor(X[folds[1][1]])).argmax(1).numpy() == y[folds[1][1]]).mean()
    assert result.history["validation_accuracy"][0, 4] == pytest.approx(acc)
    assert result.config["n_train"] == [60, 55] and result.config["n_validation"] == [31, 36]
    json.dumps(result.to_json(), allow_nan=False)


def test_one_fold_without_validation_and_same_fold_members_share_their_start():
    X, y, _ = _data((6,))
    members = [Member(lmbda=lm, eta=0.1) for lm in (0.0, 0.0, 10.0)]
    result = train_ensemble(mlp, X, y, members=members, epochs=2, batch_size=M, seed=[5])
    a, b, c = result.state_dicts
    assert all(np.array_equal(a[k], b[k]) for k in a)  # same λ, init and batches: bit-identical
    assert not np.allclose(a["0.weight"], c["0.weight"])
    assert np.isnan(result.history["validation_cost"]).all()


def test_dropout_draws_differ_per_member():
    X, y, _ = _data((6,))
    model_fn = lambda: nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))  # noqa: E731
    result = train_ensemble(model_fn, X, y, members=[Member(eta=0.1)] * 2, epochs=1, batch_size=M)
    a, b = result.state_dicts
    assert not np.allclose(a["0.weight"], b["0.weight"])  # same λ, init and batches: only the dropout masks differ
    assert np.isfinite(result.history["training_cost"]).all()


def test_divergent_member_is_frozen_and_the_others_train_on():
    X, y, _ = _data((6,))
    # The second member's decay alone multiplies w by 1 − ηλ/n = −9999 per step: it overflows.
    members = [Member(lmbda=0.0, eta=0.05), Member(lmbda=1e4 * N, eta=1.0)]
    result = train_ensemble(mlp, X, y, members=members, epochs=4, batch_size=M)
    assert result.diverged_epoch[0] == 0 and result.diverged_epoch[1] in (1, 2)
    assert np.isfinite(result.history["training_cost"][:, 0]).all()
    assert "member 1 diverged" in result.notes[0]


def _counter_factory():
    calls = []

    def make():
        calls.append(1)
        return nn.Sequential(nn.Linear(6, 8 + len(calls) % 2), nn.Tanh(), nn.Linear(8 + len(calls) % 2, 3))

    return make


X0, Y0, FOLDS0 = _data((6,))


@pytest.mark.parametrize("args,kwargs,error,message", [
    ((mlp, X0, Y0), {"members": [Member()], "policy": "keras"}, ConfigError, "policy must be one of l2reg, timm"),
    ((mlp, X0, Y0), {"members": [Member()], "optimizer": "lbfgs"}, ConfigError,
     "optimizer must be one of sgd, momentum, nesterov, adam, adamw; got 'lbfgs'."),
    ((mlp, X0, Y0), {"members": [Member(lmbda=float("nan"))]}, ConfigError,
     "members[0].lmbda must be a finite number >= 0; got nan."),
    ((mlp, X0, Y0), {"members": [Member(lmbda=-1.0)]}, ConfigError, "members[0].lmbda must be a finite number >= 0"),
    ((mlp, X0, Y0), {"members": [Member(eta=0.0)]}, ConfigError, "members[0].eta must be a finite number > 0"),
    ((mlp, X0, Y0), {"members": [Member(fold=1)]}, ConfigError, "members[0].fold must be an integer between 0 and 0"),
    ((mlp, X0, Y0), {"members": [Member(lmbda=1.0)], "optimizer": "adamw"}, ConfigError,
     "members[0].lmbda must be 0"),
    ((mlp, X0, Y0), {"members": [Member(weight_decay=0.1)]}, ConfigError, "weight_decay is AdamW's decoupled decay"),
    ((mlp, X0, Y0), {"members": []}, ConfigTypeError, "members must be a non-empty list"),
    ((mlp, X0, Y0), {"members": [{"lmbda": 1, "lr": 0.1}]}, ConfigTypeError, "expected lmbda, eta, fold"),
    ((mlp, X0, Y0), {"members": [Member()], "batch_size": 500}, ConfigError,
     "batch_size must be an integer between 1 and 91"),
    ((mlp, X0, Y0), {"members": [Member()], "momentum": 1.0, "optimizer": "momentum"}, ConfigError,
     "momentum must be a finite number in [0, 1)"),
    ((mlp, X0[:, :5], Y0), {"members": [Member()]}, DataError,
     "the model rejects X's examples of shape (5,); its first layer (Linear) takes 6 features"),
    ((cnn, X0, Y0), {"members": [Member()]}, DataError,
     "its first layer (Conv2d) takes 1 input channels, examples shaped (1, ...)"),
    ((mlp, X0, Y0[:50]), {"members": [Member()]}, DataError, "y must have one entry per example of X: shape (91,)"),
    ((mlp, X0, Y0 + 5), {"members": [Member()]}, DataError, "needs logits of shape (2, C) with C >= 8"),
    ((mlp, X0[:, 0], Y0), {"members": [Member()]}, DataError, "X must be a numeric array of shape (n, ...)"),
    ((mlp, np.full_like(X0, np.nan), Y0), {"members": [Member()]}, DataError, "X contains NaN"),
    ((_counter_factory(), X0, Y0), {"members": [Member(fold=0), Member(fold=1)], "folds": FOLDS0}, ConfigError,
     "model_fn built different architectures: '0.weight' has shape (9, 6), torch.float32 in fold 0's model and "
     "shape (8, 6), torch.float32 in fold 1's"),
    ((lambda: nn.Sequential(nn.Linear(6, 4), nn.SyncBatchNorm(4), nn.Linear(4, 3)), X0, Y0), {"members": [Member()]},
     ConfigError, "SyncBatchNorm '1' averages its statistics across processes, which an ensemble in one process does "
     "not have; build the model with the plain BatchNorm1d/2d/3d"),
    ((mlp, X0, Y0), {"members": [Member()], "strategy": "fast"}, ConfigError, "strategy must be one of auto, vmap"),
    ((lambda: "not a model", X0, Y0), {"members": [Member()]}, ConfigTypeError,
     "model_fn must return a torch.nn.Module; got str."),
    (("mlp", X0, Y0), {"members": [Member()]}, ConfigTypeError, "model_fn must be a no-argument callable"),
    ((cnn, _data((1, 6, 6))[0], Y0), {"members": [Member()], "policy": "mingpt"}, ConfigError,
     "policy 'mingpt' cannot classify '0.weight' (Conv2d"),
    ((mlp, X0, Y0), {"members": [Member()], "folds": [(np.arange(10), np.arange(5, 20))]}, DataError,
     "folds[0] uses rows for both training and validation."),
    ((mlp, X0, Y0), {"members": [Member()], "folds": [(np.arange(10), np.array([200]))]}, DataError,
     "folds[0] validation indices must be integers in [0, 91)"),
    ((mlp, X0, Y0), {"members": [Member()], "device": "tpu"}, ConfigError, "device must be 'cpu', 'cuda' or 'cuda:N'"),
])
def test_bad_input_is_one_line(args, kwargs, error, message):
    with pytest.raises(error) as info:
        train_ensemble(*args, epochs=1, batch_size=kwargs.pop("batch_size", M), **kwargs)
    assert isinstance(info.value, L2RegError)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_where_unavailable_is_one_line():
    with pytest.raises(ConfigError, match=r"device 'cuda' is not available here"):
        train_ensemble(mlp, X0, Y0, members=[Member()], epochs=1, device="cuda")


def test_model_that_vmap_cannot_run_trains_one_member_at_a_time(caplog):
    """``.item()`` in forward: vmap raises; the members are stepped one at a time, equal to their loops, one line."""
    class ItemModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(x) * (1.0 if self.fc.weight.sum().item() > -1e9 else 2.0)

    X, y, folds = _data((6,))
    members = _members("sgd")
    with caplog.at_level("WARNING", logger="l2reg.torch"):
        result = train_ensemble(ItemModel, X, y, members=members, folds=folds, epochs=1, batch_size=M, seed=7)
    strategy = result.config["strategy"]
    assert strategy["chosen"] == "loop" and "vmap cannot run the model" in strategy["not_applicable"]["vmap"]
    assert result.notes[-1] == strategy["line"] and "one member at a time" in strategy["line"]
    assert [r.getMessage() for r in caplog.records] in ([strategy["line"]], [])  # once per process and reason
    for k, mb in enumerate(members):
        state, _ = _ordinary_run(ItemModel, X, y, member=mb, fold=folds[mb.fold], seed=fold_seeds(7, 2)[mb.fold],
                                 optimizer="sgd", loss=F.cross_entropy, epochs=1)
        for name, want in state.items():
            np.testing.assert_allclose(result.state_dicts[k][name], want, rtol=1e-5, atol=2e-6)
