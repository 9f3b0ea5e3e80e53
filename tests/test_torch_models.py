"""The models practitioners bring, each member against its ordinary PyTorch loop: parameters and buffers.

Architectures built here: a ResNet-style CNN (residual blocks, BatchNorm2d,
global pooling), a BatchNorm1d MLP, a GRU classifier, an LSTM regressor, a
TransformerEncoder classifier and a tiny Hugging Face BERT made from a config
(no download). For sgd, momentum and adamw, every member's ``state_dict``
(parameters and BatchNorm's running statistics) after 2 epochs on two folds
equals the ordinary loop ``torch.manual_seed(seed_f); model = model_fn();
opt = SGD(decay_groups(model, λ/n), lr=η)`` over the fold's batches, and its
validation accuracy in eval mode equals the ordinary model's. Then: every
strategy (vmap, chunked, loop) gives that same result; BatchNorm's buffers
change where members are picked by index (the silent-loss case); momentum=None.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from l2reg.torch import Member, fold_seeds, train_ensemble  # noqa: E402
from l2reg.torch.stack import Stack, classification_loss  # noqa: E402
from l2reg.present.save import save  # noqa: E402
from torch_loops import one_thread, ordinary_epochs  # noqa: E402, F401  (one_thread: autouse fixture)

N, EPOCHS, M, SEED = 40, 2, 8, 3


# ---------------------------------------------------------------- the architectures


class Residual(nn.Module):
    def __init__(self, c: int, momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c, momentum=momentum)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c, momentum=momentum, affine=affine)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


def resnet():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), Residual(4),
                         Residual(4, momentum=0.3, affine=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def bn_mlp():
    # no bias before BatchNorm (it cancels it): its gradient is rounding noise, which Adam's normalization
    # would blow up into steps of size η, different in every two runs
    return nn.Sequential(nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.head = nn.GRU(3, 6, batch_first=True), nn.Linear(6, 3)

    def forward(self, x):  # (m, T, 3)
        return self.head(self.rnn(x)[0][:, -1])


class LSTMRegressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.head = nn.LSTM(3, 5, batch_first=True), nn.Linear(5, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


class TransformerClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.encoder, self.head = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


class HFClassifier(nn.Module):
    """A tiny BERT from a config (no download); X holds token ids as floats; returns the logits."""

    def __init__(self):
        super().__init__()
        transformers = pytest.importorskip("transformers")
        config = transformers.BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32, max_position_embeddings=8, num_labels=3,
                                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        self.bert = transformers.BertForSequenceClassification(config)

    def forward(self, x):
        return self.bert(input_ids=x.long()).logits


#: name -> (factory, example shape, regression, token ids)
MODELS = {
    "resnet_bn2d": (resnet, (1, 6, 6), False, False),
    "mlp_bn1d": (bn_mlp, (6,), False, False),
    "gru": (GRUClassifier, (5, 3), False, False),
    "lstm_regressor": (LSTMRegressor, (5, 3), True, False),
    "transformer": (TransformerClassifier, (5, 3), False, False),
    "hf_bert": (HFClassifier, (6,), False, True),
}
OPTIMIZERS = {
    "sgd": lambda g, eta: torch.optim.SGD(g, lr=eta),
    "momentum": lambda g, eta: torch.optim.SGD(g, lr=eta, momentum=0.9),
    "adamw": lambda g, eta: torch.optim.AdamW(g, lr=eta),
}
SETTINGS = {"sgd": [(0.0, 0.1), (20.0, 0.05)], "momentum": [(0.0, 0.02), (20.0, 0.01)],
            "adamw": [(0.0, 0.01), (0.5, 0.02)]}  # (λ or wd, η), the same in both folds


def _data(name):
    _, shape, regression, tokens = MODELS[name]
    rng = np.random.default_rng(0)
    X = rng.integers(0, 20, (N, *shape)).astype(np.float32) if tokens else rng.normal(size=(N, *shape)).astype(np.float32)
    y = rng.normal(size=N).astype(np.float32) if regression else rng.integers(0, 3, N)
    perm = rng.permutation(N)
    folds = [(np.sort(perm[:20]), np.sort(perm[20:])), (np.sort(perm[13:]), np.sort(perm[:13]))]  # 20 and 27 rows
    return X, y, folds


def _members(optimizer, order=(0, 1)):
    adamw = optimizer == "adamw"
    return [Member(lmbda=0.0 if adamw else s, weight_decay=s if adamw else 0.0, eta=eta, fold=f)
            for f in order for s, eta in SETTINGS[optimizer]]


def _loss(regression):
    return (lambda out, t: F.mse_loss(out.reshape(t.shape), t)) if regression else F.cross_entropy


def ordinary_loop(model_fn, X, y, *, member, fold, seed, optimizer, epochs=EPOCHS):
    """One member the usual way: its state_dict (parameters and buffers) and its validation accuracy per epoch."""
    regression = y.dtype.kind == "f"
    va = torch.as_tensor(fold[1])
    accuracy = []
    for model, Xt, yt in ordinary_epochs(model_fn, X, y, member=member, fold=fold, seed=seed, optimizer=optimizer,
                                         make_optimizer=OPTIMIZERS[optimizer], loss=_loss(regression), epochs=epochs,
                                         batch_size=M):
        model.eval()
        with torch.no_grad():
            accuracy.append(np.nan if regression else float((model(Xt[va]).argmax(1) == yt[va]).double().mean()))
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}, np.array(accuracy)


@pytest.fixture(scope="module")
def loops():
    """The ordinary loops, each computed once and shared by the tests that compare with them."""
    cache = {}

    def get(name, optimizer, member, f):
        key = (name, optimizer, member, f)
        if key not in cache:
            X, y, folds = _data(name)
            cache[key] = ordinary_loop(MODELS[name][0], X, y, member=member, fold=folds[f],
                                       seed=fold_seeds(SEED, 2)[f], optimizer=optimizer)
        return cache[key]

    return get


#: Attention's key bias adds the same number to every score of a query, which softmax cancels: its gradient
#: is 0 but for rounding noise, and Adam(W)'s normalization turns that noise into steps of size η, different in
#: any two runs that round differently (two ordinary loops with another matmul order disagree too). Under
#: adamw those entries are left out; under sgd and momentum (steps η·noise) they are compared like the rest.
NOISE_ONLY = {"transformer": {"encoder.layers.0.self_attn.in_proj_bias": slice(8, 16)},
              "hf_bert": {"bert.bert.encoder.layer.0.attention.self.key.bias": slice(None)}}


def _assert_equal_to_loops(result, name, optimizer, members, loops, *, atol=2e-5):
    skip = NOISE_ONLY.get(name, {}) if optimizer == "adamw" else {}
    for k, mb in enumerate(members):
        state, accuracy = loops(name, optimizer, mb, mb.fold)
        assert sorted(result.state_dicts[k]) == sorted(state)  # buffers included
        for key, want in state.items():
            got = result.state_dicts[k][key]
            if key in skip:
                keep = np.ones(len(want), bool)
                keep[skip[key]] = False
                got, want = got[keep], want[keep]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=atol, err_msg=f"member {k}: {key}")
        if not np.isnan(accuracy).all():
            np.testing.assert_allclose(result.history["validation_accuracy"][:, k], accuracy, atol=1e-12,
                                       err_msg=f"member {k}: validation accuracy (eval mode)")


def _train(name, optimizer, members, **kw):
    X, y, folds = _data(name)
    return train_ensemble(MODELS[name][0], X, y, members=members, folds=folds, epochs=EPOCHS, batch_size=M,
                          optimizer=optimizer, momentum=0.9, seed=SEED, **kw)


# ---------------------------------------------------------------- every model, every optimizer


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("name", list(MODELS))
def test_every_member_equals_its_ordinary_loop(name, optimizer, loops):
    members = _members(optimizer)
    result = _train(name, optimizer, members)
    _assert_equal_to_loops(result, name, optimizer, members, loops)
    strategy = result.config["strategy"]
    assert strategy["chosen"] in ("vmap", "chunked", "loop") and result.notes[-1] == strategy["line"]
    if "bn" in name:  # the running statistics moved, per member
        k = "1.running_mean"
        assert not np.allclose(result.state_dicts[0][k], 0) and not np.allclose(result.state_dicts[0][k],
                                                                                 result.state_dicts[2][k])
        assert int(result.state_dicts[0]["1.num_batches_tracked"]) == EPOCHS * 3  # 20 rows in batches of 8
        assert int(result.state_dicts[2]["1.num_batches_tracked"]) == EPOCHS * 4  # 27 rows


@pytest.mark.parametrize("strategy", ["vmap", "chunked", "loop"])
@pytest.mark.parametrize("name", ["resnet_bn2d", "gru", "transformer"])
def test_every_strategy_equals_the_ordinary_loop(name, strategy, loops):
    members = _members("momentum")
    result = _train(name, "momentum", members, strategy=strategy)
    _assert_equal_to_loops(result, name, "momentum", members, loops)
    chosen = result.config["strategy"]
    assert chosen["asked"] == strategy
    if strategy != "vmap" or name != "gru":
        assert chosen["chosen"] == strategy
    if name == "gru" and strategy != "loop":  # vmap trains a GRU but cannot evaluate its fused kernel
        assert chosen["eval_members_per_call"] == 1 and "aten::gru.input" in chosen["line"]


def test_auto_probes_the_strategies_and_takes_the_fastest():
    members = [Member(lmbda=float(lm), eta=0.1) for lm in range(9)]
    X, y, _ = _data("mlp_bn1d")
    result = train_ensemble(bn_mlp, X, y, members=members, epochs=3, batch_size=2, seed=SEED)  # 60 steps
    strategy = result.config["strategy"]
    probe = strategy["probe_seconds_per_step"]
    assert {"vmap", "loop"} <= set(probe) and set(probe) <= {"vmap", "loop", "chunks of 8", "chunks of 4",
                                                             "chunks of 2"}
    assert strategy["label"] == min(probe, key=probe.get) and "fastest of the probe" in result.notes[-1]


@pytest.mark.parametrize("steps,seconds,probed,chosen", [
    # vmap, loop, then chunks from the largest down while each beats the one before
    (1000, {"vmap": 3.0, "loop": 5.0, "chunks of 8": 2.0, "chunks of 4": 2.5}, ["vmap", "loop", "chunks of 8",
                                                                                "chunks of 4"], "chunks of 8"),
    (1000, {"vmap": 1.0, "loop": 5.0, "chunks of 8": 2.0}, ["vmap", "loop", "chunks of 8"], "vmap"),
    (1000, {"vmap": 4.0, "loop": 1.0, "chunks of 8": 3.0, "chunks of 4": 2.0, "chunks of 2": 1.5},
     ["vmap", "loop", "chunks of 8", "chunks of 4", "chunks of 2"], "loop"),
    (20, {"vmap": 4.0, "loop": 1.0, "chunks of 8": 2.0}, ["vmap", "loop"], "loop"),  # a short run: 4 steps
    # a candidate twice as slow as the best so far takes one step only
    (1000, {"vmap": 1.0, "loop": 2.5, "chunks of 8": 1.2, "chunks of 4": 0.9, "chunks of 2": 3.0},
     ["vmap", "loop", "chunks of 8"], "vmap"),
])
def test_probe_order_budget_and_choice(steps, seconds, probed, chosen):
    from l2reg.torch.strategy import Plan

    plan = Plan.make("auto", 16, bn_mlp(), steps=steps)
    seen = []
    while plan.probing:
        label = plan.queue[0][0]
        seen.append(label)
        plan.timed(plan.chunk, seconds[label])
    assert list(dict.fromkeys(seen)) == probed and plan.chosen[0] == chosen
    assert len(seen) <= max(steps // 8, 4)
    slow = [label for label, t in seconds.items() if label in probed and t >= 2 * min(
        v for k, v in seconds.items() if k in probed[:probed.index(label)] or k == label)]
    assert all(seen.count(label) == 1 for label in slow if label != probed[0])


def test_asked_strategy_is_not_probed_and_momentum_none_is_a_rule():
    from l2reg.torch.strategy import Plan

    assert Plan.make("loop", 16, bn_mlp(), steps=100).chunk == 1 and not Plan.make("vmap", 16, bn_mlp(), steps=9).probing
    plan = Plan.make("auto", 16, nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2, momentum=None)), steps=100)
    assert plan.chunk == 1 and not plan.probing and "momentum=None" in plan.dropped["vmap"]


def test_evaluation_is_measured_on_its_own_and_falls_back_to_one_member_at_a_time():
    from l2reg.torch.strategy import Plan

    plan = Plan.make("auto", 16, bn_mlp(), steps=1000)
    plan.seconds = {"vmap": 1.0, "loop": 2.0}  # training: vmap
    plan.queue = []
    seen = []
    while plan.eval_probing:
        seen.append(plan.eval_chunk)
        plan.eval_timed(plan.eval_chunk, {16: 3.0, 1: 1.0}[plan.eval_chunk] * 256, 256)
    assert seen == [16, 16, 1, 1] and plan.eval_chunk == 1 and plan.chosen[1] == 16
    assert "evaluation one member at a time (ms/row: vmap 3e+03, loop 1e+03)" in plan.line()
    plan = Plan.make("vmap", 16, bn_mlp(), steps=1000)
    plan.eval_failed(16, RuntimeError("Batching rule not implemented for aten::gru.input."))
    assert plan.eval_chunk == 1 and not plan.eval_probing and "aten::gru.input" in plan.line()


def test_members_picked_by_index_keep_their_running_statistics(loops):
    """Members of two folds interleaved: the last batches differ in size, so a fold's members are not a
    contiguous slice of the stack and are gathered by ``index_select`` (a copy); their buffers must be
    written back, else their running statistics silently stay where they were."""
    members = _members("sgd", order=(0, 1))
    interleaved = [members[0], members[2], members[1], members[3]]
    result = _train("mlp_bn1d", "sgd", interleaved, strategy="vmap")
    _assert_equal_to_loops(result, "mlp_bn1d", "sgd", interleaved, loops)


def test_stack_updates_buffers_through_views_and_copies():
    torch.manual_seed(0)
    models = [bn_mlp() for _ in range(3)]
    groups = [[(["0.weight"], 0.1, 0.0)]] * 3
    stack = Stack(models, groups=groups, make_optimizer=lambda g: torch.optim.SGD(g, lr=0.1),
                  loss=classification_loss)
    before = stack.snapshot_buffers()
    x, y = torch.randn(2, 8, 6), torch.randint(0, 3, (2, 8))
    stack.compute_grads(np.array([0, 2]), x, y, shared=False, chunk=2)  # not contiguous: a copy, written back
    moved = [not torch.equal(stack.buffers["1.running_mean"][k], before["1.running_mean"][k]) for k in range(3)]
    assert moved == [True, False, True]
    assert stack.buffers["1.num_batches_tracked"].tolist() == [1, 0, 1]
    stack.compute_grads(np.array([1, 2]), x, y, shared=False, chunk=2)  # a slice: a view, updated in place
    assert stack.buffers["1.num_batches_tracked"].tolist() == [1, 1, 2]
    stack.compute_grads(None, x[0], y[0], shared=True, chunk=1)  # one member at a time
    assert stack.buffers["1.num_batches_tracked"].tolist() == [2, 2, 3]


@pytest.mark.parametrize("bn", [
    lambda: nn.BatchNorm1d(8, momentum=None),
    lambda: nn.BatchNorm1d(8, momentum=0.5, affine=False),
])
def test_batch_norm_settings_equal_the_ordinary_loop(bn):
    def model_fn():
        return nn.Sequential(nn.Linear(6, 8, bias=False), bn(), nn.ReLU(), nn.Linear(8, 3))

    X, y, folds = _data("mlp_bn1d")
    members = _members("sgd")
    result = train_ensemble(model_fn, X, y, members=members, folds=folds, epochs=EPOCHS, batch_size=M, seed=SEED)
    for k, mb in enumerate(members):
        state, accuracy = ordinary_loop(model_fn, X, y, member=mb, fold=folds[mb.fold], seed=fold_seeds(SEED, 2)[mb.fold],
                                        optimizer="sgd")
        for key, want in state.items():
            np.testing.assert_allclose(result.state_dicts[k][key], want, rtol=1e-5, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(result.history["validation_accuracy"][:, k], accuracy)
    if bn().momentum is None:  # a cumulative average: vmap cannot batch 1/num_batches_tracked
        assert result.config["strategy"]["chosen"] == "loop" and "momentum=None" in result.notes[-1]


def test_custom_autograd_function_without_vmap_support_trains():
    class Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(6, 5), nn.Linear(5, 3)

        def forward(self, x):
            return self.fc2(Square.apply(self.fc1(x)))

    X, y, folds = _data("mlp_bn1d")
    members = _members("sgd")
    result = train_ensemble(Model, X, y, members=members, folds=folds, epochs=1, batch_size=M, seed=SEED)
    assert result.config["strategy"]["chosen"] == "loop"
    assert "vmap cannot run the model" in result.config["strategy"]["line"]
    for k, mb in enumerate(members):
        state, _ = ordinary_loop(Model, X, y, member=mb, fold=folds[mb.fold], seed=fold_seeds(SEED, 2)[mb.fold],
                                 optimizer="sgd", epochs=1)
        for key, want in state.items():
            np.testing.assert_allclose(result.state_dicts[k][key], want, rtol=1e-5, atol=1e-6, err_msg=key)


def test_slow_fallback_warnings_are_one_note_not_a_flood(recwarn):
    members = _members("sgd")
    result = _train("transformer", "sgd", members, strategy="vmap")
    assert not [w for w in recwarn if "performance drop" in str(w.message)]
    assert "slow fallback" in result.config["strategy"]["line"] or not result.config["strategy"]["slow_fallback_ops"]


def test_a_model_that_fails_everywhere_is_one_line():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            if self.training and torch.is_grad_enabled():
                raise RuntimeError("boom in training\nsecond line")
            return self.fc(x)

    from l2reg.errors import ConfigError

    X, y, folds = _data("mlp_bn1d")
    with pytest.raises(ConfigError, match="the model fails in training on a mini-batch of X: boom in training$"):
        train_ensemble(Broken, X, y, members=_members("sgd"), folds=folds, epochs=1, batch_size=M)


# ---------------------------------------------------------------- the sweep, the CLI and the audit


def test_sweep_records_the_strategy_in_sweep_json_and_the_report(tmp_path):
    import html
    import json

    import l2reg.torch as lt

    X, y, _ = _data("mlp_bn1d")
    result = lt.sweep(bn_mlp, (X, y), lmbda=[0.0, 5.0], folds=2, epochs=1, batch_size=8, strategy="loop")
    taken = result.config["strategy_taken"]
    assert result.config["strategy"] == "loop" and set(taken) == {"cv", "refit"}
    assert taken["cv"]["chosen"] == taken["refit"]["chosen"] == "loop"
    save(result, tmp_path)
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["config"]["strategy_taken"]["cv"]["line"] == taken["cv"]["line"]
    assert html.escape(taken["refit"]["line"]) in (tmp_path / "report.html").read_text()


def test_cli_strategy_option(tmp_path, capsys):
    from l2reg.cli import main

    assert main(["torch", "sweep", "examples/models.py:digits_bn_cnn", "--data", "digits", "--strategy", "fast",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "strategy must be one of auto, vmap, chunked, loop" in err and len(err.strip().splitlines()) == 1
    assert main(["torch", "sweep", "--help"]) == 0 and "auto|vmap|chunked|loop" in capsys.readouterr().out


def test_audit_lists_batch_norm_buffers_and_the_strategy():
    from l2reg.torch import audit, audit_tables

    result = audit(resnet())
    names = [b["name"] for b in result.buffers]
    assert "1.running_mean" in names and "4.bn2.num_batches_tracked" in names
    assert all(b["rule"].startswith("not decayed: running statistic of BatchNorm2d") for b in result.buffers)
    assert not {r.name for r in result.rows} & set(names)  # buffers are no parameters: never in a decay group
    assert result.strategy.startswith("auto:") and result.to_json()["buffers"][0]["count"] == 4
    assert any("by rule, nothing run" in str(t) for t in audit_tables(result))
    assert "evaluation goes one member at a time" in audit(GRUClassifier()).strategy
    momentum_none = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2, momentum=None))
    assert audit(momentum_none).strategy.startswith("loop, one member at a time: BatchNorm1d '1' has momentum=None")
    sync = audit(nn.Sequential(nn.Linear(2, 2), nn.SyncBatchNorm(2))).strategy
    assert sync.startswith("none, the sweep refuses the model: SyncBatchNorm '1' averages its statistics")
