"""l2reg.torch.lightning inside a real lightning.Trainer (CPU): a small LightningModule on random data.

64 rows of 8 features, batch 8, ``accumulate_grad_batches=2``: 4 optimizer
steps per epoch, 2 epochs, so 8 steps and 8 records, with a per-step
schedule (lr_t = lr/(1 + t)). Lightning runs the backward pass and the
gradient clipping inside ``optimizer.step(closure)``. Each case checks,
against its own step hooks (tests/trainer_checks.py), that every optimizer
step is recorded once, that d + g is the step each parameter took, that
d = −lr_t·wd·w where the split is exact, and that the scalars reach
``trainer.logged_metrics`` and the CSV logger; the files go to
``trainer.log_dir``.
"""

import csv
import json
import logging

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from torch import nn  # noqa: E402
from trainer_checks import StepLog, check_steps, console_errors, expected_scalars, one_torch_thread  # noqa: E402, F401

from l2reg.errors import ConfigError  # noqa: E402
from l2reg.torch import decayed_names  # noqa: E402
from l2reg.torch import lightning as ll  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STEPS, WD, LR = 8, 0.1, 0.05
SCALARS = {"decay/d_over_g", "decay/frac_away", "decay/w_norm"}
OPTIMIZERS = {
    "adamw": lambda groups: torch.optim.AdamW(groups, lr=LR),
    "sgd": lambda groups: torch.optim.SGD(groups, lr=LR),
    "momentum": lambda groups: torch.optim.SGD(groups, lr=LR, momentum=0.9),
    "adam": lambda groups: torch.optim.Adam(groups, lr=LR),
}


class Net(L.LightningModule):
    def __init__(self, optimizer: str, groups: str = "l2reg"):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 2))
        self.optimizer, self.groups = optimizer, groups

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        groups = ll.decay_groups(self, WD) if self.groups == "l2reg" else [
            {"params": list(self.parameters()), "weight_decay": WD}]  # everything decays: what l2reg warns about
        opt = OPTIMIZERS[self.optimizer](groups)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / (1 + t))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class Watch(L.Callback):
    """Listed after the monitor's callback: its StepLog's hooks come after the monitor's."""

    def __init__(self, monitor_callback):
        self.cb, self.log = monitor_callback, None

    def on_train_start(self, trainer, pl_module):
        self.log = StepLog(self.cb.monitor.optimizer, self.cb.monitor, trainer.lr_scheduler_configs[0].scheduler)


def loader():
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 8, generator=g), torch.randint(0, 2, (64,), generator=g))
    return torch.utils.data.DataLoader(data, batch_size=8)


#: case -> (module options, Trainer options, check_steps options)
CASES = {
    "adamw": ({"optimizer": "adamw"}, {}, dict(exact_decay=True)),
    "sgd momentum, clipped": ({"optimizer": "momentum"}, {"gradient_clip_val": 1e-3},
                              dict(exact_decay=True, max_norm=1e-3)),
    "sgd, clipped": ({"optimizer": "sgd"}, {"gradient_clip_val": 1e-3},
                     dict(exact_decay=True, sgd_grad=True, max_norm=1e-3)),
    "adam, coupled L2, bf16 autocast": ({"optimizer": "adam"}, {"precision": "bf16-mixed"}, dict(exact_decay=False)),
}
_RUNS: dict = {}


def fit(module, folder, callbacks, **options):
    options = {"log_every_n_steps": 1, **options}
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, accumulate_grad_batches=2, logger=CSVLogger(folder),
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        callbacks=callbacks, **options)
    trainer.fit(module, loader())
    return trainer


def run(case, folder):
    """Fit the case once per test session (the browser test reuses the first)."""
    if case not in _RUNS:
        module_options, options, _ = CASES[case]
        cb = ll.DecayMonitorCallback()
        watch = Watch(cb)
        module, dtypes = Net(**module_options), set()
        module.net[0].register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
        trainer = fit(module, folder / case.replace(" ", "_").replace(",", ""), [cb, watch], **options)
        assert dtypes == {torch.bfloat16 if "precision" in options else torch.float32}  # autocast is on, or off
        _RUNS[case] = trainer, cb, watch.log
    return _RUNS[case]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("lightning")


@pytest.mark.parametrize("case", list(CASES))
def test_every_step_recorded_once_and_split_exactly(case, folder, caplog):
    with caplog.at_level(logging.WARNING, logger="l2reg.torch"):
        trainer, cb, log = run(case, folder)
    assert trainer.global_step == STEPS
    check_steps(log, STEPS, **CASES[case][2])
    assert not caplog.records  # l2reg's groups: nothing decays that should not
    assert cb.monitor.optimizer.param_groups[0]["param_names"] == decayed_names(trainer.lightning_module)
    metrics = {k: float(v) for k, v in trainer.logged_metrics.items()}
    assert {k: metrics[k] for k in SCALARS} == pytest.approx(expected_scalars(log, [STEPS - 1]), rel=1e-5)
    with open(f"{trainer.log_dir}/metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("decay/w_norm")]
    assert [int(r["step"]) for r in rows] == list(range(STEPS))  # one row per optimizer step
    assert [str(p.parent) for p in cb.paths] == [trainer.log_dir] * 2
    summary = json.loads(cb.paths[0].read_text())
    assert summary["recorded_steps"] == STEPS and summary["steps_per_epoch"] == STEPS // 2
    if "coupled" in case:
        assert "decay/tau_iter" not in metrics
    else:  # τ_iter = 1/(lr·wd) at the last step's lr, (1 − μ)/(lr·wd) under momentum; τ_epoch = τ_iter/4
        lr = LR / STEPS
        assert metrics["decay/tau_iter"] == pytest.approx((0.1 if "momentum" in case else 1) / (lr * WD), rel=1e-5)
        assert metrics["decay/tau_epoch"] == pytest.approx(metrics["decay/tau_iter"] / 4, rel=1e-5)


def test_files_open_in_chromium_without_console_errors(folder):
    _, cb, _ = run("adamw", folder)
    assert [p.name for p in cb.paths] == ["decay_monitor.json", "decay_monitor.html"]
    assert console_errors(cb.paths[1:]) == {"decay_monitor.html": []}


def test_one_line_when_every_parameter_decays_record_every_and_log_every(folder, caplog):
    cb = ll.DecayMonitorCallback(out=folder / "all" / "monitor", record_every=3)
    with caplog.at_level(logging.WARNING, logger="l2reg.torch"):
        trainer = fit(Net("adamw", groups="all"), folder / "all", [cb], log_every_n_steps=2)
    # Records at steps 0, 3, 6; Lightning logs after steps 1, 3, 5, 7 (its "step"), when there is a new record.
    with open(f"{trainer.log_dir}/metrics.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f) if r.get("decay/w_norm")] == [1, 3, 7]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "The module's optimizer (AdamW) decays 4 parameter tensors (50 values)" in lines[0]
    assert "net.0.bias (bias)" in lines[0] and "net.1.weight (scale/shift of norm layer LayerNorm)" in lines[0]
    assert "l2reg.torch.lightning.decay_groups(self, weight_decay)" in lines[0]
    assert cb.monitor.recorded_steps == [0, 3, 6] and trainer.global_step == STEPS
    assert sorted(p.name for p in (folder / "all" / "monitor").iterdir()) == ["decay_monitor.html",
                                                                             "decay_monitor.json"]


def test_bad_input_is_one_line():
    with pytest.raises(ConfigError, match="record_every must be"):
        ll.DecayMonitorCallback(record_every=0)
