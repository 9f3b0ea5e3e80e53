"""l2reg.torch.hf inside a real transformers.Trainer: a tiny BERT from a config (no download) on random tokens.

32 examples of 8 tokens, batch 4, gradient accumulation 2: 4 optimizer steps
per epoch, 2 epochs, so 8 steps and 8 records. Each case checks, against
its own step hooks (tests/trainer_checks.py), that every optimizer step is
recorded once, that d + g is the step each parameter took, and that
d = −lr_t·wd·w with lr_t the Trainer's scheduler's lr where the split is
exact; the scalars must reach ``trainer.state.log_history`` and the files
``output_dir``.
"""

import json
import logging
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from torch import nn  # noqa: E402
from trainer_checks import StepLog, check_steps, console_errors, expected_scalars, one_torch_thread  # noqa: E402, F401
from transformers import (BertConfig, BertForSequenceClassification, Trainer, TrainerCallback,  # noqa: E402
                          TrainingArguments)

from l2reg.errors import ConfigError, ConfigTypeError  # noqa: E402
from l2reg.torch import decay_groups, decayed_names  # noqa: E402
from l2reg.torch import hf  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
N, STEPS, WD = 32, 8, 0.1
SCALARS = {"decay/d_over_g", "decay/frac_away", "decay/w_norm"}


def bert():
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32,
                                                    max_position_embeddings=16, num_labels=2))


def tokens():
    g = torch.Generator().manual_seed(0)
    ids, labels = torch.randint(0, 50, (N, 8), generator=g), torch.randint(0, 2, (N,), generator=g)
    return [{"input_ids": ids[i], "labels": labels[i]} for i in range(N)]


def arguments(out, **kw):
    base = dict(output_dir=str(out), num_train_epochs=2, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                learning_rate=1e-2, weight_decay=WD, warmup_steps=2, logging_steps=2, report_to="none", use_cpu=True,
                save_strategy="no", disable_tqdm=True, seed=0)
    return TrainingArguments(**{**base, **kw})


class Watch(TrainerCallback):
    """Listed after the monitor's callback: its StepLog's hooks come after the monitor's."""

    def __init__(self, monitor_callback):
        self.cb, self.log = monitor_callback, None

    def on_train_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        self.log = StepLog(self.cb.monitor.optimizer, self.cb.monitor, lr_scheduler)


def _coupled_adam(model, args):
    return torch.optim.Adam(decay_groups(model, 1e-3), lr=args.learning_rate), None


#: case -> (TrainingArguments options, optimizers=..., check_steps options)
CASES = {
    "adamw (the Trainer's own)": ({}, None, dict(exact_decay=True)),
    "adamw on l2reg's groups, bf16 autocast": ({"bf16": True}, hf.optimizers, dict(exact_decay=True)),
    "sgd momentum, clipped": ({"optim": "sgd", "optim_args": "momentum=0.9", "max_grad_norm": 1e-3}, None,
                              dict(exact_decay=True, max_norm=1e-3)),
    "sgd, clipped": ({"optim": "sgd", "max_grad_norm": 1e-3}, None, dict(exact_decay=True, sgd_grad=True,
                                                                           max_norm=1e-3)),
    "adam, coupled L2": ({}, _coupled_adam, dict(exact_decay=False)),
}
_RUNS: dict = {}


def run(case, folder):
    """Train the case once per test session (the browser test reuses the first)."""
    if case not in _RUNS:
        options, make_optimizers, _ = CASES[case]
        model, args = bert(), arguments(folder / "out", **options)
        cb = hf.DecayMonitorCallback()
        watch = Watch(cb)
        extra = {"optimizers": make_optimizers(model, args)} if make_optimizers else {}
        trainer = Trainer(model=model, args=args, train_dataset=tokens(), callbacks=[cb, watch], **extra)
        dtypes = set()
        model.classifier.register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
        trainer.train()
        assert dtypes == {torch.bfloat16 if options.get("bf16") else torch.float32}  # autocast is on, or off
        _RUNS[case] = trainer, cb, watch.log
    return _RUNS[case]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hf")


@pytest.mark.parametrize("case", list(CASES))
def test_every_step_recorded_once_and_split_exactly(case, folder, caplog):
    with caplog.at_level(logging.WARNING, logger="l2reg.torch"):
        trainer, cb, log = run(case, folder)
    assert trainer.state.global_step == STEPS
    check_steps(log, STEPS, **CASES[case][2])
    assert not caplog.records  # BERT's norms are nn.LayerNorm: the Trainer's rule leaves them undecayed
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logged] == [2, 4, 6, 8] and all(SCALARS <= h.keys() for h in logged)
    for h in logged:  # each log pools the two steps since the previous one
        expected = expected_scalars(log, [h["step"] - 2, h["step"] - 1])
        assert {k: h[k] for k in SCALARS} == pytest.approx(expected, rel=1e-5)
    summary = json.loads((folder / "out" / "decay_monitor.json").read_text())
    assert summary["recorded_steps"] == STEPS and summary["steps_per_epoch"] == STEPS // 2
    last, lr = logged[-1], log.steps[-1]["lr"][0]
    if "coupled" in case:  # no timescale under Adam with coupled L2
        assert "decay/tau_iter" not in last and "decay/tau_epoch" not in last
    else:  # τ_iter = 1/(lr·wd), (1 − μ)/(lr·wd) under momentum; τ_epoch = τ_iter/4
        assert last["decay/tau_iter"] == pytest.approx((0.1 if "momentum" in case else 1) / (lr * WD), rel=1e-9)
        assert last["decay/tau_epoch"] == pytest.approx(last["decay/tau_iter"] / 4, rel=1e-9)


def test_l2reg_optimizers_follow_the_training_arguments(folder):
    trainer, cb, log = run("adamw on l2reg's groups, bf16 autocast", folder)
    opt = cb.monitor.optimizer
    model = trainer.model
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["param_names"] == decayed_names(model)
    assert [g["weight_decay"] for g in opt.param_groups] == [WD, 0.0]
    assert opt.defaults["betas"] == (0.9, 0.999) and opt.defaults["eps"] == 1e-8
    # The Trainer made its own schedule on it: linear, 2 warm-up steps, to 0 at step 8.
    assert [s["lr"][0] for s in log.steps] == pytest.approx([0.0, 5e-3, 1e-2, 1e-2 * 5 / 6, 1e-2 * 4 / 6,
                                                             1e-2 * 3 / 6, 1e-2 * 2 / 6, 1e-2 / 6])


def test_files_open_in_chromium_without_console_errors(folder):
    trainer, cb, _ = run("adamw (the Trainer's own)", folder)
    assert [p.name for p in cb.paths] == ["decay_monitor.json", "decay_monitor.html"]
    assert all(p.parent == folder / "out" for p in cb.paths)
    assert console_errors(cb.paths[1:]) == {"decay_monitor.html": []}


class ScaleNorm(nn.Module):
    """A norm class whose parameter's name has no 'norm' in it: the Trainer's rule decays it."""

    def __init__(self, d):
        super().__init__()
        self.g = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.g * x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.post, self.head = nn.Embedding(50, 8), ScaleNorm(8), nn.Linear(8, 2)

    def forward(self, input_ids, labels=None):
        logits = self.head(self.post(self.emb(input_ids).mean(1)))
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def test_one_line_when_the_trainer_decays_a_norm_and_scalars_reach_the_integrations(folder, caplog):
    seen = []

    class Integration(TrainerCallback):  # stands in for TensorBoard & co., which come before Trainer(callbacks=)
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(set(logs))

    late, early = hf.DecayMonitorCallback(out=folder / "late", record_every=3), hf.DecayMonitorCallback()
    torch.manual_seed(0)
    trainer = Trainer(model=Tiny(), args=arguments(folder / "tiny"), train_dataset=tokens(),
                      callbacks=[Integration(), late])
    assert hf.add_callback(trainer, early) is early
    trainer.args.report_to = ["tensorboard"]  # as if: the integration's warning (its callback is not installed)
    with caplog.at_level(logging.WARNING, logger="l2reg.torch"):
        trainer.train()
    lines = [r.getMessage() for r in caplog.records]
    decays = [x for x in lines if "decays" in x]
    assert len(decays) == 2 and "post.g (scale/shift of norm layer ScaleNorm)" in decays[0]
    assert "decays 1 parameter tensors (8 values)" in decays[0] and "l2reg.torch.hf.optimizers" in decays[0]
    assert sum("add_callback" in x for x in lines) == 1  # only the late one, added behind the integrations
    assert all(SCALARS <= keys for keys in seen if "loss" in keys)
    assert late.monitor.recorded_steps == [0, 3, 6] and early.monitor.recorded_steps == list(range(STEPS))
    assert sorted(p.name for p in (folder / "late").iterdir()) == ["decay_monitor.html", "decay_monitor.json"]


def test_bad_input_is_one_line(folder):
    with pytest.raises(ConfigError, match="record_every must be"):
        hf.DecayMonitorCallback(record_every=0)
    with pytest.raises(ConfigTypeError, match="out must be a folder"):
        hf.DecayMonitorCallback(out=3)
    with pytest.raises(ConfigTypeError, match="args must be transformers.TrainingArguments; got dict."):
        hf.optimizers(bert(), {})
    with pytest.raises(ConfigTypeError, match="trainer must be a transformers.Trainer; got str."):
        hf.add_callback("trainer", hf.DecayMonitorCallback())


IMPORTS = """
import sys
import l2reg.torch
print(sorted({"transformers", "accelerate", "lightning"} & set(sys.modules)))
sys.modules["transformers"] = sys.modules["lightning"] = None  # as if not installed
for name in ("hf", "lightning"):
    try:
        __import__("l2reg.torch." + name)
    except Exception as e:
        print(type(e).__name__, str(e))
"""


def test_l2reg_torch_imports_neither_and_a_missing_library_is_one_line():
    done = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[]",  # import l2reg.torch imported neither library
        'ConfigError l2reg.torch.hf needs transformers and accelerate: pip install -e ".[hf]" (from the l2reg clone).',
        'ConfigError l2reg.torch.lightning needs Lightning: pip install -e ".[lightning]" (from the l2reg clone).',
    ]
